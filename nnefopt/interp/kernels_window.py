"""Sliding-window kernels: conv, deconv, box/debox, pooling, argmax_pool, sample/desample.

Geometry follows the Khronos reference: output extent `(n + p + q - (k-1)*d - 1) // s + 1`;
automatic padding (`padding = []`) makes the output `ceil(n / s)` and splits the total
padding with the smaller half in front. Transposed ops (deconv, debox, desample) compute
the full transposed result and crop `padding` off it; automatic padding there is
derived from the output extent (`output_shape`, else `n * s`).

Speed: dense and grouped conv are im2col (a strided view, one copy) plus one matmul per
group. Depthwise conv, pooling and the transposed scatter loop over the kernel's taps
(9 for 3x3), each tap a whole-tensor strided slice: a loop over taps, never pixels.
"""

from __future__ import annotations

import math
from functools import reduce

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .kernels_elementwise import accumulating, average, floating
from .kernels_tensor import pad_border, padder
from .registry import kernel

# ---- geometry ---------------------------------------------------------------------------


def _auto_padding(extents, size, stride, dilation, counts):
    """(front, back) per axis making `counts` windows fit `extents`, smaller half in front."""
    totals = [max((m - 1) * s + (k - 1) * d + 1 - n, 0)
              for n, k, s, d, m in zip(extents, size, stride, dilation, counts)]
    return [(t // 2, t - t // 2) for t in totals]


def _geometry(extents, size, padding, stride, dilation):
    """Forward window geometry: padding, stride, dilation with defaults, and output extents."""
    stride = list(stride) or [1] * len(extents)
    dilation = list(dilation) or [1] * len(extents)
    if not padding:
        padding = _auto_padding(extents, size, stride, dilation, [-(-n // s) for n, s in zip(extents, stride)])
    counts = [(n + p + q - (k - 1) * d - 1) // s + 1
              for n, k, (p, q), s, d in zip(extents, size, padding, stride, dilation)]
    return list(padding), stride, dilation, counts


def _transposed_geometry(extents, size, padding, stride, dilation, output_shape):
    """Transposed window geometry: padding, stride, dilation and the output extents."""
    stride = list(stride) or [1] * len(extents)
    dilation = list(dilation) or [1] * len(extents)
    if output_shape:
        outputs = list(output_shape)
    elif padding:
        outputs = [(n - 1) * s + (k - 1) * d + 1 - p - q
                   for n, k, (p, q), s, d in zip(extents, size, padding, stride, dilation)]
    else:
        outputs = [n * s for n, s in zip(extents, stride)]
    if not padding:
        padding = _auto_padding(outputs, size, stride, dilation, extents)
    return list(padding), stride, dilation, outputs


def _taps(size, stride, dilation, counts):
    """Per kernel position (row-major): its flat index and the strided slices that pick,
    from a padded tensor, the element at that position of every window."""
    for flat, tap in enumerate(np.ndindex(*size)):
        yield flat, tuple(slice(t * d, t * d + (m - 1) * s + 1, s)
                          for t, s, d, m in zip(tap, stride, dilation, counts))


def _valid_counts(extents, size, padding, stride, dilation, counts):
    """How many positions of each window fall inside the unpadded tensor (border 'ignore')."""
    per_axis = []
    for n, k, (p, _), s, d, m in zip(extents, size, padding, stride, dilation, counts):
        position = np.arange(m)[:, None] * s + np.arange(k)[None, :] * d - p
        per_axis.append(((position >= 0) & (position < n)).sum(axis=1))
    return reduce(np.multiply.outer, per_axis, np.ones((), np.int64))


def _crop(full, fronts, extents):
    """`full[..., p:p + n]` on the trailing axes, zero-filled where that runs past the end."""
    lead = full.ndim - len(fronts)
    out = np.zeros(full.shape[:lead] + tuple(extents), full.dtype)
    spans = [max(min(n, m - p), 0) for p, n, m in zip(fronts, extents, full.shape[lead:])]
    out[(...,) + tuple(slice(0, w) for w in spans)] = full[(...,) + tuple(slice(p, p + w) for p, w in zip(fronts, spans))]
    return out


def _scatter_crop(values, leading, extents, size, geometry, dtype):
    """A transposed window op: `values(tap)` (shaped `leading + extents`) is added at
    that tap of every window of the full output, which is then cropped by the padding."""
    padding, stride, dilation, outputs = geometry
    full = np.zeros(tuple(leading) + tuple(_full_extents(extents, size, stride, dilation)), dtype)
    keep = (slice(None),) * len(leading)
    for flat, where in _taps(size, stride, dilation, extents):
        full[keep + where] += values(flat)
    return _crop(full, [p for p, _ in padding], outputs)


def _full_extents(extents, size, stride, dilation):
    return [(n - 1) * s + (k - 1) * d + 1 for n, k, s, d in zip(extents, size, stride, dilation)]


# ---- convolution ------------------------------------------------------------------------


def add_bias(output, bias):
    """Bias is per output channel: a scalar, `[C]` or `[1, C]` (not element-wise broadcast)."""
    return _bias_adder(bias, output.dtype, output.ndim)(output)


def _bias_adder(bias, dtype, rank):
    """The function adding `bias` (per output channel) to an output of `dtype` and `rank`."""
    bias = np.asarray(bias).reshape(-1).astype(dtype)
    if bias.size == 1:
        return (lambda output: output + bias[0]) if bias[0] else (lambda output: output)
    bias = bias.reshape((1, -1) + (1,) * (rank - 2))
    return lambda output: output + bias


def _windows(shape, dtype, size, stride, dilation, counts):
    """The function giving, for a padded input of `shape` [n, c, *spatial], the view
    [n, c, *counts, *size] of its windows: strides worked out once for a contiguous
    input (numpy's sliding_window_view otherwise, which checks its arguments per call)."""
    rank = len(size)
    itemsize = np.dtype(dtype).itemsize
    contiguous = [math.prod(shape[i + 1:]) * itemsize for i in range(len(shape))]
    view_shape = (*shape[:2], *counts, *size)
    strides = (*contiguous[:2], *(contiguous[2 + i] * s for i, s in enumerate(stride)),
               *(contiguous[2 + i] * d for i, d in enumerate(dilation)))
    spans = [(k - 1) * d + 1 for k, d in zip(size, dilation)]
    select = (slice(None),) * 2 + tuple(slice(None, None, s) for s in stride) + \
        tuple(slice(None, None, d) for d in dilation)
    axes = tuple(range(2, 2 + rank))
    shape, dtype = tuple(shape), np.dtype(dtype)

    def windows(padded):
        if padded.flags.c_contiguous and padded.shape == shape and padded.dtype == dtype:
            return np.ndarray(view_shape, dtype, padded, 0, strides)
        return sliding_window_view(padded, spans, axis=axes)[select]

    return windows


def _grouped_conv(shape, filter, groups, stride, dilation, counts):
    """im2col over a strided window view, then one matmul per group: the function doing
    it to a padded input of `shape`."""
    n, channels = shape[:2]
    size, rank = filter.shape[2:], filter.ndim - 2
    windows = _windows(shape, filter.dtype, size, stride, dilation, counts)
    split = (n, groups, channels // groups, *counts, *size)
    # [n, g, cg, *out, *k] -> [g, cg * k, n * out]: the one copy im2col makes, whose
    # innermost run is a row of the input (a strided row, under a stride).
    order = (1, 2) + tuple(range(3 + rank, 3 + 2 * rank)) + (0,) + tuple(range(3, 3 + rank))
    flat = (groups, -1, n * math.prod(counts))
    weights = filter.reshape(groups, filter.shape[0] // groups, -1).transpose(0, 2, 1)
    grouped = (groups, n, *counts, -1)
    back = (1, 0, 2 + rank) + tuple(range(2, 2 + rank))
    result_shape = (n, filter.shape[0], *counts)

    def apply(padded):
        columns = windows(padded).reshape(split).transpose(order).reshape(flat).transpose(0, 2, 1)
        # Made contiguous: every later operation reads it faster so.
        return np.ascontiguousarray((columns @ weights).reshape(grouped).transpose(back)).reshape(result_shape)

    return apply


# Below this many output positions per channel, a depthwise conv is one matmul per channel
# of the window view rather than a loop over taps (whose per-tap calls then dominate).
_SMALL_DEPTHWISE = 256


def _depthwise_conv(shape, filter, stride, dilation, counts):
    """Each output channel reads one input channel: the function doing it to a padded
    input of `shape`."""
    n, channels = shape[:2]
    multiplier = filter.shape[0] // channels
    rank = filter.ndim - 2
    weights = filter.reshape(channels, multiplier, -1)
    accumulated, result_shape = (n, channels, multiplier, *counts), (n, channels * multiplier, *counts)
    if math.prod(counts) < _SMALL_DEPTHWISE:
        windows = _windows(shape, filter.dtype, filter.shape[2:], stride, dilation, counts)
        flat_windows = (n, channels, math.prod(counts), -1)
        window_weights = np.ascontiguousarray(weights.transpose(0, 2, 1))  # [c, k, multiplier]

        def product(padded):
            taps = windows(padded).reshape(flat_windows)  # the im2col copy, small here
            return np.ascontiguousarray((taps @ window_weights).transpose(0, 1, 3, 2)).reshape(result_shape)

        return product
    taps = [((slice(None), slice(None), None) + where, weights[:, :, flat].reshape((channels, multiplier) + (1,) * rank))
            for flat, where in _taps(filter.shape[2:], stride, dilation, counts)]

    def apply(padded):
        output = np.zeros(accumulated, padded.dtype)
        for where, tap_weights in taps:
            output += padded[where] * tap_weights
        return output.reshape(result_shape)

    return apply


def _conv_of(shape, dtype, filter, bias, border, padding, stride, dilation, groups):
    """conv of inputs of `shape` and `dtype` (the accumulation's) by `filter` (of that
    dtype too) and `bias`: everything that depends on no input value done once."""
    groups = groups or shape[1]
    padding, stride, dilation, counts = _geometry(shape[2:], filter.shape[2:], padding, stride, dilation)
    # 'ignore' leaves padded positions out of the sum, which is what zeros do.
    widths = [(0, 0)] * 2 + padding
    pad = padder(shape, widths, "constant" if border == "ignore" else border)
    padded_shape = tuple(n + p + q for n, (p, q) in zip(shape, widths))
    if filter.shape[1] == 1 and groups == shape[1]:
        convolve = _depthwise_conv(padded_shape, filter, stride, dilation, counts)
    else:
        convolve = _grouped_conv(padded_shape, filter, groups, stride, dilation, counts)
    biased = _bias_adder(bias, dtype, len(shape))
    return lambda x: biased(convolve(pad(x)))


@kernel("conv")
def conv(input, filter, bias=0.0, border="constant", padding=(), stride=(), dilation=(), groups=1):
    x, w = accumulating(input, filter)
    return _conv_of(x.shape, x.dtype, w, bias, border, padding, stride, dilation, groups)(x)


def _prepare_conv(known, attribs):
    """conv with its filter and bias known and its input's shape and dtype fixed: the
    geometry, taps and filter layout made once (the IR interpreter's plan asks)."""
    (shape, dtype, _), (_, _, filter), (_, _, bias) = known
    if shape is None or filter is None or bias is None or np.dtype(dtype).kind != "f" or filter.dtype != dtype:
        return None
    run = _conv_of(tuple(shape), np.dtype(dtype), filter, bias, **attribs)

    def prepared(input, filter, bias):
        if input.dtype == dtype and input.shape == shape:
            return run(input)
        return conv(input, filter, bias, **attribs)

    return prepared


conv.prepare = _prepare_conv


@kernel("deconv")
def deconv(input, filter, bias=0.0, border="constant", padding=(), stride=(), dilation=(),
           output_shape=(), groups=1):
    """Transposed conv: every input element adds its filter-weighted window to the output.

    Border 'replicate' is the Khronos tools' reading: extend the input by one replicated
    element per side and crop one stride more; 'reflect' modes have no transposed form.
    """
    x, w = accumulating(input, filter)
    n, channels = x.shape[:2]
    # groups 0: one group per input channel. (Khronos' shape rule takes output_shape[1],
    # the same number whenever its own checks pass: they need a multiplier of 1.)
    groups = groups or channels
    size = w.shape[2:]
    padding, stride, dilation, outputs = _transposed_geometry(
        x.shape[2:], size, padding, stride, dilation, output_shape[2:] if output_shape else ())
    if border == "replicate":
        x = pad_border(x, [(0, 0)] * 2 + [(1, 1)] * len(size), "replicate")
        padding = [(p + s, q + s) for (p, q), s in zip(padding, stride)]
    elif border not in ("constant", "ignore"):
        raise NotImplementedError(f"deconv with border {border!r}")
    spatial = x.shape[2:]
    per_group = channels // groups
    columns = x.reshape(n, groups, per_group, -1).transpose(1, 2, 0, 3).reshape(groups, per_group, -1)
    weights = w.reshape(groups, per_group, -1).transpose(0, 2, 1)
    # [g, og * k, n * spatial] -> [k, n, g, og, *spatial]: one contiguous block per tap.
    products = (weights @ columns).reshape((groups, w.shape[1], math.prod(size), n, *spatial))
    products = np.ascontiguousarray(products.transpose((2, 3, 0, 1) + tuple(range(4, 4 + len(size)))))
    products = products.reshape((len(products), n, groups * w.shape[1], *spatial))
    geometry = (padding, stride, dilation, outputs)
    output = _scatter_crop(products.__getitem__, products.shape[1:3], spatial, size, geometry, x.dtype)
    return add_bias(output, bias)


@kernel("separable_conv")
def separable_conv(input, plane_filter, point_filter, bias=0.0, border="constant", padding=(),
                   stride=(), dilation=(), groups=1):
    filtered = conv(input, plane_filter, border=border, padding=padding, stride=stride,
                    dilation=dilation, groups=0)
    return conv(filtered, point_filter, bias, groups=groups)


@kernel("separable_deconv")
def separable_deconv(input, plane_filter, point_filter, bias=0.0, border="constant", padding=(),
                     stride=(), dilation=(), output_shape=(), groups=1):
    filtered = deconv(input, point_filter, groups=groups)
    return deconv(filtered, plane_filter, bias, border=border, padding=padding, stride=stride,
                  dilation=dilation, output_shape=output_shape, groups=0)


# ---- pooling ----------------------------------------------------------------------------


def _pooled(input, size, border, padding, stride, dilation, fill):
    """The padded input and window geometry of a pooling op over all axes.

    `fill` is the value of padded positions under 'ignore' (the op's identity);
    'constant' pads with 0, the other borders copy input values.
    """
    x = np.asarray(input)
    padding, stride, dilation, counts = _geometry(x.shape, size, padding, stride, dilation)
    if border == "ignore":
        padded = pad_border(x, padding, "constant", fill)
    else:
        padded = pad_border(x, padding, border)
    return padded, (x.shape, padding, stride, dilation, counts)


def _sum_windows(padded, size, stride, dilation, counts):
    accumulator = np.int32 if padded.dtype.kind in "iub" else padded.dtype
    total = np.zeros(counts, accumulator)
    for _, where in _taps(size, stride, dilation, counts):
        total += padded[where]
    return total


@kernel("box")
def box(input, size, border="constant", padding=(), stride=(), dilation=(), normalize=False):
    padded, (extents, padding, stride, dilation, counts) = _pooled(input, size, border, padding, stride, dilation, 0)
    total = _sum_windows(padded, size, stride, dilation, counts)
    if not normalize:
        return total
    if border == "ignore":
        return average(total, _valid_counts(extents, size, padding, stride, dilation, counts))
    return average(total, math.prod(size))


@kernel("avg_pool")
def avg_pool(input, size, border="constant", padding=(), stride=(), dilation=()):
    return box(input, size, border, padding, stride, dilation, normalize=True)


@kernel("rms_pool")
def rms_pool(input, size, border="constant", padding=(), stride=(), dilation=()):
    x = floating(input)
    return np.sqrt(avg_pool(x * x, size, border, padding, stride, dilation))


def _lowest(dtype):
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


@kernel("max_pool")
def max_pool(input, size, border="constant", padding=(), stride=(), dilation=()):
    x = np.asarray(input)
    return _max_pool_of(x.shape, x.dtype, size, border, padding, stride, dilation)(x)


def _max_pool_of(shape, dtype, size, border, padding, stride, dilation):
    """max_pool of inputs of `shape` and `dtype`: geometry, padding and taps made once."""
    padding, stride, dilation, counts = _geometry(shape, size, padding, stride, dilation)
    pad = padder(shape, padding, "constant", _lowest(dtype)) if border == "ignore" else padder(shape, padding, border)
    first, *rest = [where for _, where in _taps(size, stride, dilation, counts)]

    def pooled(x):
        padded = pad(x)
        output = padded[first].copy()
        for where in rest:
            np.maximum(output, padded[where], out=output)
        return output

    return pooled


def _prepare_max_pool(known, attribs):
    """max_pool of an input of fixed shape and dtype, made once (the IR interpreter's plan asks)."""
    ((shape, dtype, _),) = known
    if shape is None or dtype is None:
        return None
    run = _max_pool_of(tuple(shape), np.dtype(dtype), **attribs)

    def prepared(input):
        if input.dtype == dtype and input.shape == shape:
            return run(input)
        return max_pool(input, **attribs)

    return prepared


max_pool.prepare = _prepare_max_pool


@kernel("argmax_pool")
def argmax_pool(input, size, border="constant", padding=(), stride=(), dilation=()):
    """Index of each window's maximum within the window (row-major over `size`); the
    first one on ties. Under 'constant' the padded zeros compete too."""
    x = np.asarray(input)
    padded, (_, _, stride, dilation, counts) = _pooled(x, size, border, padding, stride, dilation, _lowest(x.dtype))
    taps = _taps(size, stride, dilation, counts)
    best = padded[next(taps)[1]].copy()
    index = np.zeros(counts, np.int32)
    for flat, where in taps:
        better = padded[where] > best
        best[better] = padded[where][better]
        index[better] = flat
    return index


@kernel("sample")
def sample(input, index, size, border="constant", padding=(), stride=(), dilation=()):
    """The element at position `index` of each window (as `argmax_pool` numbers them)."""
    x = np.asarray(input)
    padded, (_, _, stride, dilation, counts) = _pooled(x, size, border, padding, stride, dilation, 0)
    output = np.zeros(counts, x.dtype)
    for flat, where in _taps(size, stride, dilation, counts):
        np.copyto(output, padded[where], where=index == flat)
    return output


@kernel("max_pool_with_index")
def max_pool_with_index(input, size, border="constant", padding=(), stride=(), dilation=()):
    index = argmax_pool(input, size, border, padding, stride, dilation)
    return sample(input, index, size, border, padding, stride, dilation), index


def _transposed_pool_geometry(x, size, border, padding, stride, dilation, output_shape):
    if border not in ("constant", "ignore"):
        raise NotImplementedError(f"transposed pooling with border {border!r}")
    return _transposed_geometry(x.shape, size, padding, stride, dilation, output_shape)


@kernel("debox")
def debox(input, size, border="constant", padding=(), stride=(), dilation=(), output_shape=(), normalize=False):
    """The transpose of `box`: each input element is added to every position of its
    window; normalized, it is first divided by what `box` would divide that window by."""
    x = np.asarray(input)
    geometry = _transposed_pool_geometry(x, size, border, padding, stride, dilation, output_shape)
    if normalize and border == "ignore":
        padding, stride, dilation, outputs = geometry
        x = average(x, _valid_counts(outputs, size, padding, stride, dilation, x.shape))
    elif normalize:
        x = average(x, math.prod(size))
    return _scatter_crop(lambda _: x, (), x.shape, size, geometry, x.dtype)


@kernel("desample")
def desample(input, index, size, border="constant", padding=(), stride=(), dilation=(), output_shape=()):
    """The transpose of `sample`: each element goes back to position `index` of its window."""
    x, index = np.asarray(input), np.asarray(index)
    geometry = _transposed_pool_geometry(x, size, border, padding, stride, dilation, output_shape)
    zero = np.zeros((), x.dtype)
    return _scatter_crop(lambda flat: np.where(index == flat, x, zero), (), x.shape, size, geometry, x.dtype)


# ---- windowed normalization -------------------------------------------------------------


def _local_mean(x, size):
    return box(x, size, normalize=True)


@kernel("local_response_normalization")
def local_response_normalization(input, size, alpha=1.0, beta=0.5, bias=1.0):
    x = floating(input)
    sigma = x.dtype.type(bias) + x.dtype.type(alpha) * _local_mean(x * x, size)
    return x / sigma ** x.dtype.type(beta)


@kernel("local_mean_normalization")
def local_mean_normalization(input, size):
    x = floating(input)
    return x - _local_mean(x, size)


@kernel("local_variance_normalization")
def local_variance_normalization(input, size, bias=0.0, epsilon=0.0):
    x = floating(input)
    sigma = np.sqrt(_local_mean(x * x, size))
    return x / np.maximum(sigma + x.dtype.type(bias), x.dtype.type(epsilon))


@kernel("local_contrast_normalization")
def local_contrast_normalization(input, size, bias=0.0, epsilon=0.0):
    return local_variance_normalization(local_mean_normalization(input, size), size, bias, epsilon)
