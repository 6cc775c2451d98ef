"""Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization"): before
per-tensor weight quantization, make the per-channel weight ranges of consecutive
layers alike, without changing what the graph computes.

For a conv/linear `first` whose output channel i reaches input channel i of a
conv/linear `second` only through positively homogeneous steps (relu, leaky relu, pools
that keep channels apart, a flatten, no step at all), dividing first's output channel
i (filter and bias) by s_i and multiplying second's input channel i by s_i is exact.
With r1_i, r2_i the two channels' weight ranges, s_i = sqrt(r1_i / r2_i) makes both
ranges sqrt(r1_i * r2_i). A `clamp(x, 0, c)` (relu6) is homogeneous once its upper
bound is divided by s_i too: clamp(x / s, 0, c / s) = clamp(x, 0, c) / s, so its bound
becomes a per-channel tensor (and a fused `conv_clamp`, whose bounds are scalars, is
split back into conv and clamp). Chains (conv, dw-conv, conv) share layers: the pairs
are swept a few times, each sweep bringing the ranges closer.

A pair is left alone when a value between the two has another user (it would see the
scaled channels) or a quantization entry, or when weights are unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter

from nnefopt.dialects.layout import is_channel_last
from nnefopt.frontend.fused import BASES, fused_name
from nnefopt.ops import OpDef, entry_of, names_with
from nnefopt.passes.rewriting import (
    Weights,
    aligned,
    attribute,
    attributes,
    create,
    erase_dead_producers,
    is_op,
    is_quantized,
    known_value,
    single_use,
    static_shape,
    take_place,
)
from nnefopt.traits import Activation, Biased, PositivelyHomogeneous, SlidingWindow

SWEEPS = 16  # over all pairs; a chain's ranges settle within a few


@dataclass(eq=False)
class Layer:
    """A conv or linear whose weights equalization rewrites (float64 while it works)."""

    op: Operation
    base: OpDef  # conv or linear, also for a fused conv_relu
    activation: OpDef | None  # the fused activation, if any
    filter: np.ndarray
    bias: np.ndarray  # one item per output channel
    changed: bool = False

    @property
    def channels(self) -> int:
        return self.filter.shape[0]

    @property
    def groups(self) -> int:
        groups = attribute(self.op, "groups") if "groups" in self.base.attribute_defaults else 1
        return groups if groups and groups > 0 else self.op.operands[0].type.get_shape()[1]


@dataclass(eq=False)
class Pair:
    first: Layer
    second: Layer
    clamp: Operation | None  # a clamp between them (or `first` itself when a fused conv_clamp)
    upper: np.ndarray | None  # the clamp's upper bound per channel
    block: int  # second's input items per channel of first (a flatten makes it H * W)
    scale: np.ndarray = field(init=False)  # first's output channel i was divided by scale[i]

    def __post_init__(self):
        self.scale = np.ones(self.first.channels)

    def second_view(self) -> np.ndarray:
        """second's filter as [groups, outputs per group, channels per group, rest]: the
        input channel c of first is [c // per_group, :, c % per_group, :]."""
        second = self.second
        groups = second.groups
        shape = second.filter.shape
        return second.filter.reshape(groups, shape[0] // groups, shape[1] // self.block, -1)

    def sweep(self) -> None:
        first, groups = self.first, self.second.groups
        view = self.second_view()
        r1 = np.abs(first.filter.reshape(first.channels, -1)).max(axis=1)
        r2 = np.abs(view).max(axis=(1, 3)).reshape(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where((r1 > 0) & (r2 > 0), np.sqrt(r1 / r2), 1.0)
        first.filter = first.filter / s.reshape((-1,) + (1,) * (first.filter.ndim - 1))
        first.bias = first.bias / s
        self.second.filter = (view * s.reshape(groups, 1, -1, 1)).reshape(self.second.filter.shape)
        self.scale = self.scale * s
        first.changed = self.second.changed = True


# ---- finding the pairs -----------------------------------------------------------------


def _split_fused(op: Operation) -> tuple[OpDef, OpDef | None] | None:
    """(conv or linear, fused activation or None) for a weighted operation, from the op
    table: Biased operations and the fused ones made of them. A deconv's filter is
    [C_in, C_out, ...]: left out."""
    entry = getattr(op, "OP_DEF", None)
    if entry is None:
        return None
    if entry.has_trait(Biased):
        return None if is_op(op, "deconv") else (entry, None)
    for base in BASES:
        for activation in names_with(Activation):
            if fused_name(base, activation) == entry.name and entry_of(base).has_trait(Biased):
                return entry_of(base), entry_of(activation)
    return None


def _layer(op: Operation, layers: dict[Operation, Layer]) -> Layer | None:
    if op in layers:
        return layers[op]
    parts = _split_fused(op)
    if parts is None or is_channel_last(op) or static_shape(op.results[0]) is None \
            or static_shape(op.operands[0]) is None:
        return None
    filter_ = known_value(op.filter)
    bias = np.zeros(1) if op.bias is None else known_value(op.bias)
    if filter_ is None or bias is None:
        return None
    channels = filter_.shape[0]
    if bias.size not in (1, channels) or (parts[0].name != "linear" and filter_.ndim < 3):
        return None
    bias = np.broadcast_to(np.asarray(bias, np.float64).reshape(-1), (channels,)).copy()
    layers[op] = Layer(op, *parts, np.asarray(filter_, np.float64), bias)
    return layers[op]


def _zero(value: SSAValue | float) -> bool:
    array = np.asarray(value if isinstance(value, float) else known_value(value))
    return array is not None and array.dtype != object and np.all(array == 0)


def _upper_bound(bound, channels: int, rank: int) -> np.ndarray | None:
    """A clamp's upper bound as one positive value per channel, or None."""
    array = np.asarray(bound, np.float64) if isinstance(bound, float) else known_value(bound)
    if array is None:
        return None
    array = np.asarray(array, np.float64)
    if array.size == 1:
        vector = np.full(channels, float(array.reshape(())))
    else:
        shape = aligned(array, rank).shape
        if len(shape) != rank or shape[1] != channels or any(d != 1 for i, d in enumerate(shape) if i != 1):
            return None
        vector = array.reshape(channels)
    return vector if np.all(vector > 0) else None


def _keeps_channels(op: Operation) -> bool:
    """A homogeneous step through which channel c stays channel c: an activation, or a
    pool whose window is one channel wide and steps one channel at a time."""
    if op.has_trait(Activation):
        return True
    if not op.has_trait(SlidingWindow):
        return False
    size, stride = attribute(op, "size"), attribute(op, "stride") or []
    padding = attribute(op, "padding") or []
    return len(size) > 1 and size[1] == 1 and (len(stride) < 2 or stride[1] == 1) \
        and (len(padding) < 2 or tuple(padding[1]) == (0, 0)) and static_shape(op.results[0]) is not None


def _pair_into(second: Layer, layers: dict[Operation, Layer]) -> Pair | None:
    """The pair whose second layer is `second`: walk up from its input through
    homogeneous steps to a conv/linear."""
    value, block, clamp, upper = second.op.operands[0], 1, None, None
    while True:
        owner = value.owner
        if not isinstance(owner, Operation) or not single_use(value) or is_quantized(value):
            return None
        first = _layer(owner, layers)
        if first is not None:
            break
        # Walking up: a flatten ends the flat part; a clamp must be before it (where its
        # bound can be one per channel), and there is one flatten at most.
        if owner.has_trait(PositivelyHomogeneous) and _keeps_channels(owner):
            value = owner.operands[0]
        elif is_op(owner, "clamp") and clamp is None and static_shape(value) is not None and _zero(owner.operands[1]):
            clamp, upper = owner, owner.operands[2]  # checked against the channels below
            value = owner.operands[0]
        elif is_op(owner, "reshape") and block == 1 and clamp is None and _flattens(owner):
            block = int(np.prod(static_shape(owner.operands[0])[2:]))
            value = owner.operands[0]
        else:
            return None
    if first.activation is not None:
        if first.activation.has_trait(PositivelyHomogeneous):
            pass
        elif first.activation.name == "clamp" and clamp is None and _zero(float(attribute(first.op, "a"))):
            clamp, upper = first.op, float(attribute(first.op, "b"))
        else:
            return None
    if second.filter.shape[1] * second.groups != first.channels * block \
            or static_shape(first.op.results[0])[1] != first.channels:
        return None
    if clamp is not None:
        upper = _upper_bound(upper, first.channels, len(static_shape(clamp.results[0])))
        if upper is None:
            return None
    return Pair(first, second, clamp, upper, block)


def _flattens(op: Operation) -> bool:
    """A reshape [N, C, ...] -> [N, C * ...]."""
    before, after = static_shape(op.operands[0]), static_shape(op.results[0])
    return before is not None and after is not None and len(before) > 2 and len(after) == 2 \
        and after == (before[0], int(np.prod(before[1:])))


def find_pairs(module: ModuleOp) -> list[Pair]:
    layers: dict[Operation, Layer] = {}
    pairs = []
    for op in module.walk():
        second = _layer(op, layers) if _split_fused(op) is not None else None
        pair = None if second is None else _pair_into(second, layers)
        if pair is not None and pair.first is not second:
            pairs.append(pair)
    return pairs


# ---- rewriting -------------------------------------------------------------------------


def _write_weights(layer: Layer, weights: Weights) -> None:
    op = layer.op
    filter_ = weights.new(layer.filter.astype(np.float32), weights.hint(op.filter, "equalized"), like=op)
    bias_hint = weights.bias_hint(op.filter, "equalized")
    bias = weights.new(layer.bias.astype(np.float32).reshape(1, layer.channels), bias_hint, like=op)
    for new in (filter_, bias):
        Rewriter.insert_op(new, InsertPoint.before(op))
    old = [op.filter, op.bias]
    op.operands = [op.operands[0], filter_.results[0], bias.results[0]]  # a bias of its own now, if it had none
    erase_dead_producers(old, Rewriter.erase_op)


def _bound_shape(channels: int, rank: int) -> tuple[int, ...]:
    return (1, channels) + (1,) * (rank - 2)


def _write_clamp(pair: Pair, weights: Weights) -> None:
    clamp = pair.clamp
    rank = len(static_shape(clamp.results[0]))
    upper = (pair.upper / pair.scale).astype(np.float32).reshape(_bound_shape(pair.first.channels, rank))
    if clamp is not pair.first.op:  # a clamp of its own: its bound operand changes
        bound = weights.new(upper, "equalized_bound", like=clamp)
        Rewriter.insert_op(bound, InsertPoint.before(clamp))
        old = clamp.operands[2]
        clamp.operands = [clamp.operands[0], clamp.operands[1], bound.results[0]]
        erase_dead_producers([old], Rewriter.erase_op)
        return
    # a fused conv_clamp takes scalar bounds only: conv, then clamp with the tensor bound
    fused, first = clamp, pair.first
    base_attributes = {name: value for name, value in attributes(fused).items()
                       if name in first.base.attribute_defaults}
    base = create(first.base.name, [fused.operands[0], fused.filter, fused.bias], base_attributes,
                  result_types=[fused.results[0].type], like=fused)
    lower = weights.new(np.zeros((), np.float32), "equalized_zero", like=fused)
    bound = weights.new(upper, "equalized_bound", like=fused)
    new_clamp = create("clamp", [base.results[0], lower.results[0], bound.results[0]],
                       result_types=[fused.results[0].type], like=fused)
    for new in (base, lower, bound, new_clamp):
        Rewriter.insert_op(new, InsertPoint.before(fused))
    result = take_place(fused.results[0], new_clamp.results[0])
    fused.results[0].replace_all_uses_with(result)
    Rewriter.erase_op(fused)
    first.op = base


def equalize(module: ModuleOp, sweeps: int = SWEEPS) -> int:
    """Equalize every conv/linear pair of the module in place (float IR); returns the
    number of pairs equalized."""
    pairs = find_pairs(module)
    if not pairs:
        return 0
    for _ in range(sweeps):
        for pair in pairs:
            pair.sweep()
    weights = Weights(module)
    layers = {id(layer): layer for pair in pairs for layer in (pair.first, pair.second)}
    for pair in pairs:  # clamps first: a fused conv_clamp is replaced, its layer moves to the new conv
        if pair.clamp is not None:
            _write_clamp(pair, weights)
    for layer in layers.values():
        if layer.changed:
            _write_weights(layer, weights)
    return len(pairs)


__all__ = ["equalize", "find_pairs", "Pair", "Layer"]
