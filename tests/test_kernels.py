"""The numpy kernels against an independent implementation.

Where ONNX has the same operation, onnxruntime runs it as a one-node graph over random
parameters (hypothesis, bounded example counts). Where it has none (border 'ignore'
averages, 'reflect-even', debox, quantize ops, NNEF rounding, ...) the expected values
are worked out by hand or follow from an algebraic identity (debox is box's adjoint).
"""

from __future__ import annotations

import math

import numpy as np
import onnxruntime
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from nnefopt.interp.kernels import KERNELS

FEW = settings(max_examples=60, deadline=None)
SOME = settings(max_examples=100, deadline=None)

_ONNX_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64,
               np.dtype(np.int32): TensorProto.INT32, np.dtype(np.int8): TensorProto.INT8,
               np.dtype(np.uint8): TensorProto.UINT8, np.dtype(bool): TensorProto.BOOL}


def ort(op, *inputs, outputs=1, out_dtype=None, **attributes):
    """Run one ONNX node on `inputs` (None leaves an optional input out)."""
    names = [f"in{i}" if x is not None else "" for i, x in enumerate(inputs)]
    given_inputs = [(name, np.asarray(x)) for name, x in zip(names, inputs) if name]
    out_names = [f"out{i}" for i in range(outputs)]
    node = helper.make_node(op, names, out_names, **attributes)
    out_type = _ONNX_TYPES[np.dtype(out_dtype or given_inputs[0][1].dtype)]
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, _ONNX_TYPES[x.dtype], x.shape) for n, x in given_inputs],
        [helper.make_tensor_value_info(n, out_type, None) for n in out_names])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    result = session.run(None, dict(given_inputs))
    return result if outputs > 1 else result[0]


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def close(actual, expected, tol=1e-5):
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


seeds = st.integers(0, 2**31 - 1)


# ---- convolution ------------------------------------------------------------------------

@st.composite
def conv_cases(draw):
    rank = draw(st.integers(1, 2))
    groups = draw(st.sampled_from([1, 2, 0]))  # 0: depthwise
    channels = draw(st.integers(1, 3)) * (2 if groups == 2 else 1)
    per_group = draw(st.integers(1, 3))
    size = draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank))
    stride = draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank))
    dilation = draw(st.lists(st.integers(1, 2), min_size=rank, max_size=rank))
    extents = draw(st.lists(st.integers(4, 9), min_size=rank, max_size=rank))
    auto = draw(st.booleans())
    padding = [] if auto else draw(st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=rank, max_size=rank))
    batch = draw(st.integers(1, 2))
    return rank, groups, channels, per_group, size, stride, dilation, extents, padding, batch, draw(seeds)


def _fits(extents, size, stride, dilation, padding):
    """Whether at least one window fits (else the op is invalid for NNEF and ONNX alike)."""
    padding = padding or [(0, 0)] * len(extents)
    return all(n + p + q >= (k - 1) * d + 1 for n, k, d, (p, q) in zip(extents, size, dilation, padding))


def _same_upper(extents, size, stride, dilation, outputs):
    """ONNX's SAME_UPPER padding (its spec's formula; onnxruntime refuses it with dilation)."""
    totals = [max((m - 1) * s + (k - 1) * d + 1 - n, 0)
              for n, k, s, d, m in zip(extents, size, stride, dilation, outputs)]
    return [(t // 2, t - t // 2) for t in totals]


def _onnx_pads(padding):
    return [p for p, _ in padding] + [q for _, q in padding]


@FEW
@given(conv_cases())
def test_conv_matches_onnx(case):
    rank, groups, channels, per_group, size, stride, dilation, extents, padding, batch, seed = case
    assume(_fits(extents, size, stride, dilation, padding) or not padding)
    rng = np.random.default_rng(seed)
    g = groups or channels
    x = randn(rng, batch, channels, *extents)
    w = randn(rng, g * per_group, channels // g, *size)
    bias = randn(rng, 1, g * per_group)
    got = KERNELS["conv"](x, w, bias, padding=padding, stride=stride, dilation=dilation, groups=groups)
    pads = padding or _same_upper(extents, size, stride, dilation, [-(-n // s) for n, s in zip(extents, stride)])
    want = ort("Conv", x, w, bias[0], group=g, strides=stride, dilations=dilation, pads=_onnx_pads(pads))
    assert got.dtype == np.float32
    close(got, want, 1e-4)


@FEW
@given(conv_cases(), st.booleans())
def test_deconv_matches_onnx_conv_transpose(case, extra):
    rank, groups, channels, per_group, size, stride, dilation, extents, padding, batch, seed = case
    rng = np.random.default_rng(seed)
    g = groups or channels
    x = randn(rng, batch, channels, *extents)
    w = randn(rng, channels, per_group, *size)
    bias = randn(rng, 1, g * per_group)
    natural = [(n - 1) * s + (k - 1) * d + 1 for n, k, s, d in zip(extents, size, stride, dilation)]
    assume(all(f - p - q > 0 for f, (p, q) in zip(natural, padding)))  # padding larger than the output is invalid
    output_shape, more, pads = [], [0] * rank, padding
    if not padding:
        # Automatic: output n * s; the padding is what a conv from it to n would take.
        outputs = [n * s for n, s in zip(extents, stride)]
        pads = _same_upper(outputs, size, stride, dilation, extents)
        more = [m - f + p + q for m, f, (p, q) in zip(outputs, natural, pads)]
    elif extra:
        # output_shape one beyond the natural extent: ONNX's output_padding (< stride).
        more = [min(1, s - 1) for s in stride]
        output_shape = [batch, g * per_group] + [f - p - q + e for f, (p, q), e in zip(natural, padding, more)]
    attributes = dict(group=g, strides=stride, dilations=dilation, pads=_onnx_pads(pads), output_padding=more)
    got = KERNELS["deconv"](x, w, bias, padding=padding, stride=stride, dilation=dilation,
                            output_shape=output_shape, groups=groups)
    want = ort("ConvTranspose", x, w, bias[0], **attributes)
    close(got, want, 1e-4)


@FEW
@given(seeds, st.sampled_from(["replicate", "reflect"]), st.integers(1, 2))
def test_conv_borders_match_onnx_pad_then_conv(seed, border, amount):
    rng = np.random.default_rng(seed)
    x, w = randn(rng, 1, 2, 5, 6), randn(rng, 3, 2, 3, 3)
    padding = [(amount, 1), (0, amount)]
    got = KERNELS["conv"](x, w, np.zeros((), np.float32), border=border, padding=padding)
    pads = np.array([0, 0, amount, 0, 0, 0, 1, amount], np.int64)
    padded = ort("Pad", x, pads, mode={"replicate": "edge", "reflect": "reflect"}[border])
    close(got, ort("Conv", padded, w), 1e-4)


def test_conv_reflect_even_repeats_the_edge():
    x = np.arange(1, 5, dtype=np.float32).reshape(1, 1, 4)
    w = np.ones((1, 1, 3), np.float32)
    # reflect-even pads [1 2 3 4] to [2 1 | 1 2 3 4 | 4 3]; sums of three:
    got = KERNELS["conv"](x, w, border="reflect-even", padding=[(2, 2)])
    np.testing.assert_array_equal(got.reshape(-1), [4, 4, 6, 9, 11, 11])


def test_depthwise_conv_with_multiplier_reads_one_channel_each():
    x = np.stack([np.ones((3, 3)), 2 * np.ones((3, 3))]).astype(np.float32)[None]
    w = np.array([1, 10, 100, 1000], np.float32).reshape(4, 1, 1, 1)
    got = KERNELS["conv"](x, w, groups=0)
    # outputs 0, 1 read channel 0; outputs 2, 3 read channel 1.
    np.testing.assert_array_equal(got[0, :, 0, 0], [1, 10, 200, 2000])


def test_integer_conv_accumulates_in_int32_like_onnx_conv_integer():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (1, 3, 6, 6), dtype=np.uint8)
    w = rng.integers(-128, 128, (4, 3, 3, 3), dtype=np.int8)
    got = KERNELS["conv"](x, w, np.zeros((), np.float32), padding=[(0, 0), (0, 0)])
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, ort("ConvInteger", x, w, out_dtype=np.int32))


def test_deconv_replicate_is_the_khronos_replicate_upsample():
    # Khronos: a replicate 2x linear upsample is a deconv of the edge-extended input.
    rng = np.random.default_rng(2)
    x = randn(rng, 1, 2, 5)
    w = np.tile(np.array([0.25, 0.75, 0.75, 0.25], np.float32), (2, 1, 1))
    got = KERNELS["deconv"](x, w, border="replicate", padding=[(1, 1)], stride=[2], groups=0,
                            output_shape=[1, 2, 10])
    close(got, KERNELS["multilinear_upsample"](x, [2], method="symmetric", border="replicate"))


@FEW
@given(seeds)
def test_separable_conv_matches_onnx_depthwise_then_pointwise(seed):
    rng = np.random.default_rng(seed)
    x, plane, point = randn(rng, 1, 3, 7, 7), randn(rng, 3, 1, 3, 3), randn(rng, 4, 3, 1, 1)
    got = KERNELS["separable_conv"](x, plane, point, stride=[2, 2])
    planes = ort("Conv", x, plane, group=3, strides=[2, 2], pads=[1, 1, 1, 1])  # 7 -> 4: pad 2
    close(got, ort("Conv", planes, point), 1e-4)


@FEW
@given(seeds, st.integers(1, 3))
def test_separable_deconv_matches_onnx_pointwise_then_depthwise(seed, stride):
    rng = np.random.default_rng(seed)
    x, point, plane = randn(rng, 1, 2, 4, 5), randn(rng, 2, 3, 1, 1), randn(rng, 3, 1, 3, 3)
    padding = [(1, 0), (0, 2)]
    got = KERNELS["separable_deconv"](x, plane, point, padding=padding, stride=[stride, stride])
    points = ort("ConvTranspose", x, point)
    want = ort("ConvTranspose", points, plane, group=3, strides=[stride, stride], pads=[1, 0, 0, 2])
    close(got, want, 1e-4)


# ---- pooling ----------------------------------------------------------------------------

@st.composite
def pool_cases(draw):
    size = draw(st.lists(st.integers(1, 3), min_size=2, max_size=2))
    stride = draw(st.lists(st.integers(1, 3), min_size=2, max_size=2))
    dilation = draw(st.lists(st.integers(1, 2), min_size=2, max_size=2))
    padding = draw(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=2, max_size=2))
    # onnxruntime needs every pad smaller than the kernel.
    padding = [(min(p, k - 1), min(q, k - 1)) for (p, q), k in zip(padding, size)]
    extents = draw(st.lists(st.integers(4, 8), min_size=2, max_size=2))
    return size, stride, dilation, padding, extents, draw(seeds)


def _nnef_pool(name, x, size, stride, dilation, padding, border):
    return KERNELS[name](x, [1, 1] + size, border=border, padding=[(0, 0)] * 2 + padding,
                         stride=[1, 1] + stride, dilation=[1, 1] + dilation)


@SOME
@given(pool_cases(), st.sampled_from(["constant", "ignore"]))
def test_avg_pool_matches_onnx_count_include_pad(case, border):
    size, stride, dilation, padding, extents, seed = case
    assume(_fits(extents, size, stride, dilation, padding))
    x = randn(np.random.default_rng(seed), 2, 3, *extents)
    got = _nnef_pool("avg_pool", x, size, stride, dilation, padding, border)
    want = ort("AveragePool", x, kernel_shape=size, strides=stride, dilations=dilation,
               pads=[p for p, _ in padding] + [q for _, q in padding],
               count_include_pad=int(border == "constant"))
    close(got, want)


@SOME
@given(pool_cases())
def test_max_pool_ignore_and_max_pool_with_index_match_onnx(case):
    size, stride, dilation, padding, extents, seed = case
    assume(_fits(extents, size, stride, dilation, padding))
    x = randn(np.random.default_rng(seed), 2, 3, *extents)
    want = ort("MaxPool", x, kernel_shape=size, strides=stride, dilations=dilation,
               pads=[p for p, _ in padding] + [q for _, q in padding])
    close(_nnef_pool("max_pool", x, size, stride, dilation, padding, "ignore"), want)
    output, _ = _nnef_pool("max_pool_with_index", x, size, stride, dilation, padding, "ignore")
    close(output, want)


def test_max_pool_constant_border_counts_padding_as_zero():
    x = -np.arange(1, 5, dtype=np.float32).reshape(1, 1, 4)
    got = KERNELS["max_pool"](x, [1, 1, 2], padding=[(0, 0), (0, 0), (1, 1)], stride=[1, 1, 2])
    np.testing.assert_array_equal(got.reshape(-1), [0, -2, 0])  # windows [0,-1] [-2,-3] [-4,0]


def test_avg_pool_ignore_divides_by_valid_elements_only():
    x = np.array([[1, 2], [3, 4]], np.float32)
    got = KERNELS["avg_pool"](x, [2, 2], border="ignore", padding=[(1, 0), (1, 0)])
    # windows hold {1}, {1,2}, {1,3}, {1,2,3,4} of the input.
    np.testing.assert_allclose(got, [[1, 1.5], [2, 2.5]])
    constant = KERNELS["avg_pool"](x, [2, 2], border="constant", padding=[(1, 0), (1, 0)])
    np.testing.assert_allclose(constant, [[0.25, 0.75], [1, 2.5]])


def test_box_sums_and_rms_pool():
    x = np.array([3, 4, 0, 5], np.float32)
    np.testing.assert_array_equal(KERNELS["box"](x, [2], padding=[(0, 0)], stride=[2]), [7, 5])
    np.testing.assert_allclose(KERNELS["rms_pool"](x, [2], padding=[(0, 0)], stride=[2]),
                               [np.sqrt(12.5), np.sqrt(12.5)])


def test_pool_replicate_and_reflect_borders():
    x = np.array([1, 5, 2], np.float32)
    replicate = KERNELS["max_pool"](x, [3], border="replicate", padding=[(1, 1)])
    np.testing.assert_array_equal(replicate, [5, 5, 5])
    reflect = KERNELS["box"](x, [2], border="reflect", padding=[(1, 0)])  # [5 | 1 5 2]
    np.testing.assert_array_equal(reflect, [6, 6, 7])
    even = KERNELS["box"](x, [2], border="reflect-even", padding=[(1, 0)])  # [1 | 1 5 2]
    np.testing.assert_array_equal(even, [2, 6, 7])


def test_argmax_pool_indexes_within_the_window_and_sample_reads_it_back():
    x = np.array([[1, 9, 3, 3], [7, 2, 3, 8]], np.float32)[None, None]
    size, stride = [1, 1, 2, 2], [1, 1, 2, 2]
    index = KERNELS["argmax_pool"](x, size, padding=[(0, 0)] * 4, stride=stride)
    np.testing.assert_array_equal(index.reshape(-1), [1, 3])  # 9 at (0,1); 8 at (1,1)
    ties = KERNELS["argmax_pool"](np.ones((1, 1, 2, 2), np.float32), size, padding=[(0, 0)] * 4, stride=stride)
    assert ties.item() == 0  # the first maximum wins
    sampled = KERNELS["sample"](x, index, size, padding=[(0, 0)] * 4, stride=stride)
    np.testing.assert_array_equal(sampled.reshape(-1), [9, 8])


def test_desample_puts_values_back_at_their_index():
    rng = np.random.default_rng(3)
    x = randn(rng, 1, 2, 4, 6)
    size = [1, 1, 2, 3]
    kwargs = dict(padding=[(0, 0)] * 4, stride=size)
    index = KERNELS["argmax_pool"](x, size, **kwargs)
    pooled = KERNELS["max_pool"](x, size, **kwargs)
    got = KERNELS["desample"](pooled, index, size, **kwargs)
    blocks = x.reshape(1, 2, 2, 2, 2, 3)
    is_max = blocks == blocks.max(axis=(3, 5), keepdims=True)
    np.testing.assert_array_equal(got, np.where(is_max, blocks, 0).reshape(x.shape))


@SOME
@given(pool_cases(), st.sampled_from(["constant", "ignore"]), st.booleans())
def test_debox_is_the_adjoint_of_box(case, border, normalize):
    size, stride, dilation, padding, extents, seed = case
    assume(_fits(extents, size, stride, dilation, padding))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 2, *extents))
    args = dict(border=border, padding=[(0, 0)] * 2 + padding, stride=[1, 1] + stride,
                dilation=[1, 1] + dilation, normalize=normalize)
    boxed = KERNELS["box"](x, [1, 1] + size, **args)
    y = rng.standard_normal(boxed.shape)
    deboxed = KERNELS["debox"](y, [1, 1] + size, output_shape=list(x.shape), **args)
    # <box(x), y> == <x, debox(y)> for every x and y: debox is box transposed.
    assert deboxed.shape == x.shape
    assert np.isclose(np.sum(boxed * y), np.sum(x * deboxed), rtol=1e-10)


# ---- resampling -------------------------------------------------------------------------

def _resize(x, mode, transform, scales, nearest="floor", **attributes):
    return ort("Resize", x, None, np.asarray(scales, np.float32), mode=mode,
               coordinate_transformation_mode=transform, nearest_mode=nearest, **attributes)


@FEW
@given(seeds, st.integers(1, 4), st.integers(1, 3),
       st.sampled_from([("symmetric", "half_pixel"), ("asymmetric", "asymmetric"), ("aligned", "align_corners")]))
def test_multilinear_upsample_replicate_matches_onnx_resize(seed, f, g, methods):
    x = randn(np.random.default_rng(seed), 1, 2, 3, 4)
    got = KERNELS["multilinear_upsample"](x, [f, g], method=methods[0], border="replicate")
    close(got, _resize(x, "linear", methods[1], [1, 1, f, g]))


def test_multilinear_upsample_constant_border_uses_the_khronos_2x_weights():
    x = np.array([4, 8], np.float32).reshape(1, 1, 2)
    # Khronos reference: symmetric = deconv [.25 .75 .75 .25], asymmetric = [.5 1 .5].
    symmetric = KERNELS["multilinear_upsample"](x, [2], method="symmetric", border="constant")
    np.testing.assert_allclose(symmetric.reshape(-1), [3, 5, 7, 6])
    asymmetric = KERNELS["multilinear_upsample"](x, [2], method="asymmetric", border="constant")
    np.testing.assert_allclose(asymmetric.reshape(-1), [4, 6, 8, 4])


@FEW
@given(seeds, st.integers(1, 3), st.integers(1, 3))
def test_nearest_and_area_resampling(seed, f, g):
    x = randn(np.random.default_rng(seed), 1, 2, 3 * f, 2 * g)
    up = KERNELS["nearest_upsample"](x, [f, g])
    close(up, _resize(x, "nearest", "asymmetric", [1, 1, f, g]))
    close(KERNELS["nearest_downsample"](up, [f, g]), x)
    close(KERNELS["area_downsample"](x, [f, g]),
          ort("AveragePool", x, kernel_shape=[f, g], strides=[f, g]))


@FEW
@given(seeds, st.sampled_from([
    ("nearest", "asymmetric", "floor"), ("nearest", "half_pixel", "round_prefer_ceil"),
    ("linear", "half_pixel", "floor"), ("linear", "align_corners", "floor"),
    ("linear", "asymmetric", "floor"), ("cubic", "half_pixel", "floor")]),
    st.sampled_from([[1, 1, 2, 3], [1, 1, 0.5, 1.5], [1, 1, 3, 0.75]]))
def test_tract_core_resize_matches_onnx_resize(seed, modes, scales):
    interpolator, transform, nearest = modes
    x = randn(np.random.default_rng(seed), 1, 2, 4, 4)
    got = KERNELS["tract_core_resize"](x, np.array(scales, np.float32), coord_transformer=transform,
                                       interpolator=interpolator, nearest_mode=nearest)
    want = _resize(x, interpolator, transform, scales, nearest, cubic_coeff_a=-0.75)
    close(got, want, 1e-5)


def test_tract_core_resize_by_sizes():
    x = np.array([[1, 2], [3, 4]], np.float32).reshape(1, 1, 2, 2)
    got = KERNELS["tract_core_resize"](x, sizes=np.array([1, 1, 4, 4]), coord_transformer="asymmetric")
    np.testing.assert_array_equal(got, np.repeat(np.repeat(x, 2, axis=2), 2, axis=3))


# ---- matmul, reductions, normalization --------------------------------------------------

@FEW
@given(seeds, st.booleans(), st.booleans())
def test_matmul_with_transposes_and_batch_broadcast(seed, ta, tb):
    rng = np.random.default_rng(seed)
    a, b = randn(rng, 2, 1, 3, 4), randn(rng, 1, 3, 4, 5)
    a_in = np.swapaxes(a, -1, -2).copy() if ta else a
    b_in = np.swapaxes(b, -1, -2).copy() if tb else b
    got = KERNELS["matmul"](a_in, b_in, transposeA=ta, transposeB=tb)
    close(got, ort("MatMul", a, b))


def test_integer_matmul_accumulates_in_int32():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (3, 7), dtype=np.uint8)
    b = rng.integers(-128, 128, (7, 2), dtype=np.int8)
    got = KERNELS["matmul"](a, b)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, ort("MatMulInteger", a, b, out_dtype=np.int32))


@FEW
@given(seeds)
def test_linear_matches_gemm(seed):
    rng = np.random.default_rng(seed)
    x, w, bias = randn(rng, 3, 6), randn(rng, 4, 6), randn(rng, 1, 4)
    close(KERNELS["linear"](x, w, bias), ort("Gemm", x, w, bias, transB=1))


@SOME
@given(seeds, st.lists(st.integers(0, 3), min_size=1, max_size=3, unique=True),
       st.sampled_from(["sum", "mean", "max", "min"]))
def test_reductions_keep_axes_like_onnx(seed, axes, name):
    x = randn(np.random.default_rng(seed), 2, 3, 4, 5)
    got = KERNELS[f"{name}_reduce"](x, axes)
    want = ort(f"Reduce{name.capitalize()}", x, np.array(axes, np.int64), keepdims=1)
    assert got.dtype == np.float32
    close(got, want)


@FEW
@given(seeds, st.integers(0, 3), st.sampled_from(["max", "min"]))
def test_arg_reductions_match_onnx(seed, axis, name):
    x = randn(np.random.default_rng(seed), 2, 3, 4, 5)
    got = KERNELS[f"arg{name}_reduce"](x, [axis])
    np.testing.assert_array_equal(got, ort(f"Arg{name.capitalize()}", x, axis=axis, keepdims=1, out_dtype=np.int64))


def test_argmax_reduce_over_several_axes_is_a_flat_index():
    x = np.zeros((2, 3, 4), np.float32)
    x[0, 2, 1] = x[1, 0, 3] = 5
    got = KERNELS["argmax_reduce"](x, [1, 2])
    np.testing.assert_array_equal(got.reshape(-1), [2 * 4 + 1, 0 * 4 + 3])
    assert got.shape == (2, 1, 1)


def test_integer_reductions_and_pools_stay_integer():
    x = np.array([100, 101, -3, -4], np.int8)
    total = KERNELS["sum_reduce"](x, [0])
    assert total.dtype == np.int32 and total.tolist() == [194]  # no int8 wrap-around
    assert KERNELS["mean_reduce"](x, [0]).tolist() == [49]  # 48.5 rounds up
    pooled = KERNELS["avg_pool"](x, [2], padding=[(0, 0)], stride=[2])
    assert pooled.dtype == np.int32 and pooled.tolist() == [101, -3]  # 100.5 and -3.5 round up (spec 4.2)
    assert KERNELS["max_pool"](x, [2], padding=[(0, 0)], stride=[2]).tolist() == [101, -3]


def test_moments_and_any_all():
    x = np.array([[1, 2, 3], [4, 4, 4]], np.float32)
    mean, variance = KERNELS["moments"](x, [1])
    np.testing.assert_allclose(mean, [[2], [4]])
    np.testing.assert_allclose(variance, [[2 / 3], [0]], rtol=1e-6)
    flags = np.array([[True, False], [True, True]])
    np.testing.assert_array_equal(KERNELS["any_reduce"](flags, [1]), [[True], [True]])
    np.testing.assert_array_equal(KERNELS["all_reduce"](flags, [1]), [[False], [True]])


@FEW
@given(seeds, st.integers(0, 2))
def test_softmax_matches_onnx_and_spans_several_axes(seed, axis):
    x = randn(np.random.default_rng(seed), 2, 3, 4) * 10
    close(KERNELS["softmax"](x, [axis]), ort("Softmax", x, axis=axis))
    several = KERNELS["softmax"](x, [1, 2])
    e = np.exp(x.astype(np.float64) - x.max(axis=(1, 2), keepdims=True))
    close(several, (e / e.sum(axis=(1, 2), keepdims=True)).astype(np.float32))


@FEW
@given(seeds, st.sampled_from([1, 3, 5]), st.floats(1e-4, 1.0), st.floats(0.5, 1.0), st.floats(0.5, 2.0))
def test_local_response_normalization_matches_onnx_lrn(seed, size, alpha, beta, bias):
    x = randn(np.random.default_rng(seed), 2, 6, 3, 3)
    got = KERNELS["local_response_normalization"](x, [1, size, 1, 1], alpha=alpha, beta=beta, bias=bias)
    close(got, ort("LRN", x, size=size, alpha=alpha, beta=beta, bias=bias), 1e-5)


@FEW
@given(seeds)
def test_batch_normalization_broadcasts_from_the_left(seed):
    rng = np.random.default_rng(seed)
    x = randn(rng, 2, 3, 4, 4)
    mean, offset, scale = randn(rng, 1, 3), randn(rng, 1, 3), randn(rng, 1, 3)
    variance = np.abs(randn(rng, 1, 3)) + 0.1
    got = KERNELS["batch_normalization"](x, mean, variance, offset, scale, epsilon=1e-3)
    want = ort("BatchNormalization", x, scale[0], offset[0], mean[0], variance[0], epsilon=1e-3)
    close(got, want, 1e-5)


def test_local_normalizations_follow_their_fragments():
    x = np.array([1, 2, 3, 6], np.float32).reshape(1, 1, 4)
    size = [1, 1, 3]  # automatic padding (1, 1) with zeros: windows [0 1 2] [1 2 3] [2 3 6] [3 6 0]
    means = np.array([1, 2, 11 / 3, 3], np.float32)
    close(KERNELS["local_mean_normalization"](x, size).reshape(-1), x.reshape(-1) - means)
    roots = np.sqrt(np.array([5, 14, 49, 45], np.float32) / 3)
    got = KERNELS["local_variance_normalization"](x, size, bias=1.0, epsilon=4.0)
    close(got.reshape(-1), x.reshape(-1) / np.maximum(roots + 1, 4))
    centered = KERNELS["local_mean_normalization"](x, size)
    close(KERNELS["local_contrast_normalization"](x, size, epsilon=1.0),
          KERNELS["local_variance_normalization"](centered, size, epsilon=1.0))


def test_l1_l2_normalization_with_bias_and_epsilon():
    x = np.array([[3, -4], [0, 0]], np.float32)
    np.testing.assert_allclose(KERNELS["l2_normalization"](x, [1]), [[0.6, -0.8], [np.nan, np.nan]])
    np.testing.assert_allclose(KERNELS["l2_normalization"](x, [1], epsilon=1.0), [[0.6, -0.8], [0, 0]])
    np.testing.assert_allclose(KERNELS["l1_normalization"](x, [1], bias=1.0), [[0.375, -0.5], [0, 0]])


# ---- tensor ops -------------------------------------------------------------------------

@st.composite
def slice_cases(draw):
    extent = draw(st.integers(1, 7))
    step = draw(st.sampled_from([1, 2, 3, -1, -2]))
    begin = draw(st.integers(-extent, extent - 1))
    end = draw(st.integers(-extent - 2, extent + 2))
    if step > 0 and end == 0:
        end = extent  # NNEF reads end 0 with unit strides as the extent; ONNX as 0
    return extent, step, begin, end


@SOME
@given(slice_cases())
def test_slice_matches_onnx(case):
    extent, step, begin, end = case
    x = np.arange(2 * extent, dtype=np.float32).reshape(2, extent)
    got = KERNELS["slice"](x, [1], [begin], [end], [step])
    want = ort("Slice", x, *(np.array([v], np.int64) for v in (begin, end, 1, step)))
    np.testing.assert_array_equal(got, want)


def test_slice_end_zero_means_the_extent_only_with_unit_strides():
    x = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(KERNELS["slice"](x, [0], [1], [0]), [1, 2, 3, 4])
    np.testing.assert_array_equal(KERNELS["slice"](x, [0], [4], [0], [-1]), [4, 3, 2, 1])
    np.testing.assert_array_equal(KERNELS["slice"](x, [0], [4], [-9], [-2]), [4, 2, 0])


@FEW
@given(seeds, st.sampled_from(["constant", "replicate", "reflect"]),
       st.lists(st.tuples(st.integers(-1, 2), st.integers(-1, 2)), min_size=3, max_size=3))
def test_pad_matches_onnx(seed, border, padding):
    x = randn(np.random.default_rng(seed), 3, 4, 5)
    if border != "constant":
        padding = [(max(p, 0), max(q, 0)) for p, q in padding]  # ONNX crops only with constant
    got = KERNELS["pad"](x, padding, border=border, value=1.5)
    pads = np.array([p for p, _ in padding] + [q for _, q in padding], np.int64)
    want = ort("Pad", x, pads, np.array(1.5, np.float32), mode={"constant": "constant", "replicate": "edge",
                                                               "reflect": "reflect"}[border])
    close(got, want)


def test_pad_reflect_even_mirrors_including_the_edge():
    got = KERNELS["pad"](np.array([1, 2, 3], np.float32), [(2, 1)], border="reflect-even")
    np.testing.assert_array_equal(got, [2, 1, 1, 2, 3, 3])


@FEW
@given(seeds, st.integers(0, 2), st.lists(st.integers(1, 3), min_size=3, max_size=3),
       st.permutations([0, 1, 2]))
def test_gather_tile_transpose_match_onnx(seed, axis, repeats, axes):
    rng = np.random.default_rng(seed)
    x = randn(rng, 3, 4, 5)
    indices = rng.integers(0, x.shape[axis], (2, 3)).astype(np.int64)
    np.testing.assert_array_equal(KERNELS["gather"](x, indices, axis=axis), ort("Gather", x, indices, axis=axis))
    np.testing.assert_array_equal(KERNELS["tile"](x, repeats), ort("Tile", x, np.array(repeats, np.int64)))
    np.testing.assert_array_equal(KERNELS["transpose"](x, list(axes)), ort("Transpose", x, perm=list(axes)))


def test_transpose_keeps_trailing_axes_not_named():
    x = np.zeros((2, 3, 4, 5))
    assert KERNELS["transpose"](x, [1, 0]).shape == (3, 2, 4, 5)


def test_reshape_squeeze_unsqueeze():
    x = np.arange(24).reshape(2, 3, 4)
    assert KERNELS["reshape"](x, [0, -1]).shape == (2, 12)
    assert KERNELS["reshape"](x, [-1], axis_start=1, axis_count=2).shape == (2, 12)
    assert KERNELS["reshape"](x, [0, 2, -1]).shape == (2, 2, 6)
    assert KERNELS["reshape"](x, [3, 1], axis_start=1, axis_count=1).shape == (2, 3, 1, 4)
    assert KERNELS["squeeze"](np.zeros((1, 2, 1, 3)), [0, 2]).shape == (2, 3)
    assert KERNELS["unsqueeze"](np.zeros((2, 3)), [0, 3]).shape == (1, 2, 3, 1)


def test_split_concat_stack_unstack():
    x = np.arange(12).reshape(2, 6)
    parts = KERNELS["split"](x, 1, [1, 2])
    assert [p.shape for p in parts] == [(2, 2), (2, 4)]
    np.testing.assert_array_equal(KERNELS["concat"](parts, 1), x)
    rows = KERNELS["unstack"](x, 0)
    assert isinstance(rows, list) and [r.shape for r in rows] == [(6,), (6,)]
    np.testing.assert_array_equal(KERNELS["stack"](rows, 1), x.T)
    copies = KERNELS["copy_n"](x, 3)
    assert len(copies) == 3 and copies[0] is not x


# ---- element-wise -----------------------------------------------------------------------

@FEW
@given(seeds, st.sampled_from(["Add", "Sub", "Mul", "Div", "Pow", "Less", "Greater", "Equal"]))
def test_binary_ops_broadcast_from_the_left(seed, op):
    rng = np.random.default_rng(seed)
    x, y = np.abs(randn(rng, 2, 3, 4)) + 0.5, randn(rng, 2, 3)
    name = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow",
            "Less": "lt", "Greater": "gt", "Equal": "eq"}[op]
    got = KERNELS[name](x, y)
    # NNEF aligns [2, 3] with [2, 3, 4] as [2, 3, 1]; ONNX would need it spelled out.
    want = ort(op, x, y.reshape(2, 3, 1), out_dtype=bool if op in ("Less", "Greater", "Equal") else None)
    close(got, want, 1e-6)


@pytest.mark.parametrize("name, op", [
    ("exp", "Exp"), ("log", "Log"), ("sin", "Sin"), ("cos", "Cos"), ("tan", "Tan"), ("asin", "Asin"),
    ("acos", "Acos"), ("atan", "Atan"), ("sinh", "Sinh"), ("cosh", "Cosh"), ("tanh", "Tanh"),
    ("asinh", "Asinh"), ("atanh", "Atanh"), ("abs", "Abs"), ("neg", "Neg"), ("sign", "Sign"),
    ("sqrt", "Sqrt"), ("floor", "Floor"), ("ceil", "Ceil"), ("sigmoid", "Sigmoid"), ("relu", "Relu"),
    ("softplus", "Softplus"), ("elu", "Elu"), ("erf", "Erf"), ("tract_core_erf", "Erf"), ("rcp", "Reciprocal")])
def test_unary_ops_match_onnx(name, op):
    x = np.linspace(-0.95, 0.95, 101, dtype=np.float32)
    if name in ("log", "sqrt"):
        x = np.abs(x) + 0.01
    got = KERNELS[name](x)
    assert got.dtype == np.float32
    close(got, ort(op, x), 2e-6)


def test_erf_is_accurate_to_float32_and_gelu_follows_it():
    grid = np.linspace(-6, 6, 20001)
    exact = np.array([math.erf(v) for v in grid])
    assert np.max(np.abs(KERNELS["erf"](grid) - exact)) < 1e-10  # float64 path
    assert np.max(np.abs(KERNELS["erf"](grid.astype(np.float32)) - exact)) < 1e-7
    x = np.array([-3, -0.5, 0, 1, 2], np.float32)
    exact_gelu = [0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.tolist()]
    close(KERNELS["tract_gelu"](x), np.array(exact_gelu, np.float32), 1e-6)


def test_remaining_element_wise_ops():
    x = np.array([0.25, 1, 4], np.float32)
    close(KERNELS["rsqr"](x), np.array([16, 1, 1 / 16], np.float32))
    close(KERNELS["rsqrt"](x), np.array([2, 1, 0.5], np.float32))
    close(KERNELS["log2"](x), np.array([-2, 0, 2], np.float32))
    close(KERNELS["sqr"](x), np.array([1 / 16, 1, 16], np.float32))
    close(KERNELS["acosh"](np.float32(1)), np.float32(0))
    copied = KERNELS["copy"](x)
    assert copied is not x and np.array_equal(copied, x)
    assert np.array_equal(KERNELS["update"](x, 2 * x), 2 * x)
    a, b = np.array([True, True, False]), np.array([True, False, False])
    assert KERNELS["and"](a, b).tolist() == [True, False, False]
    assert KERNELS["or"](a, b).tolist() == [True, True, False]
    assert KERNELS["not"](a).tolist() == [False, False, True]
    y = np.array([1, 1, 1], np.float32)
    assert KERNELS["ne"](x, y).tolist() == [True, False, True]
    assert KERNELS["le"](x, y).tolist() == [True, True, False]
    assert KERNELS["ge"](x, y).tolist() == [False, True, True]
    assert KERNELS["exp"](np.array([0, 1], np.int32)).dtype == np.float32  # no integer exp


def test_activations_follow_their_fragments():
    x = np.array([-2, -0.5, 0, 1.5], np.float32)
    sig = 1 / (1 + np.exp(-x.astype(np.float64)))
    close(KERNELS["gelu"](x), (x * (1 / (1 + np.exp(-1.702 * x.astype(np.float64))))).astype(np.float32))
    close(KERNELS["silu"](x), (x * sig).astype(np.float32))
    close(KERNELS["leaky_relu"](x, alpha=0.1), np.array([-0.2, -0.05, 0, 1.5], np.float32))
    close(KERNELS["prelu"](x, np.array([0.5, 1, 1, 1], np.float32)), np.array([-1, -0.5, 0, 1.5], np.float32))
    close(KERNELS["selu"](x, **{"alpha": 2.0, "lambda": 3.0}), (3 * np.where(x < 0, 2 * np.expm1(x), x)).astype(np.float32))
    close(KERNELS["clamp"](x, np.float64(-1), np.float64(1)), np.array([-1, -0.5, 0, 1], np.float32))
    close(KERNELS["softabs"](x, epsilon=0.25), np.sqrt(x * x + 0.25))
    assert KERNELS["sigmoid"](np.array([-200, 200], np.float32)).tolist() == [0, 1]


def test_rsqrt_is_pow_minus_a_half_at_signed_zeros():
    # the specification's rsqrt is x ^ -0.5: rsqrt(-0) is +inf (IEEE pow and rSqrt), not 1 / sqrt(-0)
    x = np.array([-0.0, 0.0, 0.25, 4, -1, np.inf], np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        reference = np.power(x.astype(np.float64), -0.5)
    got = KERNELS["rsqrt"](x)
    assert got.dtype == np.float32
    assert np.array_equal(got, reference.astype(np.float32), equal_nan=True)
    assert not np.signbit(got[0])


@pytest.mark.parametrize("shape", [(), (1,), (2, 3)])
def test_clamp_of_any_rank_matches_a_float64_clip(shape):
    rng = np.random.default_rng(len(shape))
    x = rng.uniform(-3, 3, shape).astype(np.float32)
    for low, high in ((-1.0, 1.0), (0.5, 2.0)):
        got = KERNELS["clamp"](x, np.float32(low), np.float32(high))
        assert np.shape(got) == shape
        assert np.array_equal(got, np.clip(x.astype(np.float64), low, high).astype(np.float32))


def test_zero_point_quantize_follows_its_fragment_where_the_scale_is_zero():
    # the body's clamp is max(min(s, r), low): a select, so 0 / 0 = NaN clamps to the top code
    x = np.array([0.0, 1.0, -1.0, 0.3], np.float32)
    scale = np.array([0.0, 0.0, 0.1, 0.1], np.float32)
    zero = np.array([0, 3, 2, 0], np.int32)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.floor(x.astype(np.float64) / scale + 0.5) + zero
        upper = np.where(s < 255, s, 255.0)
        code = np.where(upper > 0, upper, 0.0)
        reference = (code - zero) * scale
    got = KERNELS["zero_point_linear_quantize"](x, zero, scale, bits=8, signed=False, symmetric=False)
    assert np.array_equal(got, reference.astype(np.float32), equal_nan=True)
    assert not np.isnan(got).any()


def test_round_is_floor_of_x_plus_a_half():
    """Specification 1.0.5, section 4.2: y = floor(x + 0.5)."""
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999997, -0.49999997, -2.6], np.float32)
    np.testing.assert_array_equal(KERNELS["round"](x), [-2, -1, 0, 1, 2, 3, 0, 0, -3])


def test_float32_stays_float32_next_to_float64_literals():
    x = np.ones((2, 3), np.float32)
    literal = np.array(0.5)  # a literal arrives as a 0-d float64 array
    for name in ("add", "mul", "pow", "max"):
        assert KERNELS[name](x, literal).dtype == np.float32
    assert KERNELS["select"](np.array(True), x, literal).dtype == np.float32
    assert KERNELS["add"](np.int32(3), np.array(2)).dtype == np.int32
    np.testing.assert_array_equal(KERNELS["div"](np.array([7, -7], np.int32), np.array(2, np.int32)), [3, -3])


def test_min_max_select_are_the_fragments_selects():
    nan = np.float32(np.nan)
    # min(x, y) = select(x < y, x, y): a comparison with NaN is false, so y is taken.
    assert np.isnan(KERNELS["min"](np.float32(1), nan))
    assert KERNELS["min"](nan, np.float32(1)) == 1
    got = KERNELS["select"](np.array([True, False]), np.ones((2, 2)), np.zeros((2, 2)))
    np.testing.assert_array_equal(got, [[1, 1], [0, 0]])  # condition [2] aligns as [2, 1]


# ---- quantization and casts -------------------------------------------------------------

def test_linear_quantize_rounds_to_the_grid():
    x = np.array([-1, 0.1, 0.4, 0.5, 2], np.float32)
    got = KERNELS["linear_quantize"](x, np.float32(0), np.float32(1), bits=2)  # levels 0, 1/3, 2/3, 1
    np.testing.assert_allclose(got, [0, 0, 1 / 3, 2 / 3, 1], rtol=1e-6)
    signed = KERNELS["min_max_linear_quantize"](np.array([0.3], np.float32), np.float32(-1), np.float32(1),
                                                bits=2, signed=True, symmetric=True)
    np.testing.assert_allclose(signed, [0])  # 2 levels over [-1, 1]: -1, 0, 1


@FEW
@given(seeds, st.sampled_from([(np.uint8, False), (np.int8, True)]))
def test_zero_point_linear_quantize_matches_onnx_qdq(seed, kind):
    dtype, signed = kind
    x = randn(np.random.default_rng(seed), 50) * 2
    scale, zero = np.float32(0.02), dtype(3)
    got = KERNELS["zero_point_linear_quantize"](x, np.array(zero), scale, bits=8, signed=signed, symmetric=False)
    want = ort("DequantizeLinear", ort("QuantizeLinear", x, scale, zero, out_dtype=dtype), scale, zero,
               out_dtype=np.float32)
    close(got, want, 1e-6)


def test_zero_point_linear_quantize_symmetric_and_narrow():
    x = np.array([-10, 10, 0.74], np.float32)
    got = KERNELS["zero_point_linear_quantize"](x, np.array(0), np.float32(0.5), bits=3, signed=True, symmetric=True)
    np.testing.assert_allclose(got, [-1.5, 1.5, 0.5])  # codes clamp to [-3, 3]


def test_logarithmic_quantize():
    x = np.array([0, 3, -0.3, 100, 1e-9], np.float32)
    got = KERNELS["logarithmic_quantize"](x, np.float32(10), bits=3)  # exponents in [-3, 4]
    np.testing.assert_allclose(got, [0, 4, -0.25, 16, 0.125])


def test_casts():
    x = np.array([-1.7, 0.0, 2.9], np.float32)
    np.testing.assert_array_equal(KERNELS["tract_core_cast"](x, to="i32"), [-1, 0, 2])
    assert KERNELS["tract_core_cast"](np.array(16), to="f32").dtype == np.float32
    np.testing.assert_array_equal(KERNELS["cast"](x, dtype="logical"), [True, False, True])
    assert KERNELS["cast"](x, dtype="integer").dtype == np.int32
    np.testing.assert_array_equal(KERNELS["constant"]([2, 2], [1.5]), np.full((2, 2), 1.5, np.float32))
    np.testing.assert_array_equal(KERNELS["add_n"]([x, x, x]), 3 * x)
