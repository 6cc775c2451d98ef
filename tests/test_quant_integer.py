"""The integer semantics of int8 engines: tract's fixed-point requantization, exact
against rational arithmetic, and the int8 conv/linear/matmul kernels against a float64
reference of the real-valued computation (within one output step, exact away from ties)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from nnefopt.errors import NNEFError
from nnefopt.interp.kernels_elementwise import zero_point_linear_quantize
from nnefopt.ops import entry_of
from nnefopt.quant.integer import (
    code_range,
    combined_scale,
    conv_int8,
    dequantize,
    fixed_point,
    linear_int8,
    matmul_int8,
    quantize,
    requantize,
    rounding_shift,
)

RNG = np.random.default_rng(1234)


def half_even(x: Fraction) -> int:
    return round(x)  # Python rounds Fractions half to even


def half_away(x: Fraction) -> int:
    magnitude = abs(x)
    rounded = int(magnitude + Fraction(1, 2))  # floor: magnitude is non-negative
    return rounded if x >= 0 else -rounded


def test_fixed_point_is_the_float32_scale_exactly():
    scales = np.concatenate([RNG.uniform(1e-6, 1.0, 200), [0.5, 0.25, 1.0, 3.0, 1e-9]]).astype(np.float32)
    multiplier, shift = fixed_point(scales)
    assert np.all(multiplier >= 2**30) and np.all(multiplier < 2**31)
    for scale, m, s in zip(scales, multiplier, shift):
        assert Fraction(int(m), 2 ** int(s)) == Fraction(float(scale))


@pytest.mark.parametrize("rounding, reference", [("even", half_even), ("away", half_away),
                                                 ("up", lambda x: int(np.floor(x + Fraction(1, 2))))])
def test_rounding_shift_matches_rational_rounding(rounding, reference):
    values = np.concatenate([RNG.integers(-2**40, 2**40, 300), np.arange(-12, 13)])
    for shift in (1, 2, 3, 17, 40):
        # Exact ties included: odd multiples of 2^(shift-1).
        tied = (2 * RNG.integers(-1000, 1000, 20) + 1) << (shift - 1)
        for v in np.concatenate([values, tied]):
            got = int(rounding_shift(np.int64(v), shift, rounding))
            assert got == reference(Fraction(int(v), 2**shift)), (v, shift)


def test_requantize_is_exact_half_even_of_acc_times_float32_scale():
    acc = RNG.integers(-2**24, 2**24, 500).astype(np.int32)
    for scale in (0.000123, 0.0041, 0.37, 0.0078125):
        codes = requantize(acc, scale, 3, np.int32)
        exact = [half_even(Fraction(int(a)) * Fraction(float(np.float32(scale)))) + 3 for a in acc]
        assert codes.tolist() == exact


def test_requantize_saturates_and_is_per_channel():
    acc = np.array([[10**6, -10**6, 40], [10**6, -10**6, 40]], np.int32).reshape(2, 3, 1)
    codes = requantize(acc, np.float32([0.5, 0.5, 0.5]), -5, np.int8, axis=1)
    assert codes[:, 0].ravel().tolist() == [127, 127]
    assert codes[:, 1].ravel().tolist() == [-128, -128]
    assert codes[:, 2].ravel().tolist() == [15, 15]
    per_channel = requantize(np.full((1, 3), 100, np.int32), np.float32([0.01, 0.1, 1.0]), 0, axis=1)
    assert per_channel.tolist() == [[1, 10, 100]]


def test_quantize_dequantize_round_trip_within_half_a_step():
    x = RNG.normal(0, 4, 1000)
    scale, zero = 0.05, 7
    codes = quantize(x, scale, zero)
    assert codes.dtype == np.int8
    inside = (x / scale + zero > -128) & (x / scale + zero < 127)
    assert np.all(np.abs(dequantize(codes, scale, zero)[inside] - x[inside]) <= scale / 2 + 1e-7)
    assert codes.min() == -128 and codes.max() == 127  # saturated, not wrapped
    assert quantize(np.array([0.0]), scale, zero)[0] == zero  # zero is exact
    assert quantize(np.array([-1e9]), 1.0, 0, symmetric=True)[0] == -127


def test_quantize_refuses_a_non_positive_scale():
    with pytest.raises(NNEFError, match="positive"):
        quantize(np.ones(3), 0.0, 0)


def real(codes, scale, zero, axis=None):
    codes = np.asarray(codes, np.float64)
    scale, zero = np.asarray(scale, np.float64), np.asarray(zero, np.float64)
    if scale.size > 1:
        shape = [1] * codes.ndim
        shape[axis] = scale.size
        scale = scale.reshape(shape)
    if zero.size > 1:
        shape = [1] * codes.ndim
        shape[axis] = zero.size
        zero = zero.reshape(shape)
    return (codes - zero) * scale


def naive_conv(x, w, stride, pad, groups):
    """Direct loops over float64 (or int64) values, zero padding: the reference."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, m, oh, ow), x.dtype)
    per_group = m // groups
    for b in range(n):
        for o in range(m):
            g = o // per_group
            for i in range(oh):
                for j in range(ow):
                    window = xp[b, g * cg:(g + 1) * cg, i * stride:i * stride + kh, j * stride:j * stride + kw]
                    out[b, o, i, j] = np.sum(window * w[o])
    return out


def check_against_float(accumulator, y_real, out_scale, out_zero, multiplier, axis):
    """The integer codes within one step of the float64 reference, equal off ties."""
    got = requantize(accumulator, multiplier, out_zero, axis=axis).astype(np.int64)
    ideal = y_real / out_scale + out_zero
    expected = np.clip(np.rint(ideal), -128, 127).astype(np.int64)
    assert np.all(np.abs(got - expected) <= 1)
    off_tie = np.abs(ideal - np.floor(ideal) - 0.5) > 1e-3
    assert np.array_equal(got[off_tie], expected[off_tie])
    return got


@pytest.mark.parametrize("groups, per_channel", [(1, False), (1, True), (3, True), (3, False)])
def test_conv_int8_against_float64_reference(groups, per_channel):
    channels, outputs = 3, 6
    x = RNG.integers(-128, 128, (2, channels, 7, 7)).astype(np.int8)
    w = RNG.integers(-127, 128, (outputs, channels // groups, 3, 3)).astype(np.int8)
    zx, sx = 5, 0.02
    sw = RNG.uniform(0.002, 0.02, outputs).astype(np.float32) if per_channel else np.float32(0.01)
    bias = RNG.integers(-5000, 5000, (1, outputs)).astype(np.int32)
    acc = conv_int8(x, w, bias, input_zero_point=zx, stride=(2, 2), padding=[(1, 1), (1, 1)], groups=groups)
    assert acc.dtype == np.int32
    exact = naive_conv(x.astype(np.int64) - zx, w.astype(np.int64), 2, 1, groups) + bias.reshape(1, -1, 1, 1)
    assert np.array_equal(acc, exact)  # the accumulator is exact integer arithmetic
    scale_w = np.broadcast_to(sw, (outputs,)).astype(np.float64)
    y_real = naive_conv(real(x, sx, zx), real(w, scale_w, 0, 0), 2, 1, groups) \
        + (bias.reshape(-1) * sx * scale_w).reshape(1, -1, 1, 1)
    out_scale, out_zero = np.abs(y_real).max() / 100, -3
    check_against_float(acc, y_real, out_scale, out_zero, combined_scale(sx, sw, out_scale), 1)


def test_conv_int8_pads_with_the_input_zero_point():
    # An input of codes all equal to its zero point is real zero everywhere, padding included.
    x = np.full((1, 1, 4, 4), 9, np.int8)
    w = np.ones((1, 1, 3, 3), np.int8)
    assert not conv_int8(x, w, input_zero_point=9, padding=[(1, 1), (1, 1)]).any()


def test_linear_int8_per_channel_against_float64_reference():
    x = RNG.integers(-128, 128, (4, 20)).astype(np.int8)
    w = RNG.integers(-127, 128, (8, 20)).astype(np.int8)
    zx, sx = -7, 0.03
    zw = RNG.integers(-3, 4, 8)
    sw = RNG.uniform(0.001, 0.01, 8).astype(np.float32)
    bias = RNG.integers(-1000, 1000, (1, 8)).astype(np.int32)
    acc = linear_int8(x, w, bias, input_zero_point=zx, filter_zero_point=zw)
    exact = (x.astype(np.int64) - zx) @ (w.astype(np.int64) - zw[:, None]).T + bias
    assert np.array_equal(acc, exact)
    y_real = real(x, sx, zx) @ real(w, sw, zw, 0).T + bias * sx * sw.astype(np.float64)
    out_scale = np.abs(y_real).max() / 120
    check_against_float(acc, y_real, out_scale, 2, combined_scale(sx, sw, out_scale), -1)


def test_matmul_int8_with_zero_points_and_transposes():
    a = RNG.integers(-128, 128, (2, 5, 9)).astype(np.int8)
    b = RNG.integers(-128, 128, (2, 4, 9)).astype(np.int8)  # transposed: [.., N, K]
    acc = matmul_int8(a, b, a_zero_point=3, b_zero_point=-2, transposeB=True)
    exact = (a.astype(np.int64) - 3) @ np.swapaxes(b.astype(np.int64) + 2, -1, -2)
    assert np.array_equal(acc, exact)
    y_real = real(a, 0.05, 3) @ np.swapaxes(real(b, 0.04, -2), -1, -2)
    out_scale = np.abs(y_real).max() / 127
    got = check_against_float(acc, y_real, out_scale, 0, combined_scale(0.05, 0.04, out_scale), -1)
    assert got.max() >= 126 or got.min() <= -126  # the scale makes the extremes near the limits


def test_saturation_at_int8_limits():
    x = np.full((1, 64), 127, np.int8)
    w = np.full((2, 64), 127, np.int8)
    w[1] = -127
    codes = requantize(linear_int8(x, w), 0.01, 0, axis=-1)
    assert codes.tolist() == [[127, -128]]


def test_integer_and_specification_semantics_differ_only_on_ties():
    """The float simulation of graph.quant rounds ties up (floor(x + 0.5)); tract's
    requantization rounds them to even: on a tie they differ by one step, else agree."""
    acc = np.arange(-40, 41, dtype=np.int32)
    scale = np.float32(0.5)  # every odd accumulator is a tie
    integer = requantize(acc, scale, 0, np.int8, axis=None).astype(np.int64)
    spec = zero_point_linear_quantize(acc.astype(np.float32) * scale, 0, np.float32(1.0), 8, True, False)
    spec = spec.astype(np.int64)
    tie = acc % 2 == 1
    assert np.all(np.abs(integer - spec) <= 1)
    assert np.array_equal(integer[~tie], spec[~tie])
    assert np.any(integer[tie] != spec[tie])  # e.g. 0.5: 0 (even) against 1 (up)


def test_kernels_are_in_the_op_table_slot():
    for name, kernel in (("conv", conv_int8), ("linear", linear_int8), ("matmul", matmul_int8)):
        entry = entry_of(name).slot("int8_kernel")
        assert entry is not None and entry.accumulate is kernel
    assert entry_of("conv").slot("int8_kernel").output_axis == 1


def test_kernel_errors_are_nnef_errors():
    with pytest.raises(NNEFError, match="integer codes"):
        linear_int8(np.ones((1, 2), np.float32), np.ones((1, 2), np.int8))
    with pytest.raises(NNEFError, match="overflows"):
        matmul_int8(np.full((1, 2**18), 127, np.int8), np.full((2**18, 1), 127, np.int8), a_zero_point=-128)
    with pytest.raises(NNEFError, match="int32"):
        linear_int8(np.ones((1, 2), np.int8), np.ones((1, 2), np.int8), np.ones((1, 1), np.float32))
    with pytest.raises(NNEFError):
        requantize(np.ones(2, np.int32), -1.0, 0)


def test_code_range():
    assert code_range(np.int8) == (-128, 127)
    assert code_range(np.int8, symmetric=True) == (-127, 127)
    assert code_range(np.uint8) == (0, 255)
