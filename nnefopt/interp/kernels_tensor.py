"""Shape and data-movement kernels: reshape, transpose, split/concat, slice, pad, tile, gather."""

from __future__ import annotations

import math

import numpy as np

from .registry import kernel

# NNEF border names -> numpy.pad modes ('reflect-even' repeats the edge element).
_PAD_MODES = {"constant": "constant", "replicate": "edge", "reflect": "reflect", "reflect-even": "symmetric"}


def pad_border(x, padding, border="constant", value=0.0):
    """`x` padded per axis by `(front, back)` with an NNEF border mode; negative amounts crop."""
    return padder(x.shape, padding, border, value)(x)


def padder(shape, padding, border="constant", value=0.0):
    """The function padding (as `pad_border`) an array of `shape`: the slices made once."""
    if border not in _PAD_MODES:
        raise ValueError(f"unsupported border {border!r}")
    crop = tuple(slice(max(-p, 0), n - max(-q, 0)) for n, (p, q) in zip(shape, padding))
    widths = [(max(p, 0), max(q, 0)) for p, q in padding]
    cropped = [len(range(n)[c]) for n, c in zip(shape, crop)] + list(shape[len(crop):])
    if not any(p or q for p, q in widths):
        return lambda x: x[crop]
    if border == "constant":  # one fill and one copy: several times cheaper than np.pad
        padded = [n + p + q for n, (p, q) in zip(cropped, widths)]
        inside = tuple(slice(p, p + n) for n, (p, _) in zip(cropped, widths))

        def constant(x):
            out = np.full(padded, value, dtype=x.dtype)
            out[inside] = x[crop]
            return out

        return constant
    mode = _PAD_MODES[border]
    return lambda x: np.pad(x[crop], widths, mode=mode)


@kernel("pad")
def pad(input, padding, border="constant", value=0.0):
    return np.array(pad_border(np.asarray(input), padding, border, value), copy=True)


@kernel("reshape")
def reshape(input, shape, axis_start=0, axis_count=-1):
    """Reshape axes [axis_start, axis_start + axis_count): 0 copies the input extent, -1 infers."""
    dims = list(input.shape)
    end = len(dims) if axis_count == -1 else axis_start + axis_count
    middle = [dims[axis_start + i] if s == 0 else s for i, s in enumerate(shape)]
    return input.reshape(dims[:axis_start] + middle + dims[end:])


@kernel("squeeze")
def squeeze(input, axes):
    return input.reshape([n for i, n in enumerate(input.shape) if i not in axes])


def _prepare_reshaping(reshaping):
    """For a kernel that is `input.reshape(shape worked out from input.shape)`: the
    shape worked out once for an input of fixed shape (the IR interpreter's plan asks)."""

    def prepare(known, attribs):
        ((shape, _, _),) = known
        if shape is None:
            return None
        shape = tuple(shape)
        try:
            target = reshaping(np.empty(shape, np.uint8), **attribs).shape
        except (ValueError, TypeError, IndexError):
            return None  # the run says what is wrong

        def prepared(input):
            return input.reshape(target) if input.shape == shape else reshaping(input, **attribs)

        return prepared

    reshaping.prepare = prepare


@kernel("unsqueeze")
def unsqueeze(input, axes):
    # Singleton dims are inserted one after the other in the order the axes are listed.
    shape = list(input.shape)
    for axis in axes:
        shape.insert(axis, 1)
    return input.reshape(shape)


for _reshaping in (reshape, squeeze, unsqueeze):
    _prepare_reshaping(_reshaping)


@kernel("transpose")
def transpose(input, axes):
    # Axes not named keep their place after the permuted leading ones.
    return np.transpose(input, list(axes) + list(range(len(axes), input.ndim)))


@kernel("concat")
def concat(values, axis):
    return np.concatenate(values, axis=axis)


@kernel("split")
def split(value, axis, ratios):
    unit = value.shape[axis] // sum(ratios)
    return np.split(value, np.cumsum([unit * r for r in ratios[:-1]]), axis=axis)


@kernel("stack")
def stack(values, axis):
    return np.stack(values, axis=axis)


@kernel("unstack")
def unstack(value, axis):
    return [np.take(value, i, axis=axis) for i in range(value.shape[axis])]


@kernel("copy_n")
def copy_n(x, times):
    return [np.array(x, copy=True) for _ in range(times)]


@kernel("tile")
def tile(input, repeats):
    return np.tile(input, repeats)


@kernel("gather")
def gather(input, indices, axis=0):
    return np.take(input, indices, axis=axis)


@kernel("slice")
def slice_(input, axes, begin, end, stride=()):
    """Elements begin, begin + stride, ... short of end on each listed axis.

    As in the Khronos reference: negative bounds count from the back and are then
    clamped to [-1, extent]; an end of -1 with a negative stride runs through index 0;
    when every stride is 1 an end of 0 means the extent.
    """
    stride = list(stride) or [1] * len(axes)
    index = [slice(None)] * input.ndim
    for axis, first, last, step in zip(axes, begin, end, stride):
        extent = input.shape[axis]
        if last == 0 and all(s == 1 for s in stride):
            last = extent
        first, last = (min(max(b + extent if b < 0 else b, -1), extent) for b in (first, last))
        if (step > 0 and first < 0) or (step < 0 and first >= extent):
            raise ValueError(f"slice begin {first} is outside axis {axis} of extent {extent}")
        count = max(math.ceil((last - first) / step), 0)
        stop = first + count * step  # below 0 only after passing index 0: open-ended
        index[axis] = slice(first, stop if stop >= 0 else None, step) if count else slice(0, 0)
    return input[tuple(index)].copy()
