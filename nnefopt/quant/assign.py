"""Which values of the graph get a quantization entry, and which share one.

Decided from the op table's traits (nnefopt.traits), never from operation names:
- a `Biased` operation (conv, linear, deconv) with known weights is a quantized layer:
  its input must be quantized, its output gets an entry of its own;
- a `Contraction` (matmul) likewise;
- a `KeepsQuantization` operation (reshape, transpose, max_pool, pad, relu, ...) of a
  quantized value keeps its operand's entry: the same group. A `Clipping` one (relu,
  clamp) chooses the group's range from its clipped values when the operand has no
  other user, as an int8 engine folds it into the producer's requantization. A
  `WithinOperandRange` one (avg_pool, leaky_relu with 0 <= alpha <= 1) keeps it too;
- a `Requantizing` operation (sigmoid, tanh, softmax, exp, mean_reduce) of a quantized
  value gets an entry of its own (softmax's the range [0, 1] its values have);
- a `SharedQuantization` operation (add, concat) has all its operands in one group: an
  operand no one else uses joins it, any other is requantized by a `copy` into it;
- a float value that a quantized operation reads is quantized by a `copy` (a graph
  input, the output of a float island).
Everything else stays float, and says why.

The portable profile has no way back from int8 to float (tract keeps a value's quantized
type through every standard operation, nnefopt.quant.tract_spelling), so there a value
that a float operation reads must be float: its producer stays float, and so, in turn,
do the producers of what that one reads, until no float operation reads a quantized
value. A float operation before int8 ones is fine: a `copy` quantizes its result.
What tract cannot compute in int8 at all (a matmul's output entry, a deconv's filter
layout) stays float there too: the op table's `portable_int8_problem` slot says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue

from nnefopt.dialects.nnef import ReturnOp, dtype_of
from nnefopt.export.from_ir import graph_of, tensor_names
from nnefopt.ops import register_slot
from nnefopt.passes.rewriting import attribute, known_value, static_shape
from nnefopt.quant import tract_spelling  # noqa: F401  (its `portable_int8_problem` slots)
from nnefopt.traits import (
    Biased,
    Clipping,
    Contraction,
    Declaration,
    KeepsQuantization,
    Requantizing,
    SharedQuantization,
    TensorSource,
    WithinOperandRange,
)


@dataclass
class Copy:
    """A `copy` to insert: `source` quantized into group `group`, read by `consumers`."""

    source: SSAValue
    group: int
    consumers: list[Operation] = field(default_factory=list)


@dataclass
class Assignment:
    parent: list[int] = field(default_factory=list)  # union-find over groups
    group_of: dict[SSAValue, int] = field(default_factory=dict)
    observed: dict[int, list[SSAValue]] = field(default_factory=dict)  # values whose statistics a group merges
    clipped: set[SSAValue] = field(default_factory=set)  # values a Clipping op narrows: not observed
    copies: list[Copy] = field(default_factory=list)
    layers: list[Operation] = field(default_factory=list)  # Biased operations to quantize
    contractions: list[Operation] = field(default_factory=list)
    known_ranges: dict[int, tuple[float, float]] = field(default_factory=dict)  # group → the range its op gives
    floats: list[tuple[Operation, str]] = field(default_factory=list)  # operations left float, and why

    def new_group(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, group: int) -> int:
        while self.parent[group] != group:
            self.parent[group] = self.parent[self.parent[group]]
            group = self.parent[group]
        return group

    def union(self, a: int, b: int) -> int:
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[a] = b
        return b

    def add(self, value: SSAValue, group: int) -> None:
        self.group_of[value] = group
        self.observe(value, group)

    def observe(self, value: SSAValue, group: int) -> None:
        self.observed.setdefault(group, []).append(value)

    def groups(self) -> dict[int, list[SSAValue]]:
        """Each group (by its root) and the values whose statistics choose its range."""
        merged: dict[int, list[SSAValue]] = {}
        for group, values in self.observed.items():
            merged.setdefault(self.find(group), []).extend(v for v in values if v not in self.clipped)
        return merged

    def members(self) -> dict[int, list[SSAValue]]:
        out: dict[int, list[SSAValue]] = {}
        for value, group in self.group_of.items():
            out.setdefault(self.find(group), []).append(value)
        return out


def is_float(value: object) -> bool:
    return isinstance(value, SSAValue) and dtype_of(value.type) == "scalar"


def assign(module: ModuleOp, *, keep_float: frozenset[str] = frozenset(), portable: bool = True) -> Assignment:
    """The groups of values that share an entry, the copies to insert, the layers; for
    the portable profile, with no float operation reading a quantized value."""
    forced: dict[Operation, str] = {}
    floats: dict[Operation, str] = {}  # an operation once float stays so: why it was first
    while True:
        plan = _assign(module, keep_float, portable, forced)
        floats.update((op, why) for op, why in plan.floats if op not in floats)
        read_in_float = {} if not portable else _read_in_float(module, plan)
        new = {op: why for op, why in read_in_float.items() if op not in forced}
        if not new:
            plan.floats = list(floats.items())  # with the float reader that started a closure
            return plan
        forced.update(new)


def _read_in_float(module: ModuleOp, plan: Assignment) -> dict[Operation, str]:
    """The producers of quantized values that a float operation reads, and why each must
    then be float; transitively, since a producer made float reads its own quantized
    operands as floats too (one walk up the graph, not one assignment per step)."""
    names = tensor_names(module)

    def why(reader: Operation) -> str:
        described = " ".join(filter(None, [_kind(reader), names.get(reader.results[0]) if reader.results else None]))
        return f"profile=portable: the float {described} reads it, and tract has no way back from int8 to float " \
               "in standard NNEF"

    def quantized_producers(reader: Operation):
        return [(v.owner, reader) for v in reader.operands if v in plan.group_of and isinstance(v.owner, Operation)]

    pending = [pair for op in graph_of(module).body.block.ops
               if not isinstance(op, ReturnOp) and not any(r in plan.group_of for r in op.results)
               for pair in quantized_producers(op)]
    producers: dict[Operation, str] = {}
    while pending:
        producer, reader = pending.pop()
        if producer not in producers:
            producers[producer] = why(reader)
            pending.extend(quantized_producers(producer))
    return producers


def _kind(op: Operation) -> str:
    entry = getattr(op, "OP_DEF", None)
    return entry.name if entry is not None else op.name


def _assign(module: ModuleOp, keep_float: frozenset[str], portable: bool, forced: dict[Operation, str]) -> Assignment:
    plan = Assignment()
    names = tensor_names(module)
    float_copies: dict[SSAValue, Copy] = {}

    def quantized_operand(value: SSAValue, op: Operation) -> None:
        """`value`, read by the quantized `op`, has an entry, or a quantizing copy gets one."""
        if value in plan.group_of:
            return
        copy = float_copies.get(value)
        if copy is None:
            copy = float_copies[value] = Copy(value, plan.new_group())
            plan.observe(value, copy.group)
            plan.copies.append(copy)
        copy.consumers.append(op)

    def shared_operand(value: SSAValue, op: Operation, group: int) -> None:
        if value in plan.group_of and value.has_one_use():
            plan.union(plan.group_of[value], group)
            return
        plan.copies.append(Copy(value, group, [op]))  # requantized (or quantized) into the group
        plan.observe(value, group)

    for op in graph_of(module).body.block.ops:
        if isinstance(op, ReturnOp) or not op.results or op.has_trait(Declaration) or op.has_trait(TensorSource):
            continue
        out = op.results[0]
        tensors = [v for v in op.operands if known_value(v) is None]  # activations, not weights or literals
        if len(op.results) != 1 or not is_float(out):
            if any(v in plan.group_of for v in op.operands):
                plan.floats.append((op, "its results are not one float tensor"))
            continue
        if names.get(out) in keep_float:
            plan.floats.append((op, "keep-float"))
            continue
        if op in forced:
            plan.floats.append((op, forced[op]))
            continue
        quantizable = op.has_trait(Biased) or op.has_trait(Contraction) or any(v in plan.group_of for v in op.operands)
        problem = _portable_problem(op) if portable and quantizable else None
        if problem:
            plan.floats.append((op, f"profile=portable: {problem}"))
            continue
        if op.has_trait(Biased):
            reason = _layer_problem(op)
            if reason:
                plan.floats.append((op, reason))
                continue
            quantized_operand(op.operands[0], op)
            plan.add(out, plan.new_group())
            plan.layers.append(op)
        elif op.has_trait(Contraction):
            if not all(is_float(v) for v in op.operands) or static_shape(out) is None:
                plan.floats.append((op, "operands not float, or shapes not static"))
                continue
            for value in op.operands:
                quantized_operand(value, op)
            plan.add(out, plan.new_group())
            plan.contractions.append(op)
        elif op.has_trait(SharedQuantization):
            if len(tensors) != len(op.operands) or not all(is_float(v) for v in op.operands):
                plan.floats.append((op, "an operand is a constant (no shared scale with it)"))
                continue
            shared = plan.new_group()
            for value in dict.fromkeys(op.operands):
                shared_operand(value, op, shared)
            plan.add(out, shared if op.has_trait(KeepsQuantization) else plan.new_group())
        elif op.has_trait(KeepsQuantization) or (op.has_trait(WithinOperandRange) and _within_range(op)):
            source = op.operands[0]
            if source not in plan.group_of or any(v in plan.group_of for v in tensors[1:]):
                continue  # data moving inside a float island
            plan.add(out, plan.group_of[source])
            if op.has_trait(Clipping) and source.has_one_use():
                plan.clipped.add(source)
        elif op.has_trait(Requantizing) and len(tensors) == 1 and tensors[0] is op.operands[0]:
            if op.operands[0] in plan.group_of:
                plan.add(out, plan.new_group())
                known = op.OP_DEF.slot("int8_output_range")
                if known is not None:
                    plan.known_ranges[plan.group_of[out]] = known
        elif any(v in plan.group_of for v in op.operands):
            plan.floats.append((op, "no int8 rule: computed in float"))
    return plan


def _portable_problem(op: Operation) -> str | None:
    """Why tract cannot run `op` in int8 however it is written: its table entry's
    `portable_int8_problem` slot says (nnefopt.quant.tract_spelling fills it)."""
    entry = getattr(op, "OP_DEF", None)
    rule = entry.slot("portable_int8_problem") if entry is not None else None
    return rule(op) if rule is not None else None


def _within_range(op: Operation) -> bool:
    condition = op.OP_DEF.slot("within_operand_range_if")
    return condition is None or condition(op)


register_slot("leaky_relu", "within_operand_range_if", lambda op: 0.0 <= float(attribute(op, "alpha")) <= 1.0)
# softmax's values lie in [0, 1], and an int8 engine takes its entry as that whole range:
# a calibrated one clips confident outputs, and tract's fixed-point softmax asserts a
# scale of at least 2^-8 (it aborts on a narrower one)
register_slot("softmax", "int8_output_range", (0.0, 1.0))


def _layer_problem(op: Operation) -> str | None:
    filter_, bias = op.operands[1], op.operands[2] if len(op.operands) > 2 else None
    if known_value(filter_) is None or (bias is not None and known_value(bias) is None):
        return "weights not known (fold-constants first?)"
    if not is_float(op.operands[0]) or not is_float(filter_):
        return "not a float layer"
    if static_shape(op.results[0]) is None:
        return "output shape not static"
    return None
