"""Integer semantics of int8 engines: what tract (and later the C emitter) computes.

A quantized conv/linear/matmul multiplies int8 codes less their zero points and sums
them in an int32 accumulator, adds an int32 bias already in the accumulator's scale
(input scale x filter scale), then *requantizes*: multiplies the accumulator by
`input_scale * filter_scale / output_scale` in fixed point, rounds, adds the output
zero point and saturates to int8.

Rounding, as tract does it (tract-linalg `Scaler`, chosen with `RoundingPolicy::Even`
by the quantized matmul/conv lowering and by its `scale` op on i32):
  - the float32 scale is split into a 31-bit multiplier and a right shift: its 24-bit
    mantissa shifted to [2^30, 2^31), so the multiplier is the float32 scale *exactly*
    (gemmlowp/TFLite instead round a double scale to 31 bits);
  - `acc * multiplier` is formed in 64 bits and shifted right with rounding on the
    magnitude (sign restored afterwards): ties go to even. gemmlowp's
    RoundingDivideByPOT rounds ties away from zero; "away" is offered for it.
So the integer result is round_half_even(acc * float32(scale)), computed exactly.
That is tract's conv. Its einsum (which computes linear and matmul) requantizes in
float32 instead, the zero point added before rounding (`float_requantizer`), and a
float tensor is quantized as float32 x / scale + zero point, rounded to even: both
measured bit-exact against tract 0.23 on exact ties (tests/test_quant_semantics.py).
The specification's float simulation (`zero_point_linear_quantize`, `floor(x + 0.5)`)
rounds ties up instead: the two differ only on exact ties, by one step.
An element-wise function of codes (sigmoid, tanh, exp: the `Requantizing` ones) tract
computes in float32 on the dequantized operand and casts f(x) / scale + zero point to
the code type, which truncates toward zero: the integer arithmetic does the same
(`integer_binding.quantizer_for`), up to one step below the float simulation.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from nnefopt.errors import NNEFError
from nnefopt.interp.kernels_window import conv
from nnefopt.ops import register_slot

ROUNDINGS = ("even", "away", "up")  # ties to even (tract), away from zero (gemmlowp), up (NNEF round)

_INT32 = (-(2**31), 2**31 - 1)


def code_range(dtype, symmetric: bool = False) -> tuple[int, int]:
    """The codes of an integer dtype (symmetric: the most negative one left out, as
    zero_point_linear_quantize with `symmetric = true` does)."""
    info = np.iinfo(dtype)
    low = int(info.min) + 1 if symmetric and info.min < 0 else int(info.min)
    return low, int(info.max)


def round_real(x, rounding: str = "even") -> np.ndarray:
    """`x` rounded to integers (as float64) by the named rule."""
    x = np.asarray(x, np.float64)
    if rounding == "even":
        return np.rint(x)
    if rounding == "away":
        return np.copysign(np.floor(np.abs(x) + 0.5), x)
    if rounding == "up":
        return np.floor(x + 0.5)
    raise ValueError(f"unknown rounding {rounding!r}; expected one of {ROUNDINGS}")


def _along(param, ndim: int, axis: int | None) -> np.ndarray:
    """A per-tensor (scalar) or per-channel (1-D, along `axis`) parameter shaped to
    broadcast against an array of rank `ndim`."""
    param = np.asarray(param)
    if param.size == 1:
        return param.reshape(())
    if axis is None:
        raise ValueError("a per-channel parameter needs the channel axis")
    shape = [1] * ndim
    shape[axis] = param.size
    return param.reshape(shape)


def _check_scale(scale: np.ndarray) -> None:
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise NNEFError(f"quantization scale must be positive and finite, got {scale.ravel()[:4].tolist()}")


def quantize(x, scale, zero_point, dtype=np.int8, *, axis: int | None = None, rounding: str = "even",
             symmetric: bool = False) -> np.ndarray:
    """Real values to integer codes: round(x / scale) + zero_point, saturated to `dtype`."""
    x = np.asarray(x, np.float64)
    scale = _along(np.asarray(scale, np.float32).astype(np.float64), x.ndim, axis)
    _check_scale(scale)
    zero = _along(np.asarray(zero_point, np.int64), x.ndim, axis)
    low, high = code_range(dtype, symmetric)
    return np.clip(round_real(x / scale, rounding) + zero, low, high).astype(dtype)


def dequantize(codes, scale, zero_point, *, axis: int | None = None) -> np.ndarray:
    """Integer codes to their real values, (codes - zero_point) * scale, in float32."""
    codes = np.asarray(codes)
    scale = _along(np.asarray(scale, np.float32), codes.ndim, axis)
    zero = _along(np.asarray(zero_point, np.int64), codes.ndim, axis)
    return ((codes.astype(np.int64) - zero) * scale).astype(np.float32)


# ---- requantization --------------------------------------------------------------------


def fixed_point(scale) -> tuple[np.ndarray, np.ndarray]:
    """A float32 scale as (multiplier, shift): scale == multiplier * 2**-shift exactly,
    the multiplier in [2^30, 2^31) (0 for a zero scale), as tract's Scaler makes it."""
    scale = np.asarray(scale, np.float32)
    if np.any(scale < 0) or not np.all(np.isfinite(scale)):
        raise NNEFError(f"requantization scale must be non-negative and finite, got {scale.ravel()[:4].tolist()}")
    mantissa, exponent = np.frexp(scale.astype(np.float64))  # mantissa in [0.5, 1)
    multiplier = np.ldexp(mantissa, 31).astype(np.int64)  # exact: 24 significant bits
    shift = np.where(scale == 0, 0, 31 - exponent).astype(np.int64)
    if np.any(shift < 0):
        raise NNEFError("requantization scale of 2^31 or more: the accumulator cannot be scaled up so far")
    return multiplier, shift


def rounding_shift(value, shift, rounding: str = "even") -> np.ndarray:
    """value * 2**-shift rounded to an integer, for int64 `value` below 2^62 in
    magnitude: the magnitude shifted with a nudge that decides ties, as tract does."""
    value = np.asarray(value, np.int64)
    # Beyond 63 the result is 0 anyway (|value| < 2^62 is under half a unit).
    shift = np.minimum(np.asarray(shift, np.int64), 63)
    magnitude, negative = np.abs(value), value < 0
    half = np.where(shift > 0, np.left_shift(np.int64(1), np.maximum(shift - 1, 0)), 0)
    if rounding == "even":
        nudge = np.where(shift > 0, (np.right_shift(magnitude, shift) & 1) - 1, 0)
    elif rounding == "away":
        nudge = np.zeros_like(magnitude)
    elif rounding == "up":  # ties toward +inf: a negative tie keeps its smaller magnitude
        nudge = np.where((shift > 0) & negative, -1, 0)
    else:
        raise ValueError(f"unknown rounding {rounding!r}; expected one of {ROUNDINGS}")
    rounded = np.right_shift(magnitude + half + nudge, shift)
    return np.where(negative, -rounded, rounded)


def combined_scale(input_scale, filter_scale, output_scale) -> np.ndarray:
    """The accumulator-to-output multiplier in float32, in tract's order of operations
    (input x filter, then / output): the number its fixed-point multiplier is made of."""
    product = np.asarray(input_scale, np.float32) * np.asarray(filter_scale, np.float32)
    return (product / np.asarray(output_scale, np.float32)).astype(np.float32)


def requantize(acc, multiplier_scale, out_zero_point, dtype=np.int8, *, axis: int | None = 1,
               rounding: str = "even") -> np.ndarray:
    """An int32 accumulator to output codes: acc * multiplier_scale in fixed point (a
    scalar, or per channel along `axis`), rounded, plus the output zero point,
    saturated to `dtype`."""
    return requantizer(multiplier_scale, out_zero_point, dtype, axis=axis, rounding=rounding)(acc)


def requantizer(multiplier_scale, out_zero_point, dtype=np.int8, *, axis: int | None = 1,
                rounding: str = "even"):
    """`requantize` with its fixed-point multiplier made once: a function of the
    accumulator (what the interpreter's plan keeps per operation)."""
    multiplier, shift = fixed_point(multiplier_scale)
    zero = np.asarray(out_zero_point, np.int64)
    low, high = code_range(dtype)
    if rounding not in ROUNDINGS:
        raise ValueError(f"unknown rounding {rounding!r}; expected one of {ROUNDINGS}")

    def apply(acc) -> np.ndarray:
        acc = np.asarray(acc)
        if acc.dtype.kind not in "iu":
            raise NNEFError(f"requantize takes an integer accumulator, not {acc.dtype}")
        m, s = _along(multiplier, acc.ndim, axis), _along(shift, acc.ndim, axis)
        scaled = rounding_shift(acc.astype(np.int64) * m, s, rounding)
        return np.clip(scaled + _along(zero, acc.ndim, axis), low, high).astype(dtype)

    return apply


# ---- integer kernels: int8 x int8 -> int32 --------------------------------------------------
# The products are summed in float64: every partial sum is an integer far below 2^53, so
# the sum is exact in any order (and BLAS-fast); the result is checked to fit int32.


def _centered(codes, zero_point, axis: int | None, what: str) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iu":
        raise NNEFError(f"{what} of an integer kernel must be integer codes, not {codes.dtype}")
    return codes.astype(np.float64) - _along(np.asarray(zero_point, np.int64), codes.ndim, axis)


def _accumulator(total: np.ndarray, bias, axis: int) -> np.ndarray:
    if bias is not None:
        bias = np.asarray(bias)
        if bias.dtype.kind not in "iu":
            raise NNEFError(f"the bias of an integer kernel must be int32 in the accumulator's scale, not {bias.dtype}")
        total = total + _along(bias.reshape(-1).astype(np.float64), total.ndim, axis)
    if total.size and (total.min() < _INT32[0] or total.max() > _INT32[1]):
        raise NNEFError("the int32 accumulator overflows: the quantized operands are too large for their count")
    return total.astype(np.int32)


def conv_int8(input, filter, bias=None, *, input_zero_point=0, filter_zero_point=0, border: str = "constant",
              padding=(), stride=(), dilation=(), groups: int = 1) -> np.ndarray:
    """NNEF conv over codes: sum((x - zx) * (w - zw)) + bias, int32, NCHW. Padding is
    the input's zero point (a real 0), as int8 engines pad. `filter_zero_point` may be
    per output channel (axis 0 of the filter); `bias` is one int32 per output channel."""
    x = _centered(input, input_zero_point, None, "the input")
    w = _centered(filter, filter_zero_point, 0, "the filter")
    total = conv(x, w, 0.0, border, padding, stride, dilation, groups)
    return _accumulator(total, bias, 1)


def linear_int8(input, filter, bias=None, *, input_zero_point=0, filter_zero_point=0) -> np.ndarray:
    """NNEF linear over codes: (x - zx) @ (w - zw)^T + bias, int32; output features (and
    a per-channel filter zero point, axis 0 of the filter) are the last axis."""
    x = _centered(input, input_zero_point, None, "the input")
    w = _centered(filter, filter_zero_point, 0, "the filter")
    return _accumulator(np.matmul(x, np.swapaxes(w, -1, -2)), bias, -1)


def matmul_int8(A, B, *, a_zero_point=0, b_zero_point=0, transposeA: bool = False,
                transposeB: bool = False) -> np.ndarray:
    """NNEF matmul over codes: (A - za) @ (B - zb), int32. A per-channel `b_zero_point`
    is per output column (the last axis of the product)."""
    a = _centered(np.swapaxes(A, -1, -2) if transposeA else A, a_zero_point, None, "A")
    b = _centered(np.swapaxes(B, -1, -2) if transposeB else B, b_zero_point, -1, "B")
    return _accumulator(np.matmul(a, b), None, -1)


def float_requantizer(accumulator_scale, output_scale, out_zero_point, dtype=np.int8, *, axis: int | None = -1):
    """The requantization of tract's einsum lowering (linear, matmul), in float32:
    round_half_even(acc * (input_scale x filter_scale) / output_scale + zero point),
    each step rounded to float32, the zero point added before rounding. Measured
    against tract 0.23 (bit-exact where the fixed-point form differs on exact ties)."""
    acc_scale = np.asarray(accumulator_scale, np.float32)
    out_scale, zero = np.float32(output_scale), np.asarray(out_zero_point, np.float32)
    low, high = code_range(dtype)

    def apply(acc) -> np.ndarray:
        acc = np.asarray(acc)
        if acc.dtype.kind not in "iu":
            raise NNEFError(f"requantize takes an integer accumulator, not {acc.dtype}")
        scaled = acc.astype(np.float32) * _along(acc_scale, acc.ndim, axis) / out_scale + _along(zero, acc.ndim, axis)
        return np.clip(np.rint(scaled), low, high).astype(dtype)

    return apply


class Int8Kernel(NamedTuple):
    """An operation's integer kernel and where its channels are: per-channel filter
    parameters along `filter_axis` of the weight operand, per-channel requantization
    along `output_axis` of the result. `rescale` says how the engine requantizes its
    accumulator: "fixed" (`requantizer`: tract's conv) or "float" (`float_requantizer`:
    tract's einsum, which computes linear and matmul)."""

    accumulate: object
    filter_axis: int
    output_axis: int
    rescale: str = "fixed"


INT8_KERNELS = {
    "conv": Int8Kernel(conv_int8, 0, 1),
    "linear": Int8Kernel(linear_int8, 0, -1, "float"),
    "matmul": Int8Kernel(matmul_int8, -1, -1, "float"),
}

for _name, _entry in INT8_KERNELS.items():
    register_slot(_name, "int8_kernel", _entry)
