"""A static memory plan for a graph's activations: one arena, an offset per tensor.

Every tensor an operation computes (and every graph input) lives from the operation
that makes it to the last one that reads it (a graph output: to the end). Weights and
constants are not in the arena: they are read-only data of their own. Tensors are
placed greedily, largest first (as tflite-micro's GreedyMemoryPlanner does): each goes
to the lowest aligned offset where it overlaps, in address, no tensor already placed
whose lifetime overlaps its own. The arena's size is the highest end so reached. The
plan is made twice, in order of size and of size x lifetime, and the smaller kept.

Both `nnef-info` (peak activation memory) and a code emitter (where each buffer lives)
read the same plan.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import SSAValue

from nnefopt.dialects.nnef import ReturnOp
from nnefopt.dtypes import item_dtype
from nnefopt.errors import NNEFError
from nnefopt.export.from_ir import graph_of, location_of
from nnefopt.traits import GraphInput, TensorSource

ALIGNMENT = 16  # bytes: what SIMD loads want, and what tflite-micro uses


@dataclass(frozen=True)
class Buffer:
    value: SSAValue
    size: int  # bytes, before alignment
    first: int  # index of the operation that makes it
    last: int  # index of the last operation that reads it


@dataclass(frozen=True)
class Plan:
    offsets: dict[SSAValue, int]  # byte offset in the arena of each planned tensor
    peak_bytes: int  # the arena's size
    buffers: tuple[Buffer, ...] = ()
    alignment: int = ALIGNMENT

    @property
    def unplanned_bytes(self) -> int:
        """What the tensors would take, each in memory of its own for the whole run."""
        return sum(_aligned(b.size, self.alignment) for b in self.buffers)


def tensor_bytes(value: SSAValue) -> int:
    """The bytes a tensor's data takes; an error for a shape not known statically."""
    type_ = value.type
    shape = type_.get_shape() if isinstance(type_, TensorType) else None
    if shape is None or any(d < 0 for d in shape):
        owner = value.owner
        raise NNEFError("a tensor whose shape is not static cannot be planned", location_of(owner))
    dtype = item_dtype(type_.element_type)
    return math.prod(shape) * (dtype.itemsize if dtype is not None else 4)


def lifetimes(module: ModuleOp) -> list[Buffer]:
    """The activations of the module's graph with their first and last use, in program order."""
    ops = list(graph_of(module).body.block.ops)
    first: dict[SSAValue, int] = {}
    last: dict[SSAValue, int] = {}
    end = len(ops)
    for index, op in enumerate(ops):
        for operand in op.operands:
            if operand in first:
                last[operand] = end if isinstance(op, ReturnOp) else max(last[operand], index)
        if op.has_trait(TensorSource) and not op.has_trait(GraphInput):
            continue  # weights and constants: data of their own, not the arena
        for result in op.results:
            first[result] = last[result] = index
    return [Buffer(v, tensor_bytes(v), first[v], last[v]) for v in first]


def _aligned(size: int, alignment: int) -> int:
    return -(-size // alignment) * alignment


def plan(module: ModuleOp, alignment: int = ALIGNMENT) -> Plan:
    """The greedy plan of the module's activations (see `place`)."""
    return place(lifetimes(module), alignment)


def lower_bound(buffers: Sequence[Buffer], alignment: int = 1) -> int:
    """No plan of `buffers` takes fewer bytes: the most that is live at once (after any
    one operation's start), each size rounded up to `alignment`."""
    events = sorted({b.first for b in buffers})
    return max((sum(_aligned(b.size, alignment) for b in buffers if b.first <= t <= b.last) for t in events),
               default=0)


def place(buffers: Sequence[Buffer], alignment: int = ALIGNMENT) -> Plan:
    """Greedy offsets for `buffers` (their lifetimes given by the caller: a code emitter
    plans its own, with aliases and in-place results merged into one buffer): placed
    largest first, and again largest size x lifetime first, keeping the smaller arena
    (by size alone, ResNet-50's Winograd scratches left it 11% over the bound; by both,
    every model measured lands on it)."""
    buffers = list(buffers)
    by_size = _first_fit(buffers, lambda i: (-buffers[i].size, buffers[i].first, i), alignment)
    by_area = _first_fit(buffers, lambda i: (-buffers[i].size * (buffers[i].last - buffers[i].first + 1),
                                             buffers[i].first, i), alignment)
    return by_area if by_area.peak_bytes < by_size.peak_bytes else by_size


def _first_fit(buffers: list[Buffer], key, alignment: int) -> Plan:
    """Each buffer in `key` order at the lowest offset where it overlaps no buffer
    placed before it that is live at the same time; ties in program order, so the plan
    is the same every time."""
    placed: list[tuple[int, int, Buffer]] = []  # offset, aligned size, buffer
    offsets: dict[SSAValue, int] = {}
    peak = 0
    for i in sorted(range(len(buffers)), key=key):
        buffer = buffers[i]
        size = _aligned(buffer.size, alignment)
        live = sorted((o, s) for o, s, b in placed if b.first <= buffer.last and buffer.first <= b.last)
        offset = 0
        for other_offset, other_size in live:  # the first gap large enough, from the bottom
            if other_offset - offset >= size:
                break
            offset = max(offset, other_offset + other_size)
        placed.append((offset, size, buffer))
        offsets[buffer.value] = offset
        peak = max(peak, offset + size)
    return Plan(offsets, peak, tuple(buffers), alignment)
