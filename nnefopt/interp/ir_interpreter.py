"""The interpreter over the IR: a module's graph run by the numpy kernels, without
exporting it.

`Plan(module)` binds every operation once (ir_binding: its kernel or fragment body, its
attributes decoded, its operands as indices into a flat list of values) and every
weight once (integer codes scaled back); `plan.run(inputs)` then only calls the bound
steps. Values are keyed by SSA value; names appear only at the edges (the graph's
inputs and outputs, and what a listener asks for via `plan.names`).

`arithmetic` says what a quantized conv/linear/matmul computes: "integer" (the default)
what an int8 engine computes, int8 x int8 -> int32 and requantized (integer_binding);
"float" the specification's simulation of graph.quant, reals rounded by each entry's
quantize operation (quantized). Every other operation is the same in both.

A listener is a callable, or an object with an `on_value` method, called as
`listener(value, array, op)` for every SSA value of the graph, in program order,
as it is computed: graph inputs, weights and literals included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from xdsl.dialects.builtin import DYNAMIC_INDEX, ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue

from nnefopt.dialects.nnef import ReturnOp, dtype_of, from_attribute
from nnefopt.errors import NNEFError
from nnefopt.export.from_ir import fragment_signatures, graph_of, location_of, tensor_names
from nnefopt.interp.integer_binding import ARITHMETICS, Codes, bind_integer, codes_of, integer_quantizer, quantizer_for
from nnefopt.interp.interpreter import ArrayDomain, check_declared, random_declared
from nnefopt.interp.ir_binding import (
    bias_in_accumulator_scale,
    bind_operation,
    is_declaration,
    quant_entry,
    weight_value,
)
from nnefopt.interp.kernels_elementwise import QUIET_FLOATS
from nnefopt.interp.quantized import bind_settle

Listener = Callable[[SSAValue, np.ndarray, Operation], None]


class Plan:
    """A module's graph bound once, to be run many times. The module is only read: it
    must not change while the plan is used (build a new plan after a pass)."""

    def __init__(self, module: ModuleOp, *, arithmetic: str = "integer"):
        if arithmetic not in ARITHMETICS:
            raise NNEFError(f"unknown arithmetic '{arithmetic}'; expected one of {', '.join(ARITHMETICS)}")
        self.arithmetic = arithmetic
        quantizer = integer_quantizer if arithmetic == "integer" else None
        graph = graph_of(module)
        self.domain = ArrayDomain(fragment_signatures(module))
        self.names: dict[SSAValue, str] = tensor_names(module)
        block_ops = list(graph.body.block.ops)
        slot_of: dict[SSAValue, int] = {}
        for op in block_ops:
            for result in op.results:
                slot_of[result] = len(slot_of)
        weights: dict[SSAValue, np.ndarray] = {}  # and constants, computed while planning
        self.template: list = [None] * len(slot_of)  # what every run starts from
        externals: dict[str, Operation] = {}
        self.outputs: list[tuple[str, int]] = []
        self._output_codes: list[Codes | None] = []  # each output's entry as codes, if any
        self.steps: list[Callable[[list], None]] = []
        # Every operation in order, with its step (None: its value is there before the run) and results.
        self.trace: list[tuple[Operation, Callable | None, list[tuple[SSAValue, int]]]] = []
        for op in block_ops:
            if isinstance(op, ReturnOp):
                self.outputs = [(self.names[v], slot_of[v]) for v in op.operands]
                self._output_codes = [codes_of(quant_entry(v)) for v in op.operands]
                continue
            step = None
            if is_declaration(op):
                if op.name == "nnef.variable":
                    weights[op.results[0]] = weight_value(op)
                elif op.results:
                    externals[self.names[op.results[0]]] = op
            else:
                bias_in_accumulator_scale(op, weights)
                step = bind_integer(op, slot_of) if arithmetic == "integer" else None
                if step is None:
                    step = bind_operation(op, slot_of, self.domain, weights,
                                          quantizer=quantizer and quantizer_for(op))
                if op.operands or not _computed_now(step, self.template):
                    self.steps.append(step)
                else:
                    step = None  # its value is in the template
                    weights.update((r, self.template[slot_of[r]]) for r in op.results)
            self.trace.append((op, step, [(r, slot_of[r]) for r in op.results]))
        for value, array in weights.items():
            self.template[slot_of[value]] = array
        self.inputs: dict[str, tuple] = {}  # name → declared (shape, dtype, location)
        self._input_slots: list[tuple[str, int, Callable | None]] = []  # name, slot, its quantize step
        for name in from_attribute(graph.inputs):
            op = externals.get(name)
            if op is None:
                raise NNEFError(f"graph input '{name}' is not defined by an external operation", location_of(graph))
            result = op.results[0]
            self.inputs[name] = (_declared_shape(result), dtype_of(result.type), location_of(op))
            quant = quant_entry(result)
            settle = None if quant is None else \
                (quantizer and quantizer(quant)) or bind_settle(quant, self.domain, self.domain.signatures)
            self._input_slots.append((name, slot_of[result], settle))

    def random_inputs(self, seed: int) -> dict[str, np.ndarray]:
        """Seeded inputs of the declared shapes: normal floats, small integers, coin flips."""
        return random_declared(self.inputs, seed)

    def run(self, inputs: dict[str, np.ndarray], listeners: Iterable[Listener | object] = (), *,
            codes: bool = False) -> dict[str, np.ndarray]:
        """The graph's outputs by name for `inputs` by graph input name (reals: a
        quantized input is quantized by its entry). With `codes`, an output carrying a
        quantization entry is given as its integer codes (dtype from its bits/signed)."""
        checked = check_declared(self.inputs, inputs)
        values = self.template.copy()
        for name, slot, settle in self._input_slots:
            values[slot] = checked[name] if settle is None else settle(checked[name])
        hooks = [getattr(listener, "on_value", listener) for listener in listeners]
        # Kernels ignore floating-point warnings (an overflow gives inf, as in C); set once
        # here, prepared kernels need not set it per call.
        with np.errstate(**QUIET_FLOATS):
            self._run_steps(values, hooks)
        if codes:
            return {name: values[slot] if entry is None or not isinstance(values[slot], np.ndarray) else entry.of(values[slot])
                    for (name, slot), entry in zip(self.outputs, self._output_codes)}
        return {name: values[slot] for name, slot in self.outputs}

    def _run_steps(self, values: list, hooks: list) -> None:
        if hooks:
            for op, step, results in self.trace:
                if step is not None:
                    step(values)
                for value, slot in results:
                    for hook in hooks:
                        hook(value, values[slot], op)
        else:
            for step in self.steps:
                step(values)


def _computed_now(step: Callable[[list], None], template: list) -> bool:
    """A step without operands (a constant) computes the same every run: run it once,
    into the template (its error, if any, stays the run's)."""
    try:
        step(template)
    except NNEFError:
        return False
    return True


def compile_plan(module: ModuleOp, *, arithmetic: str = "integer") -> Plan:
    return Plan(module, arithmetic=arithmetic)


def _declared_shape(value: SSAValue) -> tuple | None:
    type_ = value.type
    if not isinstance(type_, TensorType):
        return None
    return tuple(None if d == DYNAMIC_INDEX else d for d in type_.get_shape())


def run(module: ModuleOp, inputs: dict[str, np.ndarray], *, record: bool = False, arithmetic: str = "integer",
        codes: bool = False) -> dict[str, np.ndarray]:
    """The module's outputs for `inputs`; with `record`, every tensor the run computed, by
    its tensor name (literals are not tensors). `arithmetic` and `codes`: see Plan."""
    plan = Plan(module, arithmetic=arithmetic)
    if not record:
        return plan.run(inputs, codes=codes)
    recorded: dict[str, np.ndarray] = {}
    names = plan.names

    def keep(value: SSAValue, array: object, op: Operation) -> None:
        name = names.get(value)
        if name is not None and isinstance(array, np.ndarray):
            recorded[name] = array

    outputs = plan.run(inputs, [keep], codes=codes)
    if codes:
        recorded.update(outputs)
    return recorded
