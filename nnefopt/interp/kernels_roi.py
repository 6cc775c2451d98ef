"""Region-of-interest kernels: avg/max_roi_pool, roi_resample, avg/max_roi_align.

Conventions, and where each comes from (no Khronos tool implements these operations:
NNEF-Tools' converters and interpreters list them as unsupported, so the spec text is all):

* `rois` is [R, 2M] for M spatial axes: every row holds the region's start corner, then
  its end corner, in axis order, so (y0, x0, y1, x1) in 2-D. Coordinates are in input
  pixel units, the end exclusive: the extent is `end - start` and the whole image is
  (0, 0, H, W). Source: NNEF 1.0.5 specification, section 4.6.1 (the row is
  "(y0, x0, y1, x1)", the height "y1 - y0"); the NNEF 2.0 draft gives `rois: real[n, 2 * d]`.
  The M-axis order (starts, then ends) generalizes the 2-D tuple; the spec shows only 2-D.
* `batch_index` picks each region's batch item. The 1.0.5 text says shape (R, 1), the
  Khronos parser's shape rule and nnefopt's say (R,): both are accepted.
* roi_pool (spec 4.6.1): coordinates are rounded to the nearest integer, here by
  nnefopt's `round` (halves away from zero, as ONNX MaxRoiPool; the spec's own `round`,
  floor(x + 0.5), differs only at negative halves). The region of extent r is split into
  p cells of extent ceil(r / p) at stride floor(r / p), and each cell is averaged or
  maximized as avg_pool/max_pool would. The spec says cell i starts at "c + i * s"; read
  here as `start + i * s`, since a start of `c` would skip the region's first rows and
  step outside it. Positions outside the input count as 0 and
  an average divides by the whole cell, as the pools' default border 'constant' does. A
  region with r <= 0 has empty cells, which give 0 (the spec does not say; Caffe and
  ONNX MaxRoiPool give empty bins 0).
* roi_resample (spec 4.6.2): "multilinear interpolation", methods as for
  multilinear_upsample (spec 4.3.4). Output index i of h along an axis samples at
      'symmetric'   start + (i + 0.5) * r / h - 0.5
      'asymmetric'  start + i * r / h
      'aligned'     start + i * (r - 1) / (h - 1)     (start alone when h == 1)
  The spec gives these for the whole input only; the forms here are chosen so that the
  whole-image region with h = n * f reproduces multilinear_upsample exactly. Taps outside
  the input are clamped to the edge, as the upsampling text describes ('replicate').
  'symmetric' samples where ONNX RoiAlign 'half_pixel' does (the tests check it).
* avg/max_roi_align: the stdlib bodies, resample to output_size * sampling_rate and pool
  sampling_rate blocks. The bodies pass a spatial-only `size`/`stride` to avg_pool/max_pool,
  whose windows span every axis, so they cannot run as written; these kernels pool the
  spatial blocks the bodies mean.
"""

from __future__ import annotations

import numpy as np

from .kernels_elementwise import floating, nnef_round
from .kernels_resize import _linear_taps, _mix, area_downsample
from .registry import kernel

_SAMPLING = {
    "symmetric": lambda start, extent, i, h: start + (i + 0.5) * extent / h - 0.5,
    "asymmetric": lambda start, extent, i, h: start + i * extent / h,
    "aligned": lambda start, extent, i, h: start + i * (extent - 1) / max(h - 1, 1),
}


def _regions(input, rois, batch_index):
    """Per region: its batch item, start corner and end corner (float64, [R, M] each)."""
    spatial = np.ndim(input) - 2
    rois = np.asarray(rois, np.float64)
    if rois.ndim != 2 or rois.shape[1] != 2 * spatial:
        raise ValueError(f"'rois' must be [R, {2 * spatial}], found {list(rois.shape)}")
    batch = np.asarray(batch_index).reshape(-1).astype(np.int64)
    if len(batch) != len(rois):
        raise ValueError(f"'batch_index' has {len(batch)} items for {len(rois)} regions")
    if np.any((batch < 0) | (batch >= np.shape(input)[0])):
        raise ValueError(f"'batch_index' out of range [0, {np.shape(input)[0]}): {batch.tolist()}")
    return batch, rois[:, :spatial], rois[:, spatial:]


def _per_region(input, rois, batch_index, output_size, resize):
    """Stack `resize(item, start, end)` over regions; `resize` maps [C, *spatial] -> [C, *output_size]."""
    batch, starts, ends = _regions(input, rois, batch_index)
    output = np.empty((len(batch), np.shape(input)[1], *output_size), input.dtype)
    for r, (b, start, end) in enumerate(zip(batch, starts, ends)):
        output[r] = resize(input[b], start, end)
    return output


@kernel("roi_resample")
def roi_resample(input, rois, batch_index, output_size, method="symmetric"):
    if method not in _SAMPLING:
        raise ValueError(f"unsupported method {method!r}")
    x = floating(input)

    def resize(item, start, end):
        # Separable: one two-tap linear mix per spatial axis, gathering only the rows sampled.
        for axis, (a, b, h) in enumerate(zip(start, end, output_size), start=1):
            source = _SAMPLING[method](a, b - a, np.arange(h, dtype=np.float64), h)
            item = _mix(item, axis, *_linear_taps(source, item.shape[axis], "replicate"))
        return item

    return _per_region(x, rois, batch_index, output_size, resize)


def _cells(start, end, cells, extent):
    """Tap table of the spec's roi_pool cells along one axis: indices [cells, taps] clamped
    into the input and a mask of those inside it (an empty cell gets one masked tap)."""
    start, end = nnef_round(np.float64(start)), nnef_round(np.float64(end))
    length = end - start
    size, stride = max(int(np.ceil(length / cells)), 0), max(int(np.floor(length / cells)), 0)
    index = int(start) + stride * np.arange(cells)[:, None] + np.arange(max(size, 1))[None, :]
    inside = (index >= 0) & (index < extent) & (size > 0)
    return np.clip(index, 0, extent - 1), inside, size


@kernel("avg_roi_pool")
def avg_roi_pool(input, rois, batch_index, output_size):
    x = floating(input)

    def pool(item, start, end):
        # A box mean is separable: per axis, the masked mean over the cell's taps.
        for axis, (a, b, p) in enumerate(zip(start, end, output_size), start=1):
            index, inside, size = _cells(a, b, p, item.shape[axis])
            item = _mix(item, axis, index, inside / max(size, 1))
        return item

    return _per_region(x, rois, batch_index, output_size, pool)


@kernel("max_roi_pool")
def max_roi_pool(input, rois, batch_index, output_size):
    x = np.asarray(input)

    def pool(item, start, end):
        # A box maximum is separable too; taps outside the input read 0, the 'constant' border.
        for axis, (a, b, p) in enumerate(zip(start, end, output_size), start=1):
            index, inside, _ = _cells(a, b, p, item.shape[axis])
            shape = [1] * item.ndim
            shape[axis] = p
            taps = [np.where(inside[:, k].reshape(shape), np.take(item, index[:, k], axis=axis), 0)
                    for k in range(index.shape[1])]
            item = np.maximum.reduce(taps).astype(x.dtype, copy=False)
        return item

    return _per_region(x, rois, batch_index, output_size, pool)


def _resampled(input, rois, batch_index, output_size, sampling_rate, resize_method):
    size = [o * s for o, s in zip(output_size, sampling_rate)]
    return roi_resample(input, rois, batch_index, size, method=resize_method)


@kernel("avg_roi_align")
def avg_roi_align(input, rois, batch_index, output_size, sampling_rate, resize_method="symmetric"):
    # avg_pool with size = stride = sampling_rate over spatial axes: the block means.
    return area_downsample(_resampled(input, rois, batch_index, output_size, sampling_rate, resize_method),
                           sampling_rate)


@kernel("max_roi_align")
def max_roi_align(input, rois, batch_index, output_size, sampling_rate, resize_method="symmetric"):
    # max_pool with size = stride = sampling_rate over spatial axes: the block maxima.
    x = _resampled(input, rois, batch_index, output_size, sampling_rate, resize_method)
    blocks = x.shape[:2] + sum(((o, s) for o, s in zip(output_size, sampling_rate)), ())
    return x.reshape(blocks).max(axis=tuple(range(3, len(blocks), 2)))
