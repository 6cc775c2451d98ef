"""A quantized conv/linear/matmul bound to integer arithmetic, as an int8 engine runs it.

The operation's two multiplied operands carry quantization entries (integer-code
weights, or activations whose real values lie on their entry's grid), its result
carries one, and its bias is absent or int32 in the accumulator's scale. Then the step
takes the operands' codes, accumulates them in int32 with their zero points through the
op table's `int8_kernel` slot entry, adds the bias, requantizes to the result entry's
codes in fixed point (tract's rounding) and stores the dequantized real, so that every
other operation keeps seeing reals. Anything else is left to the float simulation
(`bind_integer` answers None), which is the specification's meaning of graph.quant.

What is decided once per operation (at plan time): whether it qualifies, the constant
codes of its weights, its bias, the fixed-point multiplier and the output's code range.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from xdsl.ir import Operation, SSAValue

import nnefopt.quant  # noqa: F401  (registers the int8 kernels in the op table)
from nnefopt.dialects.attributes import from_attribute
from nnefopt.dialects.layout import is_channel_last
from nnefopt.dialects.names import field_name
from nnefopt.dialects.nnef import weight_of
from nnefopt.errors import NNEFError
from nnefopt.export.from_ir import is_literal, location_of
from nnefopt.frontend.evaluate import evaluate_constant
from nnefopt.frontend.model import Quantization
from nnefopt.interp.ir_binding import quant_entry
from nnefopt.quant.integer import Int8Kernel, combined_scale, float_requantizer, requantizer, round_real
from nnefopt.traits import ElementWise, Requantizing

ARITHMETICS = ("integer", "float")

Step = Callable[[list], None]


class Codes:
    """How a quantization entry maps reals to integer codes: scale and zero point (per
    tensor, or per channel along axis 0 as NNEF's left-aligned broadcasting puts a
    1-D list), the code range its bits/signed/symmetric give, and the dtype holding them."""

    __slots__ = ("scale", "zero", "low", "high", "dtype")

    def __init__(self, scale: np.ndarray, zero: np.ndarray, low: int, high: int, dtype: np.dtype):
        self.scale, self.zero, self.low, self.high, self.dtype = scale, zero, low, high, dtype

    def per_tensor(self) -> bool:
        return self.scale.size == 1 and self.zero.size == 1

    def of(self, real: np.ndarray, truncate: bool = False) -> np.ndarray:
        """The codes of real values as tract quantizes a float tensor: x / scale + zero
        point in float32 (the zero point added before rounding), rounded half to even,
        clamped (exact for values on the grid). With `truncate`, cast toward zero
        instead, as tract's element-wise functions of codes do."""
        real = np.asarray(real)
        scale, zero = self._along(self.scale, real.ndim), self._along(self.zero, real.ndim)
        shifted = real.astype(np.float32, copy=False) / scale + zero.astype(np.float32)
        integral = np.trunc(np.nan_to_num(shifted)) if truncate else round_real(shifted)
        return np.clip(integral, self.low, self.high).astype(self.dtype)

    def real(self, codes: np.ndarray) -> np.ndarray:
        """The codes' real values, (code - zero point) * scale in float32."""
        zero, scale = self._along(self.zero, codes.ndim), self._along(self.scale, codes.ndim)
        return ((codes.astype(np.int64) - zero).astype(np.float32) * scale).astype(np.float32)

    @staticmethod
    def _along(param: np.ndarray, ndim: int) -> np.ndarray:
        return param.reshape(()) if param.size == 1 else param.reshape((-1,) + (1,) * (ndim - 1))


def codes_of(quant: Quantization | None) -> Codes | None:
    """The entry's code mapping, or None when it is no zero_point_linear_quantize entry
    with a valid scale (the float simulation then decides what it means)."""
    if quant is None or quant.algorithm != "zero_point_linear_quantize":
        return None
    params = quant.attributes
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # out of range: not finite, refused below
            scale = np.asarray(params["scale"], np.float32).reshape(-1)
            zero = np.asarray(params["zero_point"], np.float64).reshape(-1)
        bits, signed, symmetric = int(params["bits"]), bool(params["signed"]), bool(params.get("symmetric", False))
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    if not (1 <= bits <= 32) or not np.all(np.isfinite(scale)) or np.any(scale <= 0) or not np.all(np.isfinite(zero)) \
            or np.any(zero != np.round(zero)):
        return None
    high = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    low = (-high if symmetric else -high - 1) if signed else 0
    if np.any(zero < low) or np.any(zero > high):
        return None  # a zero point no code can hold
    width = next(w for w in (8, 16, 32) if bits <= w)
    dtype = np.dtype(f"{'int' if signed else 'uint'}{width}")
    return Codes(scale, zero.astype(np.int64), low, high, dtype)


def integer_quantizer(quant: Quantization, truncate: bool = False) -> Callable[[np.ndarray], np.ndarray] | None:
    """How integer arithmetic applies a per-tensor entry to a computed real tensor:
    quantized as the engine quantizes it (`Codes.of`, truncating with `truncate`), its
    real value kept; None for an entry it does not know (the float simulation applies it)."""
    codes = codes_of(quant)
    if codes is None or not codes.per_tensor():
        return None

    def settled(array):
        if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
            return array
        return codes.real(codes.of(array, truncate)).astype(array.dtype, copy=False)

    return settled


def quantizer_for(op: Operation) -> Callable[[Quantization], Callable | None]:
    """How integer arithmetic applies `op`'s result entry: truncated for an element-wise
    `Requantizing` operation (sigmoid, tanh, exp), as tract computes f(x) / scale + zero
    point in float32 and casts it to the code type, else rounded."""
    truncate = op.has_trait(Requantizing) and op.has_trait(ElementWise)
    return lambda quant: integer_quantizer(quant, truncate)


def int8_kernel_of(op: Operation) -> Int8Kernel | None:
    """The operation's integer kernel, from its op table entry's `int8_kernel` slot."""
    entry = getattr(op, "OP_DEF", None)
    kernel = entry.slot("int8_kernel") if entry is not None else None
    return kernel if isinstance(kernel, Int8Kernel) else None


def bind_integer(op: Operation, slot_of: dict[SSAValue, int]) -> Step | None:
    """`op` as a step in integer arithmetic, or None when it is not a quantized
    operation that an int8 engine computes in integers."""
    kernel = int8_kernel_of(op)
    if kernel is None or is_channel_last(op) or len(op.results) != 1:
        return None
    entry = op.OP_DEF
    params = entry.tensor_params
    if len(params) < 2:
        return None
    out = codes_of(quant_entry(op.results[0]))
    if out is None or not out.per_tensor():
        return None
    first, second = (getattr(op, field_name(p.name)) for p in params[:2])
    a = _operand_codes(first, slot_of, per_channel=False)
    b = _operand_codes(second, slot_of, per_channel=kernel.filter_axis == 0)
    if a is None or b is None:
        return None
    (a_codes, a_read), (b_codes, b_read) = a, b
    bias = ()
    if len(params) > 2:
        bias = _bias_codes(getattr(op, field_name(params[2].name)), a_codes, b_codes)
        if bias is None:
            return None
    multiplier = combined_scale(a_codes.scale, b_codes.scale, out.scale).reshape(-1)
    if np.any(multiplier <= 0) or np.any(multiplier >= 2.0**31):
        return None
    attribs = attributes_of(op, entry)
    attribs[f"{params[0].name.lower()}_zero_point"] = a_codes.zero.reshape(())
    attribs[f"{params[1].name.lower()}_zero_point"] = b_codes.zero if b_codes.zero.size > 1 else b_codes.zero.reshape(())
    accumulate, axis = kernel.accumulate, kernel.output_axis
    multiplier = multiplier if multiplier.size > 1 else multiplier.reshape(())
    result, loc, name = slot_of[op.results[0]], location_of(op), entry.name
    wide = np.int32 if out.dtype.itemsize < 4 else np.int64  # saturated to the entry's range below
    if kernel.rescale == "float":
        accumulator_scale = (a_codes.scale * b_codes.scale).astype(np.float32)
        requantized = float_requantizer(accumulator_scale if accumulator_scale.size > 1 else accumulator_scale.reshape(()),
                                        out.scale.reshape(()), out.zero.reshape(()), wide, axis=axis)
    else:
        requantized = requantizer(multiplier, out.zero.reshape(()), wide, axis=axis)

    def step(values: list) -> None:
        try:
            acc = accumulate(a_read(values), b_read(values), *bias, **attribs)
            codes = requantized(acc)
        except NNEFError as exc:
            raise NNEFError(f"'{name}' failed at run time: {exc.message}", loc) from None
        except (ValueError, TypeError, IndexError) as exc:
            raise NNEFError(f"'{name}' failed at run time: {exc}", loc) from None
        values[result] = out.real(np.clip(codes, out.low, out.high))

    return step


def _operand_codes(value, slot_of: dict[SSAValue, int], per_channel: bool):
    """(entry's codes, function from the values to the operand's codes), or None when
    the operand is not quantized in a form integer arithmetic takes: weights must hold
    integer codes; an activation's real values are mapped to its codes each run."""
    if not isinstance(value, SSAValue):
        return None
    codes = codes_of(quant_entry(value))
    if codes is None or (not per_channel and not codes.per_tensor()):
        return None
    owner = value.owner
    if isinstance(owner, Operation) and owner.name == "nnef.variable":
        data = owner.attributes.get("nnef.data")
        stored = weight_of(data) if data is not None else None
        if stored is None or stored.dtype.kind not in "iu":
            return None  # float weights under an entry: left to the float simulation
        if codes.scale.size > 1 and (stored.ndim == 0 or stored.shape[0] != codes.scale.size):
            return None
        constant = np.asarray(stored)
        return codes, lambda values: constant
    if value not in slot_of or codes.scale.size > 1:
        return None
    slot = slot_of[value]
    return codes, lambda values: codes.of(values[slot])


def _bias_codes(value, a: Codes, b: Codes) -> tuple | None:
    """The kernel's bias argument, `(int32 codes in the accumulator's scale,)` (input
    scale x filter scale): an integer variable without an entry, or with an entry of
    that scale and zero point 0 (as nnefopt's export writes it); `(None,)` for an absent
    or zero bias; None (float simulation) for anything else."""
    if value is None:
        return (None,)
    owner = value.owner if isinstance(value, SSAValue) else None
    if isinstance(owner, Operation) and is_literal(owner):
        literal = np.asarray(from_attribute(owner.properties["value"])[0])
        return (None,) if literal.size == 1 and float(literal) == 0.0 else None
    if not isinstance(owner, Operation) or owner.name != "nnef.variable":
        return None
    stored = weight_of(owner.attributes["nnef.data"]) if "nnef.data" in owner.attributes else None
    if stored is None or stored.dtype.kind not in "iu":
        return None
    quant = quant_entry(value)
    if quant is not None:
        own = codes_of(quant)
        accumulator = (a.scale.astype(np.float64) * b.scale.astype(np.float64)).reshape(-1)
        if own is None or np.any(own.zero != 0) or own.scale.size not in (1, accumulator.size) \
                or not np.allclose(own.scale, accumulator, rtol=1e-6, atol=0):
            return None
    return (np.asarray(stored).reshape(-1).astype(np.int64),)


def attributes_of(op: Operation, entry) -> dict:
    """The operation's attribute values as its kernel takes them (defaults filled in)."""
    attribs = {}
    for param in entry.attribute_params:
        prop = op.properties.get(field_name(param.name))
        attribs[param.name] = from_attribute(prop, param.type) if prop is not None else evaluate_constant(param.default)
    return attribs
