"""Kernels of tract's core operations that tract's NNEF writer emits and that have no
standard NNEF equivalent of one operation (tract_core.nnef declares them)."""

from __future__ import annotations

import numpy as np

from .kernels_elementwise import floating
from .registry import kernel


@kernel("tract_core_downsample")
def tract_core_downsample(input, axis, stride, modulo=0):
    """Every `stride`-th item along `axis`, starting at `modulo`."""
    x = np.asarray(input)
    index = [slice(None)] * x.ndim
    index[axis] = slice(modulo, None, stride)
    return x[tuple(index)].copy()


@kernel("tract_core_gather")
def tract_core_gather(input, indices, axis):
    """ONNX Gather: the items of `input` at `indices` along `axis` (negative counts from the end)."""
    x = np.asarray(input)
    return np.take(x, np.asarray(indices, np.int64), axis=axis)


@kernel("tract_core_rms_norm")
def tract_core_rms_norm(input, axis, eps):
    """x / sqrt(mean(x², axis) + eps), the mean kept as a size-1 axis."""
    x = floating(input)
    mean_square = np.mean(np.square(x), axis=axis, keepdims=True)
    return (x / np.sqrt(mean_square + x.dtype.type(eps))).astype(x.dtype)


@kernel("square")
def square(x):
    x = floating(x)
    return x * x
