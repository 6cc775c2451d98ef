"""The IR after -O (and the c target's export pipeline) as a schedule of kernel calls.

Each operation's op-table entry holds a `CKernel` in its "c_kernel" slot (filled by
`nnefopt.emit_c.table`): whether its result is its operand's memory (a reshape),
whether it may write over an operand that dies with it (element-wise), and the
function that forms its call(s) from the operation's attributes and shapes. The
lowering asks that slot and knows no operation by name; an operation without one is an
error at its location.

Fused epilogues past the op table's own fused ops (`conv_relu`): an operation whose
kernel `takes_residual` absorbs the `residual_add` that is its result's only user (the
add's other operand of the same shape, computed before it), and the `activation` that
is the sum's only user, so a ResNet block's conv, add and relu are one call that adds
the shortcut in registers (`Lowering.fusion` tells the kernel).

Memory: graph inputs and outputs are the caller's buffers (an operation computing an
output writes it there), weights are read-only data, every other tensor is a buffer of
the arena, placed by `memory_plan.place` over the lifetimes of the schedule (aliases
and in-place results share their operand's buffer and extend its lifetime).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects.builtin import Float32Type, ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue

from nnefopt.dialects.names import field_name
from nnefopt.dialects.nnef import ReturnOp
from nnefopt.errors import NNEFError
from nnefopt.export.from_ir import graph_of, location_of, tensor_names
from nnefopt.memory_plan import Buffer, lower_bound, place
from nnefopt.passes.rewriting import attribute, is_quantized, known_value
from nnefopt.traits import GraphInput, TensorSource

ARENA_ALIGNMENT = 64  # bytes: a cache line, and what AVX-512 loads want


@dataclass(frozen=True)
class CKernel:
    """An operation's part of the C emitter (the op table's "c_kernel" slot)."""

    lower: Callable[[Operation, Lowering], None] | None  # forms the call(s); None for an alias
    alias: bool = False  # the result is the operand's memory, reinterpreted (reshape, squeeze)
    inplace: bool = False  # item i of the result depends on item i of same-shaped operands only
    # whether this operation's kernel can add a same-shaped tensor to its result and map
    # the sum by an activation in its epilogue (asked with the operation and the lowering)
    takes_residual: Callable[[Operation, Lowering], bool] | None = None
    residual_add: bool = False  # the sum of two same-shaped operands: a producer's residual add
    activation: str | None = None  # an item-by-item map, elementwise.UNARY[activation]


@dataclass(frozen=True)
class Fusion:
    """A producer's fused residual add (and the activation after it)."""

    residual: SSAValue  # the add's other operand
    result: SSAValue  # the value the fused call computes: the add's, or the activation's
    activation: Operation | None  # the absorbed activation, for its name and parameters
    absorbed: tuple[Operation, ...]  # the add, and the activation: no call of their own


@dataclass(eq=False)
class Storage:
    """Where a tensor's items are: an arena buffer, a caller's input or output, a weight."""

    kind: str  # "arena", "input", "output", "weight"
    index: int  # position among inputs, outputs or weights
    value: SSAValue | None
    size: int  # bytes
    first: int = 0  # arena: the operation making it
    last: int = 0  # arena: the last operation reading it (or one aliasing it)


@dataclass(frozen=True)
class Ref:
    storage: Storage
    offset: int = 0  # items from the storage's start


@dataclass(frozen=True)
class Longs:
    """A literal array argument, written as a C99 compound literal."""

    values: tuple[int, ...]


@dataclass(frozen=True)
class Call:
    kernel: str
    args: tuple
    comment: str


@dataclass
class Weight:
    name: str
    data: np.ndarray  # float32, C order, as the kernel reads it


@dataclass
class Schedule:
    calls: list[Call]
    kernels: dict[str, str]  # C function name -> its source
    weights: list[Weight]
    inputs: list[tuple[str, tuple[int, ...]]]
    outputs: list[tuple[str, tuple[int, ...]]]
    offsets: dict[Storage, int] = field(default_factory=dict)  # arena storages' byte offsets
    arena_bytes: int = 0
    lower_bound_bytes: int = 0
    unplanned_bytes: int = 0  # every arena tensor in memory of its own


def c_kernel_of(op: Operation) -> CKernel:
    entry = getattr(op, "OP_DEF", None)
    kernel = None if entry is None else entry.slot("c_kernel")
    if kernel is None:
        name = entry.name if entry is not None else op.name.removeprefix("nnef.")
        raise NNEFError(f"operation '{name}' has no C kernel (the c target cannot emit it)", location_of(op))
    return kernel


def shape_of(value: SSAValue) -> tuple[int, ...]:
    return tuple(value.type.get_shape())


def items(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


class Lowering:
    """One module's schedule; the kernels' lowering functions call its helpers."""

    def __init__(self, module: ModuleOp):
        graph = graph_of(module)
        self.ops = [op for op in graph.body.block.ops]
        self.names = tensor_names(module)
        self.root: dict[SSAValue, Storage] = {}
        self.calls: list[Call] = []
        self.kernels: dict[str, str] = {}
        self.weights: list[Weight] = []
        self.current: Operation | None = None
        self.index = 0  # the current operation's position, for scratch lifetimes
        self.scratches: list[Storage] = []
        self.fusions: dict[Operation, Fusion] = {}
        self.absorbed: dict[Operation, Operation] = {}  # an absorbed operation -> its producer
        self._weight_names: set[str] = set()

    # ---- the helpers kernels use ----------------------------------------------------

    def operand(self, op: Operation, name: str):
        """The operand (or list of operands) of parameter `name`; None where absent."""
        return getattr(op, field_name(name))

    def attr(self, op: Operation, name: str) -> object:
        return attribute(op, name)

    def read(self, value: SSAValue, offset: int = 0) -> Ref:
        storage = self.root[value]
        if storage.kind == "weight" and storage.index < 0:  # a weight is compiled in once read
            self._add_weight(storage, np.asarray(self.known(storage.value), np.float32),
                             self.names.get(storage.value, "w"))
        return Ref(storage, offset)

    def write(self, value: SSAValue, offset: int = 0) -> Ref:
        return Ref(self.root[value], offset)

    def known(self, value: SSAValue) -> np.ndarray | None:
        return known_value(value)

    def scalar(self, op: Operation, name: str) -> float:
        """A scalar parameter: an attribute, or a tensor operand of one known value."""
        if any(p.name == name for p in op.OP_DEF.attribute_params):
            return float(self.attr(op, name))
        value = self.operand(op, name)
        data = None if value is None else self.known(value)
        if data is None or data.size != 1:
            self.refuse(f"'{name}' must be one known value for the C kernel")
        return float(np.asarray(data).reshape(()))

    def pack(self, data: np.ndarray, hint: str) -> Ref:
        """Read-only data a kernel reads (a weight in the layout it wants)."""
        storage = Storage("weight", -1, None, int(data.size) * 4)
        self._add_weight(storage, data, hint)
        return Ref(storage)

    def _add_weight(self, storage: Storage, data: np.ndarray, hint: str) -> None:
        storage.index = len(self.weights)
        self.weights.append(Weight(self._weight_name(hint), np.ascontiguousarray(data, np.float32)))

    def scratch(self, count: int) -> Ref:
        """`count` floats of the arena for the current operation alone (im2col columns)."""
        storage = Storage("arena", 0, None, count * 4, self.index, self.index)
        self.scratches.append(storage)
        return Ref(storage)

    def use(self, kernel: tuple[str, str]) -> str:
        """A helper kernel another one calls: defined before it in model.c."""
        name, source = kernel
        self.kernels.setdefault(name, source)
        return name

    def call(self, kernel: tuple[str, str], *args) -> None:
        name, source = kernel
        self.kernels.setdefault(name, source)
        self.calls.append(Call(name, args, self._comment()))

    def fusion(self, op: Operation) -> Fusion | None:
        """The residual add (and activation) `op`'s kernel is to fuse; None for none."""
        return self.fusions.get(op)

    def refuse(self, message: str) -> None:
        raise NNEFError(f"{self.current.OP_DEF.name}: {message}", location_of(self.current))

    # ---- building the schedule ------------------------------------------------------

    def schedule(self) -> Schedule:
        body = [op for op in self.ops if not isinstance(op, ReturnOp)]
        returned = next((op for op in self.ops if isinstance(op, ReturnOp)), None)
        outputs = list(returned.operands) if returned is not None else []
        for op in body:
            self._check(op)
        self._fuse(body, outputs)
        last = self._last_uses(body, outputs)
        output_storage = [Storage("output", j, v, items(shape_of(v)) * 4) for j, v in enumerate(outputs)]
        claims = {}
        for j, value in enumerate(outputs):
            claims.setdefault(value, output_storage[j])
        inputs = self._assign(body, last, claims)
        self._emit(body)
        for j, value in enumerate(outputs):  # an output that is an input, a weight or repeated
            if self.root[value] is not output_storage[j]:
                self.current = returned
                self.calls.append(Call(*self._copy(Ref(self.root[value]), Ref(output_storage[j]), value),
                                       comment=f"output {j} = copy of %{self.names.get(value, '?')}"))
        return self._planned(Schedule(self.calls, self.kernels, self.weights, inputs,
                                      [(self.names.get(v, f"output{j}"), shape_of(v)) for j, v in enumerate(outputs)]))

    def _copy(self, source: Ref, target: Ref, value: SSAValue) -> tuple[str, tuple]:
        from nnefopt.emit_c.kernels.movement import copy_kernel

        name, text = copy_kernel()
        self.kernels.setdefault(name, text)
        return name, (source, target, items(shape_of(value)))

    def _check(self, op: Operation) -> None:
        self.current = op
        c_kernel_of(op)
        for value in [*op.results, *(v for v in op.operands if not op.has_trait(TensorSource))]:
            type_ = value.type
            if not isinstance(type_, TensorType) or any(d < 0 for d in type_.get_shape()):
                raise NNEFError(f"the C emitter needs static shapes ('{op.OP_DEF.name}')", location_of(op))
            if not isinstance(type_.element_type, Float32Type):
                raise NNEFError(f"the C emitter handles float32 tensors only; '{op.OP_DEF.name}' has "
                                f"{type_.element_type}", location_of(op))

    def _fuse(self, body: list[Operation], outputs: list[SSAValue]) -> None:
        users: dict[SSAValue, list[Operation]] = {}
        for op in body:
            for value in set(op.operands):
                users.setdefault(value, []).append(op)
        returned = set(outputs)

        def sole_user(value: SSAValue) -> Operation | None:
            found = users.get(value, [])
            return found[0] if len(found) == 1 and value not in returned else None

        position = {op: index for index, op in enumerate(body)}
        for op in body:
            kernel = c_kernel_of(op)
            if kernel.takes_residual is None or len(op.results) != 1 or op in self.absorbed:
                continue
            self.current = op
            if not kernel.takes_residual(op, self):
                continue
            result = op.results[0]
            add = sole_user(result)
            if add is None or add in self.absorbed or not c_kernel_of(add).residual_add:
                continue
            others = [v for v in add.operands if v is not result]
            if len(add.operands) != 2 or len(others) != 1:
                continue
            residual = others[0]
            if shape_of(residual) != shape_of(result) or shape_of(add.results[0]) != shape_of(result):
                continue  # a broadcast add stays a call of its own
            owner = residual.owner
            if not isinstance(owner, Operation) or position.get(owner, len(body)) >= position[op]:
                continue  # computed after the producer: the producer cannot read it
            absorbed, final, activation = [add], add.results[0], None
            after = sole_user(final)
            if after is not None and c_kernel_of(after).activation is not None and after.operands[0] is final \
                    and list(after.operands).count(final) == 1 and len(after.results) == 1:
                absorbed.append(after)
                final, activation = after.results[0], after
            self.fusions[op] = Fusion(residual, final, activation, tuple(absorbed))
            for other in absorbed:
                self.absorbed[other] = op

    @staticmethod
    def _last_uses(body: list[Operation], outputs: list[SSAValue]) -> dict[SSAValue, int]:
        last: dict[SSAValue, int] = {}
        for index, op in enumerate(body):
            for operand in op.operands:
                last[operand] = index
        for value in outputs:
            last[value] = len(body)
        return last

    def _assign(self, body, last, claims) -> list[tuple[str, tuple[int, ...]]]:
        """Where each tensor lives, in program order."""
        inputs = []
        for index, op in enumerate(body):
            kernel = c_kernel_of(op)
            if op.has_trait(GraphInput):
                value = op.results[0]
                self.root[value] = Storage("input", len(inputs), value, items(shape_of(value)) * 4)
                inputs.append((self.names.get(value, f"input{len(inputs)}"), shape_of(value)))
                continue
            if op.has_trait(TensorSource):
                self.current = op
                value = op.results[0]
                data = self.known(value)
                if is_quantized(value):
                    self.refuse("quantized tensors have no C kernel (the c target is float32 only)")
                if data is None:
                    self.refuse("a weight without data cannot be compiled in")
                # Written out only if a kernel reads it as it is (a packed copy may replace it).
                self.root[value] = Storage("weight", -1, value, int(data.size) * 4)
                continue
            if op in self.absorbed:  # its result is the fused producer's
                for result in op.results:
                    storage = self.root[self.absorbed[op].results[0]]
                    storage.last = max(storage.last, last.get(result, index))
                    self.root[result] = storage
                continue
            fused = self.fusions.get(op)
            taken: set[int] = set()
            for result in op.results:
                storage = claims.get(fused.result if fused is not None else result)
                if storage is None and kernel.alias:
                    storage = self.root[op.operands[0]]
                if storage is None and kernel.inplace:
                    storage = self._dying_operand(op, index, result, taken)
                if storage is None:
                    storage = Storage("arena", 0, result, items(shape_of(result)) * 4, index, index)
                if storage.kind == "arena":
                    storage.last = max(storage.last, last.get(result, index))
                    taken.add(id(storage))
                self.root[result] = storage
        return inputs

    def _dying_operand(self, op, index, result, taken) -> Storage | None:
        for operand in op.operands:
            storage = self.root.get(operand)
            if storage is not None and storage.kind == "arena" and storage.last == index \
                    and id(storage) not in taken and shape_of(operand) == shape_of(result):
                return storage
        return None

    def _emit(self, body: list[Operation]) -> None:
        for index, op in enumerate(body):
            if op.has_trait(TensorSource) or op in self.absorbed:
                continue
            self.current, self.index = op, index
            kernel = c_kernel_of(op)
            if kernel.alias:
                source, result = op.operands[0], op.results[0]
                if self.root[source] is not self.root[result]:
                    name, args = self._copy(self.read(source), self.write(result), result)
                    self.calls.append(Call(name, args, self._comment()))
                continue
            kernel.lower(op, self)

    def _planned(self, schedule: Schedule) -> Schedule:
        arena = list({id(s): s for s in [*self.root.values(), *self.scratches] if s.kind == "arena"}.values())
        buffers = [Buffer(s, s.size, s.first, s.last) for s in arena]  # keyed by the storage itself
        plan = place(buffers, ARENA_ALIGNMENT)
        schedule.offsets = {s: plan.offsets[s] for s in arena}
        schedule.arena_bytes = plan.peak_bytes
        schedule.lower_bound_bytes = lower_bound(buffers, ARENA_ALIGNMENT)
        schedule.unplanned_bytes = plan.unplanned_bytes
        return schedule

    def _comment(self) -> str:
        op = self.current
        fused = self.fusions.get(op)
        values = [fused.result] if fused is not None else op.results
        results = ", ".join(f"%{self.names.get(r, '?')}" for r in values)
        shapes = ", ".join("x".join(map(str, shape_of(r))) for r in values)
        names = " + ".join(o.OP_DEF.name for o in (op, *(fused.absorbed if fused is not None else ())))
        return f"{results} = {names} [{shapes}]"

    def _weight_name(self, hint: str) -> str:
        base = "w_" + (re.sub(r"[^A-Za-z0-9_]", "_", hint) or "w")
        name, k = base, 1
        while name in self._weight_names:
            name, k = f"{base}_{k}", k + 1
        self._weight_names.add(name)
        return name


def lower(module: ModuleOp) -> Schedule:
    """The schedule of `module` (already through the c target's export pipeline)."""
    import nnefopt.emit_c.table  # noqa: F401  (fills the op table's c_kernel slots)

    return Lowering(module).schedule()
