"""One operation of the IR bound to what computes it, once: its kernel (or its fragment
body, walked once into bound steps by body_plan, else per run by the interpreter's
ArrayDomain), its attribute values decoded, its operands and results as indices into a
flat list of values.

`bind_operation` gives a function `step(values)` that reads the operands from `values`
and writes the results into it. The IR interpreter's plan binds every operation of the
graph this way, and fold-constants binds the one operation it folds.

What the IR says about a value or an operation is read through one function each
(`quant_entry`, `is_declaration`; `is_channel_last` is the dialect's), so that changing how the dialect
says it changes one body.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter

import numpy as np
from xdsl.dialects.builtin import TensorType
from xdsl.ir import Operation, SSAValue

from nnefopt.dialects.nnef import CallOp, OpaqueOp, dtype_of, field_name, from_attribute, weight_of
from nnefopt.dialects.quantization import quantization_of
from nnefopt.dialects.weights import missing_weight
from nnefopt.errors import NNEFError
from nnefopt.export.from_ir import is_literal, location_of
from nnefopt.frontend.binder import is_absent
from nnefopt.frontend.evaluate import evaluate_constant
from nnefopt.frontend.fragments import NoMeaning, known_operations_of
from nnefopt.frontend.model import Quantization
from nnefopt.interp.body_plan import Slot, compile_body
from nnefopt.interp.scan_binding import bind_scan
from nnefopt.interp.interpreter import ArrayDomain
from nnefopt.dialects.layout import is_channel_last
from nnefopt.traits import Declaration
from nnefopt.interp.quantized import accumulator_bias, bind_settle, has_accumulator_bias, real_codes

# What a kernel raises on values it cannot compute: an error of the model, not of nnefopt.
_RUN_ERRORS = (ValueError, TypeError, IndexError, ZeroDivisionError, FloatingPointError)

Step = Callable[[list], None]


# ---- what the IR says, one function each ------------------------------------------------------


def quant_entry(value: SSAValue) -> Quantization | None:
    """The value's quantization entry (its graph.quant line), or None."""
    quant = quantization_of(value)
    if quant is None:
        return None
    owner = value.owner
    return Quantization(quant.algorithm.data, quant.params(), location_of(owner) if isinstance(owner, Operation) else None)


def is_declaration(op: Operation) -> bool:
    """Operations that compute nothing at run time: inputs, weights, metadata."""
    return op.has_trait(Declaration)


# ---- weights ------------------------------------------------------------------------------------


def weight_value(op: Operation) -> np.ndarray:
    """A variable's real values, integer codes scaled back by its quantization entry."""
    data = op.attributes.get("nnef.data")
    array = weight_of(data) if data is not None else None
    if array is None:
        raise missing_weight(from_attribute(op.properties["label"]), location_of(op))
    return real_codes(quant_entry(op.results[0]), np.asarray(array))


def bias_in_accumulator_scale(op: Operation, weights: dict[SSAValue, np.ndarray]) -> None:
    """An integer bias without an entry of its own, of a convolution or linear operation
    whose input and filter are quantized, is in their product scale: rescale it in
    `weights` (the variables' bound values)."""
    if not has_accumulator_bias(op.name.removeprefix("nnef.")):
        return
    bias, inputs = getattr(op, "bias", None), [getattr(op, "input", None), getattr(op, "filter", None)]
    if not isinstance(bias, SSAValue) or bias not in weights or quant_entry(bias) is not None \
            or bias.owner.name != "nnef.variable":
        return
    codes = weight_of(bias.owner.attributes["nnef.data"])
    if codes is None or codes.dtype.kind not in "iu":
        return
    quants = [quant_entry(v) if isinstance(v, SSAValue) else None for v in inputs]
    if None not in quants:
        weights[bias] = accumulator_bias(codes, quants)


# ---- one operation -------------------------------------------------------------------------------


class _Literal:
    """An operand the graph gives as a literal (or a default): its value, converted once."""

    __slots__ = ("value",)

    def __init__(self, value: object):
        self.value = value


def bind_operation(op: Operation, slot_of: dict[SSAValue, int], domain: ArrayDomain,
                   constants: dict[SSAValue, np.ndarray] | None = None, *,
                   quantizer: Callable[[Quantization], Callable | None] | None = None) -> Step:
    """`op` as a step over the flat list of values; `slot_of` gives each operand's and
    result's index. Signatures come from the domain (the module's own fragments win
    over the standard ones, as NNEF says). With `constants` (the values known before
    any run: weights, constants), a kernel that can prepare itself for known operands
    and static shapes (`kernel.prepare`) does so once. A result's quantization entry
    is applied by `quantizer(entry)` where it gives a function (the integer
    arithmetic's rounding), else by the entry's quantize operation."""
    loc = location_of(op)
    if isinstance(op, OpaqueOp) and op.op_name.data == "tract_core_scan":
        shapes = _static_shapes(op, slot_of)
        operands = [_operand(v, slot_of) for v in op.arguments]
        return bind_scan(op, [_part(_as_operand(o, domain)) for o in operands],
                         [shapes.get(o) if isinstance(o, int) else None for o in operands],
                         [slot_of[r] for r in op.results], domain)
    if isinstance(op, OpaqueOp):
        return _failing(NNEFError(f"operation '{op.op_name.data}' of an unknown registry cannot be run", loc))
    if isinstance(op, CallOp):
        name = op.callee.data
        signature = domain.signatures.get(name)
        if signature is None:
            raise NNEFError(f"unknown operation '{name}'", loc)
        types = {p.name: p.type for p in signature.params}
        attribs = {k: from_attribute(v, types.get(k)) for k, v in op.args.data.items()}
        operands = [_operand(v, slot_of) for v in op.arguments]
        # A bare declaration (nnef-tools' `erf`, an operation registered into the op
        # table and read back from its export) means nnefopt's kernel of that name.
        kernel = domain.primitive_of(name) if signature.body is None else None
    else:
        entry = getattr(op, "OP_DEF", None)
        if entry is None:
            raise NNEFError(f"operation '{op.name}' has no NNEF form", loc)
        name = entry.name
        signature = domain.signatures.get(name, entry.signature)
        attribs = {}
        for param in entry.attribute_params:
            prop = op.properties.get(field_name(param.name))
            attribs[param.name] = from_attribute(prop, param.type) if prop is not None else \
                evaluate_constant(param.default)
        operands = []
        for param in entry.tensor_params:
            operand = getattr(op, field_name(param.name))
            if operand is None:
                absent = param.default is None or is_absent(param.default)
                operands.append(_Literal(None if absent else evaluate_constant(param.default)))
            elif isinstance(operand, SSAValue):
                operands.append(_operand(operand, slot_of))
            else:
                operands.append([_operand(v, slot_of) for v in operand])
        # A fragment the document defines with a body means what its body says, even under
        # a standard name; a bare declaration and nnefopt's libraries mean the kernel.
        kernel = entry.kernel
        if kernel is not None and not (signature.body is None or signature is known_operations_of(name)):
            kernel = None
        if kernel is not None and entry.kernel_takes_dtype and op.results:
            attribs["dtype"] = dtype_of(op.results[0].type)  # the generic type is the target
    if kernel is None and signature.body is None:
        return _failing(NNEFError(f"nnefopt has no kernel for operation '{name}'", loc))

    outputs = [slot_of[r] for r in op.results]
    several = len(signature.results) > 1 or any(_is_array(r.type) for r in signature.results)
    back = None
    if is_channel_last(op):
        operands, back = _channel_last(op, operands)
    if kernel is not None:
        operands = [_as_operand(o, domain) for o in operands]
        prepare = getattr(kernel, "prepare", None)
        prepared = None
        if prepare is not None and constants is not None and back is None:
            prepared = prepare(_known(op, operands, slot_of, constants), attribs)  # takes the tensors alone
        compute = _kernel_call(kernel, operands, attribs) if prepared is None else _kernel_call(prepared, operands, {})
    else:
        compute = _body_call(domain, signature, operands, attribs, loc, _static_shapes(op, slot_of))
    if back is not None:
        inner = compute
        compute = lambda values: back(inner(values))  # noqa: E731
    settles = [(slot_of[r], (quantizer and quantizer(q)) or bind_settle(q, domain, domain.signatures))
               for r in op.results if (q := quant_entry(r)) is not None]
    return _step(compute, outputs, several, len(signature.results) > 1, settles, domain, name, loc)


def _known(op: Operation, operands: list, slot_of: dict[SSAValue, int], constants: dict) -> list:
    """What is known of each tensor operand before any run: (static shape or None,
    numpy dtype, value or None)."""
    from nnefopt.interp.interpreter import NUMPY_TYPES

    values = {slot_of[v]: v for v in op.operands if v in slot_of}
    known = []
    for item in operands:
        if isinstance(item, _Literal):
            array = item.value
            known.append((getattr(array, "shape", None), getattr(array, "dtype", None), array))
        elif isinstance(item, int) and item in values:
            value = values[item]
            shape = tuple(value.type.get_shape()) if isinstance(value.type, TensorType) else None
            if shape is not None and any(d < 0 for d in shape):
                shape = None
            known.append((shape, np.dtype(NUMPY_TYPES.get(dtype_of(value.type), np.float32)), constants.get(value)))
        else:
            known.append((None, None, None))
    return known


def _is_array(type_) -> bool:
    from nnefopt.frontend import ast

    return isinstance(type_, ast.ArrayType)


def _operand(value: SSAValue, slot_of: dict[SSAValue, int]) -> object:
    owner = value.owner
    if isinstance(owner, Operation) and is_literal(owner):
        return _Literal(from_attribute(owner.properties["value"])[0])
    return slot_of[value]


def _as_operand(item: object, domain: ArrayDomain) -> object:
    """Literals as the kernel takes them (0-d arrays), converted now rather than per run."""
    if isinstance(item, _Literal):
        return _Literal(domain.operand(item.value))
    if isinstance(item, list):
        return [_as_operand(i, domain) for i in item]
    return item


def _gather(operands: list) -> Callable[[list], list]:
    """A function from the values to the operand list."""
    if all(isinstance(o, int) for o in operands):
        if len(operands) == 1:
            (only,) = operands
            return lambda values: (values[only],)
        return itemgetter(*operands) if operands else (lambda values: ())
    parts = [_part(o) for o in operands]
    return lambda values: [part(values) for part in parts]


def _part(item: object) -> Callable[[list], object]:
    if isinstance(item, _Literal):
        value = item.value
        return lambda values: value
    if isinstance(item, _Transposed):
        slot, perm = item.slot, item.perm
        return lambda values: np.transpose(values[slot], perm)
    if isinstance(item, list):
        parts = [_part(i) for i in item]
        return lambda values: [part(values) for part in parts]
    return lambda values: values[item]


def _kernel_call(kernel: Callable, operands: list, attribs: dict) -> Callable[[list], object]:
    gather = _gather(operands)
    if attribs:
        return lambda values: kernel(*gather(values), **attribs)
    return lambda values: kernel(*gather(values))


def _body_call(domain: ArrayDomain, signature, operands: list, attribs: dict, loc,
               shapes: dict[int, tuple | None]) -> Callable[[list], object]:
    """A fragment body: compiled once into steps when the walk can be done ahead of the
    run (body_plan), else walked per run."""
    if not any(isinstance(o, _Transposed) for o in operands):
        compiled = compile_body(domain, signature, [_body_operand(o, shapes) for o in operands], attribs, loc)
        if compiled is not None:
            return compiled
    gather = _gather(operands)
    return lambda values: domain.run_body(signature, list(gather(values)), dict(attribs), loc)


def _body_operand(item: object, shapes: dict[int, tuple | None]) -> object:
    if isinstance(item, _Literal):
        return item.value
    if isinstance(item, list):
        return [_body_operand(i, shapes) for i in item]
    return Slot(item, shapes.get(item))


def _static_shapes(op: Operation, slot_of: dict[SSAValue, int]) -> dict[int, tuple | None]:
    """Each operand's static shape by its slot (None where a dimension is dynamic)."""
    shapes = {}
    for value in op.operands:
        if value in slot_of and isinstance(value.type, TensorType):
            shape = tuple(value.type.get_shape())
            shapes[slot_of[value]] = None if any(d < 0 for d in shape) else shape
    return shapes


def _channel_last(op: Operation, operands: list) -> tuple[list, Callable[[object], object]]:
    """A tagged operation as its definition says: its input (the first operand) taken back
    to channel-first for the NNEF operation, and its result made channel-last again."""
    from nnefopt.passes.layout import to_first, to_last

    type_ = op.operands[0].type if op.operands else None
    if not isinstance(type_, TensorType) or not isinstance(operands[0], int):
        raise NNEFError(f"channel-last operation '{op.name}' has no ranked input", location_of(op))
    rank = len(type_.get_shape())
    first, last = to_first(rank), to_last(rank)
    return [_Transposed(operands[0], first), *operands[1:]], lambda result: np.transpose(result, last)


class _Transposed:
    """An operand read through a transpose."""

    __slots__ = ("slot", "perm")

    def __init__(self, slot: int, perm: list[int]):
        self.slot, self.perm = slot, perm


def _step(compute, outputs: list[int], several: bool, tuple_results: bool, settles: list, domain: ArrayDomain,
          name: str, loc) -> Step:
    def fail(exc: Exception):
        raise NNEFError(f"'{name}' failed at run time: {exc}", loc) from None

    if not several and not settles:
        (out,) = outputs

        def step(values: list) -> None:
            try:
                values[out] = compute(values)
            except _RUN_ERRORS as exc:
                fail(exc)
            except NoMeaning as exc:
                raise NNEFError(f"nnefopt has no kernel for operation '{exc}'", loc) from None
        return step

    def step(values: list) -> None:
        try:
            computed = compute(values)
        except _RUN_ERRORS as exc:
            fail(exc)
        except NoMeaning as exc:
            raise NNEFError(f"nnefopt has no kernel for operation '{exc}'", loc) from None
        if several:
            flat = []
            for item in computed if tuple_results else [computed]:
                flat.extend(item if isinstance(item, list) else [item])
            if len(flat) != len(outputs):
                raise NNEFError(f"'{name}' computed {len(flat)} results, the operation has {len(outputs)}", loc)
            for out, value in zip(outputs, flat):
                values[out] = value
        else:
            values[outputs[0]] = computed
        for out, settle in settles:
            values[out] = settle(values[out])
    return step


def _failing(error: NNEFError) -> Step:
    def step(values: list) -> None:
        raise error
    return step
