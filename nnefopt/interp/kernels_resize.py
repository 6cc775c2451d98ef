"""Resampling kernels: nearest/area down-sampling, nearest/multilinear up-sampling, and
tract's `tract_core_resize`.

Each works one spatial axis at a time (all are separable), gathering input rows with
`np.take` and mixing them with per-output-row weights: vectorized over the whole tensor.
"""

from __future__ import annotations

import numpy as np

from .kernels_elementwise import floating
from .registry import kernel


@kernel("nearest_downsample")
def nearest_downsample(input, factor):
    # box of size 1 and stride `factor`: the first element of each block.
    return np.asarray(input)[(slice(None),) * 2 + tuple(slice(None, None, f) for f in factor)].copy()


@kernel("area_downsample")
def area_downsample(input, factor):
    # box of size and stride `factor`, normalized: the mean of each block.
    x = floating(input)
    blocks = x.shape[:2] + sum(((n // f, f) for n, f in zip(x.shape[2:], factor)), ())
    return x.reshape(blocks).mean(axis=tuple(range(3, len(blocks), 2)), dtype=x.dtype)


@kernel("nearest_upsample")
def nearest_upsample(input, factor):
    # debox of size and stride `factor`: each element repeated over its block.
    x = np.asarray(input)
    for axis, f in enumerate(factor, start=2):
        x = np.repeat(x, f, axis=axis)
    return x


def _mix(x, axis, indices, weights):
    """sum_k weights[:, k] * x[indices[:, k]] along `axis` (one output row per table row)."""
    shape = [1] * x.ndim
    shape[axis] = -1
    output = 0
    for k in range(indices.shape[1]):
        output = output + np.take(x, indices[:, k], axis=axis) * weights[:, k].astype(x.dtype).reshape(shape)
    return output


def _border_index(index, extent, border):
    """Input index and weight mask for taps outside [0, extent) under an NNEF border."""
    inside = (index >= 0) & (index < extent)
    if border == "constant":
        return np.clip(index, 0, extent - 1), inside
    if border == "replicate":
        return np.clip(index, 0, extent - 1), np.ones_like(inside)
    if border in ("reflect", "reflect-even"):
        # Mirror about the edge element ('reflect') or the edge itself ('reflect-even').
        shift = 0 if border == "reflect" else 1
        index = np.where(index < 0, -index - shift, index)
        index = np.where(index >= extent, 2 * (extent - 1) - index + shift, index)
        return np.clip(index, 0, extent - 1), np.ones_like(inside)
    raise ValueError(f"unsupported border {border!r}")


def _linear_taps(source, extent, border):
    """Two-tap linear interpolation table for fractional source coordinates."""
    left = np.floor(source)
    fraction = source - left
    indices = np.stack([left, left + 1], axis=1).astype(np.int64)
    weights = np.stack([1 - fraction, fraction], axis=1)
    indices, valid = _border_index(indices, extent, border)
    return indices, weights * valid


@kernel("multilinear_upsample")
def multilinear_upsample(input, factor, method="symmetric", border="replicate"):
    """Linear interpolation per spatial axis at source coordinate, for output j:
    'symmetric' (j + 0.5) / f - 0.5, 'asymmetric' j / f, 'aligned' j (n - 1) / (n f - 1).
    Taps outside the input follow `border` ('constant' makes them zero)."""
    x = floating(input)
    for axis, f in enumerate(factor, start=2):
        extent = x.shape[axis]
        j = np.arange(extent * f, dtype=np.float64)
        if method == "symmetric":
            source = (j + 0.5) / f - 0.5
        elif method == "asymmetric":
            source = j / f
        elif method == "aligned":
            source = j * (extent - 1) / max(extent * f - 1, 1)
        else:
            raise ValueError(f"unsupported method {method!r}")
        x = _mix(x, axis, *_linear_taps(source, extent, border))
    return x


# tract's coordinate transformers: output index, scale, input and output extents -> source.
_COORDINATES = {
    "half_pixel": lambda x, s, n, m: (x + 0.5) / s - 0.5,
    "align_corners": lambda x, s, n, m: np.zeros_like(x) if s * n == 1 else x * (n - 1) / (s * n - 1),
    "asymmetric": lambda x, s, n, m: x / s,
    "pytorch_half_pixel": lambda x, s, n, m: (x + 0.5) / s - 0.5 if m > 1 else np.full_like(x, -0.5),
    "half_pixel_symmetric": lambda x, s, n, m: n / 2 * (1 - m / (s * n)) + (x + 0.5) / s - 0.5,
    "tf_half_pixel_for_nn": lambda x, s, n, m: (x + 0.5) / s,
}


def _cubic(offset, a=-0.75):
    """Keys' cubic convolution kernel with tract's coefficient a = -0.75."""
    t = np.abs(offset)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t <= 2, far, 0))


def _resize_taps(source, extent, interpolator, nearest_mode):
    """tract's plan: cell = ceil(source) - 1 and r = source - cell in (0, 1]; taps start at
    cell + 1 - window / 2 and are clamped into the axis (edge values repeat)."""
    cell = np.ceil(source) - 1
    r = source - cell
    if interpolator == "nearest":
        if nearest_mode not in ("floor", "round_prefer_ceil"):
            raise ValueError(f"unsupported nearest_mode {nearest_mode!r}")
        right = (r == 1) | ((r >= 0.5) & (nearest_mode == "round_prefer_ceil"))
        weights = np.stack([~right, right], axis=1).astype(np.float32)
    elif interpolator == "linear":
        weights = np.stack([1 - r, r], axis=1)
    elif interpolator == "cubic":
        weights = _cubic(np.arange(-1, 3)[None, :] - r[:, None])
    else:
        raise ValueError(f"unsupported interpolator {interpolator!r}")
    window = weights.shape[1]
    first = cell.astype(np.int64) + 1 - window // 2
    indices = np.clip(first[:, None] + np.arange(window)[None, :], 0, extent - 1)
    return indices, weights


@kernel("tract_core_resize")
def tract_core_resize(input, scales=None, sizes=None, coord_transformer="half_pixel",
                      interpolator="nearest", nearest_mode="floor"):
    """tract's Resize: per axis, output extent `n * scale` (floored when not integral) or
    `sizes`, scale `m / n` when sizes are given. Coordinates are float32, as in tract.
    `scales`/`sizes` left out arrive as None."""
    x = np.asarray(input)
    if scales is not None:
        scales = np.asarray(scales, np.float32).reshape(-1)
        outputs = [n * int(s) if s == np.round(s) else int(np.float32(n) * s) for n, s in zip(x.shape, scales)]
    elif sizes is not None:
        outputs = [int(m) for m in np.asarray(sizes).reshape(-1)]
        scales = np.float32(outputs) / np.float32(x.shape)
    else:
        raise ValueError("tract_core_resize needs scales or sizes")
    output = floating(x)
    for axis, (scale, m) in enumerate(zip(scales, outputs)):
        n = output.shape[axis]
        if n == m and scale == 1:
            continue
        source = _COORDINATES[coord_transformer](np.arange(m, dtype=np.float32), np.float32(scale), n, m)
        output = _mix(output, axis, *_resize_taps(np.float32(source), n, interpolator, nearest_mode))
    return output.astype(x.dtype)  # tract computes in float32 and casts back
