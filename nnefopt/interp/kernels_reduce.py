"""Reductions (axes kept as singletons), softmax, normalizations, matmul and linear."""

from __future__ import annotations

import math

import numpy as np

from .kernels_elementwise import accumulating, average, floating, operands
from .registry import kernel


def _axes(axes):
    return tuple(sorted(set(axes)))


@kernel("sum_reduce")
def sum_reduce(input, axes, normalize=False):
    x = np.asarray(input)
    axes = _axes(axes)
    # Integers sum in int32, the spec's `integer`; floats in their own precision.
    total = np.sum(x, axis=axes, keepdims=True, dtype=np.int32 if x.dtype.kind in "iub" else x.dtype)
    return average(total, math.prod(x.shape[a] for a in axes)) if normalize else total


@kernel("mean_reduce")
def mean_reduce(input, axes):
    return sum_reduce(input, axes, normalize=True)


def _reduce_kernel(name, function):
    @kernel(name)
    def reduce(input, axes):
        return function(np.asarray(input), axis=_axes(axes), keepdims=True)

    reduce.__name__ = name
    return reduce


for _name, _function in {"max_reduce": np.max, "min_reduce": np.min,
                         "any_reduce": np.any, "all_reduce": np.all}.items():
    _reduce_kernel(_name, _function)


def _arg_reduce(input, axes, pick):
    """Row-major flat index over the reduced axes of the first extreme element."""
    x = np.asarray(input)
    axes = _axes(axes)
    kept = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(x, kept + list(axes)).reshape([x.shape[a] for a in kept] + [-1])
    index = pick(moved, axis=-1).astype(np.int32)
    return index.reshape([1 if a in axes else n for a, n in enumerate(x.shape)])


@kernel("argmax_reduce")
def argmax_reduce(input, axes):
    return _arg_reduce(input, axes, np.argmax)


@kernel("argmin_reduce")
def argmin_reduce(input, axes):
    return _arg_reduce(input, axes, np.argmin)


@kernel("moments")
def moments(input, axes):
    x = floating(input)
    mean = mean_reduce(x, axes)
    centered = x - mean
    return mean, mean_reduce(centered * centered, axes)


@kernel("softmax")
def softmax(x, axes=(1,)):
    x = floating(x)
    exponentials = np.exp(x - np.max(x, axis=_axes(axes), keepdims=True))
    return exponentials / np.sum(exponentials, axis=_axes(axes), keepdims=True)


def _normalize_by(x, sigma, bias, epsilon):
    """`x / max(sigma + bias, epsilon)`, the tail of the l1/l2 fragments (0/0 is NaN)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return x / np.maximum(sigma + x.dtype.type(bias), x.dtype.type(epsilon))


@kernel("l1_normalization")
def l1_normalization(input, axes, bias=0.0, epsilon=0.0):
    x = floating(input)
    return _normalize_by(x, np.sum(np.abs(x), axis=_axes(axes), keepdims=True), bias, epsilon)


@kernel("l2_normalization")
def l2_normalization(input, axes, bias=0.0, epsilon=0.0):
    x = floating(input)
    return _normalize_by(x, np.sqrt(np.sum(x * x, axis=_axes(axes), keepdims=True)), bias, epsilon)


@kernel("batch_normalization")
def batch_normalization(input, mean, variance, offset, scale, epsilon):
    x, mean, variance, offset, scale = operands(floating(input), mean, variance, offset, scale)
    return offset + scale * (x - mean) / np.sqrt(variance + x.dtype.type(epsilon))


@kernel("matmul")
def matmul(A, B, transposeA=False, transposeB=False):
    A, B = accumulating(A, B)
    return np.matmul(np.swapaxes(A, -1, -2) if transposeA else A, np.swapaxes(B, -1, -2) if transposeB else B)


def _prepare_matmul(known, attribs):
    """matmul of float operands of fixed shapes and one dtype: their conversion to the
    accumulator's type known to be none (the IR interpreter's plan asks)."""
    (shape_a, dtype_a, _), (shape_b, dtype_b, _) = known
    if None in (shape_a, shape_b, dtype_a, dtype_b) or np.dtype(dtype_a).kind != "f" or dtype_a != dtype_b:
        return None
    shape_a, shape_b = tuple(shape_a), tuple(shape_b)
    transpose_a, transpose_b = attribs.get("transposeA", False), attribs.get("transposeB", False)

    def prepared(A, B):
        if A.dtype != dtype_a or B.dtype != dtype_b or A.shape != shape_a or B.shape != shape_b:
            return matmul(A, B, **attribs)
        return np.matmul(np.swapaxes(A, -1, -2) if transpose_a else A, np.swapaxes(B, -1, -2) if transpose_b else B)

    return prepared


matmul.prepare = _prepare_matmul


@kernel("linear")
def linear(input, filter, bias=0.0):
    # Output features are the last axis; torch-to-nnef writes batched (rank-3) linears for tract.
    output = matmul(input, filter, transposeB=True)
    return _bias_adder(bias, output.dtype, output.ndim)(output)


def _bias_adder(bias, dtype, rank):
    bias = np.asarray(bias).reshape(-1).astype(dtype)
    if bias.size > 1:
        bias = bias.reshape((1,) * (rank - 1) + (-1,))
    return lambda output: output + bias


def _prepare_linear(known, attribs):
    """linear with its filter and bias known and its input's shape and dtype fixed: the
    filter transposed and the bias shaped once (the IR interpreter's plan asks)."""
    (shape, dtype, _), (_, _, filter), (_, _, bias) = known
    if shape is None or filter is None or bias is None or np.dtype(dtype).kind != "f" or filter.dtype != dtype:
        return None
    transposed = np.swapaxes(filter, -1, -2)
    biased = _bias_adder(bias, np.result_type(dtype, filter.dtype), len(shape))

    def prepared(input, filter, bias):
        if input.dtype == dtype and input.shape == shape:
            return biased(np.matmul(input, transposed))
        return linear(input, filter, bias)

    return prepared


linear.prepare = _prepare_linear
