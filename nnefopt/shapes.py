"""Shape rules: one function per family of operations, registered by operation name.

A rule is called like the operation's kernel: `rule(*tensor_shapes, **attributes)`,
tensors in declaration order (a tensor array as a list of shapes, a literal used as a
tensor as `()`, an absent optional tensor as None), attributes with their defaults
filled in. It returns a shape tuple, a tuple of shapes for several results, or a list
of shapes for an array result. Bad arguments raise ValueError; the caller adds the
location.

Dims are ints or sympy expressions (a symbolic batch `N`). Rules use arithmetic valid
for both, and test conditions on dims with `_require`, which rejects only what is
certainly false: `N == 3` is left for run time to decide.

The rules follow the Khronos reference (nnef.shapes, the oracle of the tests) and, for
compound operations, the body the specification gives them; where the two differ,
the rule's docstring says which it follows.
"""

from __future__ import annotations

import math
from typing import Callable

import sympy

from nnefopt.broadcasting import aligned_shape, broadcast_shape

SHAPE_RULES: dict[str, Callable] = {}

Shape = tuple


def shape_rule(*names: str):
    def register(rule: Callable) -> Callable:
        for name in names:
            SHAPE_RULES[name] = rule
        return rule

    return register


# ---- conditions on int or symbolic dims ------------------------------------------------


def _possible(condition) -> bool:
    """Not certainly false: a sympy condition that only run time can decide counts as true."""
    return condition is not False and condition is not sympy.false


def _require(condition, message: str) -> None:
    if not _possible(condition):
        raise ValueError(message)


def _equal(a, b):
    # `==` on sympy expressions compares structure, not value: Eq decides or stays open.
    return a == b if isinstance(a, int) and isinstance(b, int) else sympy.Eq(a, b)


def _divides(divisor, dim):
    return _equal(dim % divisor, 0)


def _same_shape(a: Shape, b: Shape) -> bool:
    return len(a) == len(b) and all(_possible(_equal(x, y)) for x, y in zip(a, b))


def _ceil_div(a, b):
    return -(-a // b) if isinstance(a, int) else sympy.ceiling(a / b)


def _clamp(x, low, high):
    if isinstance(x, int) and isinstance(high, int):
        return max(low, min(high, x))
    return sympy.Max(low, sympy.Min(high, x))


def _as_dim(d):
    """A dim that sympy arithmetic made a sympy.Integer, back to a Python int."""
    return int(d) if isinstance(d, sympy.Integer) else d


def _check_axes(rank: int, axes) -> None:
    _require(all(0 <= a < rank for a in axes), f"axes {list(axes)} out of range for rank {rank}")


def _check_positive(name: str, values) -> None:
    _require(all(v > 0 for v in values), f"'{name}' must be positive, found {list(values)}")


# ---- broadcasting ------------------------------------------------------------------------


def broadcast(*shapes: Shape) -> Shape:
    """The shape of an element-wise result: along each axis the extents agree or are 1."""
    result = broadcast_shape(*shapes, same=lambda a, b: _possible(_equal(a, b)))
    _require(result is not None, f"shapes {' and '.join(str(list(s)) for s in shapes)} do not broadcast")
    return result


def _check_broadcasts_to(shape: Shape, target: Shape, name: str) -> None:
    """`shape` stretches onto `target` without changing it (the reference's asymmetric case)."""
    rank = max(len(shape), len(target))
    for d, t in zip(aligned_shape(shape, rank), aligned_shape(target, rank)):
        _require(d == 1 or _equal(d, t), f"'{name}' shape {list(shape)} does not broadcast to {list(target)}")


def _check_channel_bias(bias: Shape | None, channels) -> None:
    """A bias holds one value per output channel: [C], [1, C] (more leading 1s are
    accepted), or one value for all; a literal bias has shape ()."""
    if not bias:
        return
    leading_ones = all(_possible(_equal(d, 1)) for d in bias[:-1])
    _require(leading_ones and _possible(bias[-1] == 1 or _equal(bias[-1], channels)),
             f"bias shape {list(bias)} does not match {channels} output channels")


# ---- element-wise --------------------------------------------------------------------------


@shape_rule("copy", "neg", "rcp", "exp", "log", "sin", "cos", "tan", "sinh", "cosh", "tanh", "asin", "acos",
            "atan", "asinh", "acosh", "atanh", "abs", "sign", "not", "floor", "ceil", "round", "sqr", "sqrt",
            "rsqr", "rsqrt", "log2", "relu", "sigmoid", "softabs", "softplus", "elu", "selu", "gelu", "silu",
            "leaky_relu", "cast", "erf", "tract_core_erf", "tract_gelu", "tract_core_cast", "tract_core_rms_norm",
            "square")
def unary(x: Shape, **_) -> Shape:
    return tuple(x)


@shape_rule("add", "sub", "mul", "div", "pow", "lt", "gt", "le", "ge", "eq", "ne", "and", "or", "min", "max",
            "select", "clamp")
def elementwise(*operands: Shape) -> Shape:
    return broadcast(*operands)


@shape_rule("prelu")
def prelu(x: Shape, alpha: Shape) -> Shape:
    """The reference: `alpha` must broadcast to `x`, which keeps its shape."""
    _check_broadcasts_to(alpha, x, "alpha")
    return tuple(x)


@shape_rule("min_max_linear_quantize", "zero_point_linear_quantize", "linear_quantize", "logarithmic_quantize")
def quantize(x: Shape, *parameters: Shape, bits, **_) -> Shape:
    for p in parameters:
        _check_broadcasts_to(p, x, "quantization parameter")
    _require(bits > 0, f"'bits' must be positive, found {bits}")
    return tuple(x)


# ---- tensors from nowhere, updates --------------------------------------------------------


@shape_rule("external", "variable", "tract_core_external")
def declared(*, shape, **_) -> Shape:
    return tuple(shape)


@shape_rule("constant")
def constant(*, shape, value) -> Shape:
    # One value fills the tensor; otherwise there is one per element.
    _require(len(value) == 1 or _equal(len(value), math.prod(shape)),
             f"{len(value)} values do not fill shape {list(shape)}")
    return tuple(shape)


@shape_rule("update")
def update(variable: Shape, value: Shape) -> Shape:
    _require(_same_shape(variable, value), f"value shape {list(value)} differs from variable shape {list(variable)}")
    return tuple(variable)


# ---- sliding windows ------------------------------------------------------------------------


def _window(spatial: int, padding, stride, dilation) -> tuple[list, list]:
    """Stride and dilation with [] read as all ones, once all three have the right length."""
    for name, value in (("padding", padding), ("stride", stride), ("dilation", dilation)):
        _require(not value or len(value) == spatial, f"'{name}' needs {spatial} items, found {len(value)}")
    _check_positive("stride", stride)
    _check_positive("dilation", dilation)
    return list(stride) or [1] * spatial, list(dilation) or [1] * spatial


def _check_extents(extents: list, message: str) -> list:
    _require(all(_possible(e > 0) for e in extents), message)
    return extents


def _downsized(dims, kernel, padding, stride, dilation) -> list:
    """Extents after sliding a window; padding = [] pads automatically, so that only the
    stride shrinks the extent (rounding up)."""
    if not padding:
        return [_ceil_div(i, s) for i, s in zip(dims, stride)]
    return _check_extents([(i + p + q - (k - 1) * d - 1) // s + 1
                           for i, k, (p, q), s, d in zip(dims, kernel, padding, stride, dilation)],
                          f"window larger than the padded input {list(dims)}")


def _upsized(dims, kernel, padding, stride, dilation) -> list:
    """Extents that `_downsized` maps back onto `dims` (the transposed operation)."""
    if not padding:
        return [i * s for i, s in zip(dims, stride)]
    return _check_extents([(i - 1) * s + (k - 1) * d + 1 - p - q
                           for i, k, (p, q), s, d in zip(dims, kernel, padding, stride, dilation)],
                          f"padding leaves no output for input extents {list(dims)}")


def _check_output_shape(output_shape, rank: int) -> None:
    """An explicit output shape of a transposed operation ([] means: computed)."""
    _require(not output_shape or len(output_shape) == rank,
             f"'output_shape' needs {rank} items, found {len(output_shape)}")
    _check_positive("output_shape", output_shape)


def _check_maps_back(output_shape, expected: list, actual: list) -> None:
    """The forward operation must map `output_shape` back onto the input."""
    _require(_same_shape(expected, actual),
             f"'output_shape' {list(output_shape)} does not fit input extents {list(actual)}")


def _conv_like(input: Shape, filter: Shape, bias, padding, stride, dilation, groups, output_shape,
               transposed: bool) -> Shape:
    """conv, and with `transposed` deconv: batch, channels, then spatial extents.
    The filter is [C_out, C_in / groups, ...] for conv, [C_in, C_out / groups, ...] for deconv."""
    rank = len(input)
    _require(rank >= 3, f"input needs a batch, a channel and a spatial dimension, found {list(input)}")
    _require(len(filter) == rank, f"filter rank {len(filter)} differs from input rank {rank}")
    stride, dilation = _window(rank - 2, padding, stride, dilation)
    _check_output_shape(output_shape, rank)
    _require(groups >= 0, f"'groups' must be non-negative, found {groups}")
    if groups == 0:  # one group per channel
        groups = output_shape[1] if transposed and output_shape else input[1]
    if transposed:
        _require(_equal(filter[0], input[1]), f"filter batch {filter[0]} differs from input channels {input[1]}")
        channels = filter[1] * groups
    else:
        _require(_equal(filter[1] * groups, input[1]),
                 f"filter channels {filter[1]} times groups {groups} differ from input channels {input[1]}")
        channels = filter[0]
    _require(_divides(groups, filter[0]), f"groups {groups} do not divide filter batch {filter[0]}")
    _check_channel_bias(bias, channels)
    if output_shape:
        _require(_possible(_equal(output_shape[0], input[0])) and _possible(_equal(output_shape[1], channels)),
                 f"'output_shape' {list(output_shape)} does not match batch {input[0]} and {channels} channels")
        _check_maps_back(output_shape, _downsized(output_shape[2:], filter[2:], padding, stride, dilation), input[2:])
        return tuple(output_shape)
    resize = _upsized if transposed else _downsized
    return (input[0], channels, *resize(input[2:], filter[2:], padding, stride, dilation))


@shape_rule("conv")
def conv(input: Shape, filter: Shape, bias: Shape | None = (), *, padding=(), stride=(), dilation=(), groups=1,
         **_) -> Shape:
    return _conv_like(input, filter, bias, padding, stride, dilation, groups, (), transposed=False)


@shape_rule("deconv")
def deconv(input: Shape, filter: Shape, bias: Shape | None = (), *, padding=(), stride=(), dilation=(),
           output_shape=(), groups=1, **_) -> Shape:
    return _conv_like(input, filter, bias, padding, stride, dilation, groups, output_shape, transposed=True)


def _check_separable(plane_filter: Shape, point_filter: Shape) -> None:
    _require(plane_filter[1] == 1, f"plane filter {list(plane_filter)} must have one channel")
    _require(all(d == 1 for d in point_filter[2:]), f"point filter {list(point_filter)} must be 1 in space")


@shape_rule("separable_conv")
def separable_conv(input: Shape, plane_filter: Shape, point_filter: Shape, bias: Shape | None = (), *,
                   groups=1, **window) -> Shape:
    """The specification's body: a depth-wise conv, then a point-wise one with `groups`.
    (The reference's rule accepts only groups = 1.)"""
    _check_separable(plane_filter, point_filter)
    filtered = conv(input, plane_filter, groups=0, **window)
    return conv(filtered, point_filter, bias, groups=groups)


@shape_rule("separable_deconv")
def separable_deconv(input: Shape, plane_filter: Shape, point_filter: Shape, bias: Shape | None = (), *,
                     groups=1, **window) -> Shape:
    """The specification's body, as for separable_conv."""
    _check_separable(plane_filter, point_filter)
    filtered = deconv(input, point_filter, groups=groups)
    return deconv(filtered, plane_filter, bias, groups=0, **window)


def _pool_like(input: Shape, size, padding, stride, dilation, output_shape, transposed: bool) -> Shape:
    """box, and with `transposed` debox: the window spans every axis, batch and channel too."""
    rank = len(input)
    _require(len(size) == rank, f"'size' needs {rank} items, found {len(size)}")
    _check_positive("size", size)
    stride, dilation = _window(rank, padding, stride, dilation)
    _check_output_shape(output_shape, rank)
    if output_shape:
        _check_maps_back(output_shape, _downsized(output_shape, size, padding, stride, dilation), input)
        return tuple(output_shape)
    resize = _upsized if transposed else _downsized
    return tuple(resize(input, size, padding, stride, dilation))


@shape_rule("box", "argmax_pool", "max_pool", "avg_pool", "rms_pool")
def pool(input: Shape, *, size, padding=(), stride=(), dilation=(), **_) -> Shape:
    return _pool_like(input, size, padding, stride, dilation, (), transposed=False)


@shape_rule("debox")
def debox(input: Shape, *, size, padding=(), stride=(), dilation=(), output_shape=(), **_) -> Shape:
    return _pool_like(input, size, padding, stride, dilation, output_shape, transposed=True)


@shape_rule("max_pool_with_index")
def pool_with_index(input: Shape, **attributes) -> tuple[Shape, Shape]:
    shape = pool(input, **attributes)
    return shape, shape


def _check_index(index: Shape, input: Shape) -> None:
    _require(_same_shape(index, input), f"index shape {list(index)} differs from input shape {list(input)}")


@shape_rule("sample")
def sample(input: Shape, index: Shape, **attributes) -> Shape:
    _check_index(index, input)
    return pool(input, **attributes)


@shape_rule("desample")
def desample(input: Shape, index: Shape, **attributes) -> Shape:
    _check_index(index, input)
    return debox(input, **attributes)


# ---- resizing: spatial axes only -------------------------------------------------------------


def _check_factor(input: Shape, factor) -> None:
    _require(len(factor) == len(input) - 2, f"'factor' needs {len(input) - 2} items, found {len(factor)}")
    _check_positive("factor", factor)


@shape_rule("nearest_downsample", "area_downsample")
def downsample(input: Shape, *, factor, **_) -> Shape:
    _check_factor(input, factor)
    for i, f in zip(input[2:], factor):
        _require(_divides(f, i), f"'factor' {list(factor)} does not divide {list(input[2:])}")
    return (*input[:2], *(i // f for i, f in zip(input[2:], factor)))


@shape_rule("nearest_upsample", "multilinear_upsample")
def upsample(input: Shape, *, factor, **_) -> Shape:
    _check_factor(input, factor)
    return (*input[:2], *(i * f for i, f in zip(input[2:], factor)))


def needs_values(*params: str):
    """Mark a rule whose result depends on the values of these tensor parameters:
    it receives their data (numpy arrays) instead of their shapes."""

    def mark(rule: Callable) -> Callable:
        rule.value_params = params
        return rule

    return mark


@shape_rule("tract_core_resize")
@needs_values("scales", "sizes")
def tract_resize(input: Shape, scales=None, sizes=None, **_) -> Shape:
    """As tract computes it: an integral scale multiplies, a fractional one floors."""
    if scales is not None and scales.size == len(input):
        return tuple(d * int(s) if float(s).is_integer() else int(d * float(s))
                     for d, s in zip(input, scales.reshape(-1)))
    _require(sizes is not None and sizes.size == len(input),
             "tract_core_resize needs 'scales' or 'sizes' of the input's rank")
    return tuple(int(s) for s in sizes.reshape(-1))


@shape_rule("tract_core_downsample")
def tract_downsample(input: Shape, *, axis, stride, modulo=0) -> Shape:
    _check_axes(len(input), [axis])
    _check_positive("stride", [stride])
    shape = list(input)
    shape[axis] = _ceil_div(_clamp(shape[axis] - modulo, 0, shape[axis]), stride)
    return tuple(shape)


@shape_rule("tract_core_gather")
def tract_gather(input: Shape, indices: Shape, *, axis) -> Shape:
    _require(-len(input) <= axis < len(input), f"axis {axis} out of range for rank {len(input)}")
    axis = axis % len(input)
    return (*input[:axis], *indices, *input[axis + 1:])


# ---- reductions and normalizations -------------------------------------------------------------


@shape_rule("sum_reduce", "max_reduce", "min_reduce", "argmax_reduce", "argmin_reduce", "any_reduce",
            "all_reduce", "mean_reduce")
def reduce(input: Shape, *, axes, **_) -> Shape:
    _check_axes(len(input), axes)
    return tuple(1 if axis in axes else d for axis, d in enumerate(input))


@shape_rule("moments")
def moments(input: Shape, *, axes) -> tuple[Shape, Shape]:
    shape = reduce(input, axes=axes)
    return shape, shape


@shape_rule("softmax", "l1_normalization", "l2_normalization")
def along_axes(input: Shape, *, axes, **_) -> Shape:
    _check_axes(len(input), axes)
    return tuple(input)


@shape_rule("local_response_normalization", "local_mean_normalization", "local_variance_normalization",
            "local_contrast_normalization")
def local_normalization(input: Shape, *, size, **_) -> Shape:
    _require(len(size) == len(input), f"'size' needs {len(input)} items, found {len(size)}")
    _check_positive("size", size)
    return tuple(input)


@shape_rule("batch_normalization")
def batch_normalization(input: Shape, mean: Shape, variance: Shape, offset: Shape, scale: Shape, *,
                        epsilon) -> Shape:
    for name, shape in (("mean", mean), ("variance", variance), ("offset", offset), ("scale", scale)):
        _check_broadcasts_to(shape, input, name)
    _require(epsilon >= 0, f"'epsilon' must be non-negative, found {epsilon}")
    return tuple(input)


# ---- tensor shape operations ------------------------------------------------------------------


@shape_rule("reshape")
def reshape(input: Shape, *, shape, axis_start=0, axis_count=-1) -> Shape:
    """Replaces input[axis_start : axis_start + axis_count] (-1: to the end) by `shape`,
    in which 0 copies the input extent at the same position and one -1 takes the rest."""
    rank = len(input)
    _require(0 <= axis_start <= rank, f"'axis_start' {axis_start} out of range for rank {rank}")
    _require(axis_count >= -1, f"'axis_count' must be -1 or more, found {axis_count}")
    end = rank if axis_count == -1 else axis_start + axis_count
    _require(end <= rank, f"'axis_start' + 'axis_count' {end} out of range for rank {rank}")
    _require(all(s >= -1 for s in shape) and list(shape).count(-1) <= 1,
             f"'shape' {list(shape)} may hold extents, 0 and at most one -1")
    _require(all(s != 0 or axis_start + i < rank for i, s in enumerate(shape)),
             f"a 0 in 'shape' {list(shape)} has no input extent to copy")
    dims = [input[axis_start + i] if s == 0 else s for i, s in enumerate(shape)]
    total = math.prod(input[axis_start:end])
    if -1 in dims:
        known = math.prod(d for d in dims if d != -1)
        _require(known != 0 and _divides(known, total), f"'shape' {list(shape)} does not divide {list(input)}")
        dims[dims.index(-1)] = _as_dim(total // known)
    else:
        _require(_equal(math.prod(dims), total), f"'shape' {list(shape)} has a different volume from {list(input)}")
    return (*input[:axis_start], *dims, *input[end:])


@shape_rule("squeeze")
def squeeze(input: Shape, *, axes) -> Shape:
    _check_axes(len(input), axes)
    _require(all(_possible(_equal(input[a], 1)) for a in axes),
             f"cannot squeeze axes {list(axes)} of shape {list(input)}")
    return tuple(d for axis, d in enumerate(input) if axis not in axes)


@shape_rule("unsqueeze")
def unsqueeze(input: Shape, *, axes) -> Shape:
    """`axes` are positions in the output (the C++ reference; the Python one inserts in the
    given order, which agrees when `axes` is sorted)."""
    rank = len(input) + len(axes)
    _check_axes(rank, axes)
    _require(len(set(axes)) == len(axes), f"'axes' {list(axes)} repeats an axis")
    dims = iter(input)
    return tuple(1 if axis in axes else next(dims) for axis in range(rank))


@shape_rule("transpose")
def transpose(input: Shape, *, axes) -> Shape:
    """A permutation of the leading axes; the others stay."""
    _require(sorted(axes) == list(range(len(axes))), f"'axes' {list(axes)} is not a permutation")
    _require(len(axes) <= len(input), f"'axes' {list(axes)} longer than rank {len(input)}")
    return (*(input[a] for a in axes), *input[len(axes):])


def _check_axis(rank: int, axis: int) -> None:
    _require(0 <= axis < rank, f"axis {axis} out of range for rank {rank}")


@shape_rule("concat")
def concat(values: list, *, axis) -> Shape:
    _require(len(values) > 0, "nothing to concatenate")
    first = values[0]
    _check_axis(len(first), axis)
    for shape in values[1:]:
        _require(len(shape) == len(first)
                 and all(_possible(_equal(a, b)) for i, (a, b) in enumerate(zip(shape, first)) if i != axis),
                 f"shapes {list(first)} and {list(shape)} differ outside axis {axis}")
    return (*first[:axis], sum(s[axis] for s in values), *first[axis + 1:])


@shape_rule("split")
def split(value: Shape, *, axis, ratios) -> list:
    _check_axis(len(value), axis)
    _require(len(ratios) > 0, "'ratios' is empty")
    _check_positive("ratios", ratios)
    _require(_divides(sum(ratios), value[axis]), f"ratios {list(ratios)} do not divide extent {value[axis]}")
    unit = _as_dim(value[axis] // sum(ratios))
    return [(*value[:axis], r * unit, *value[axis + 1:]) for r in ratios]


@shape_rule("stack")
def stack(values: list, *, axis) -> Shape:
    _require(len(values) > 0, "nothing to stack")
    first = values[0]
    _require(all(_same_shape(v, first) for v in values), "stacked shapes differ")
    _check_axis(len(first) + 1, axis)
    return (*first[:axis], len(values), *first[axis:])


@shape_rule("unstack")
def unstack(value: Shape, *, axis) -> list:
    _check_axis(len(value), axis)
    _require(isinstance(value[axis], int), f"cannot unstack symbolic extent {value[axis]}")
    return [(*value[:axis], *value[axis + 1:]) for _ in range(value[axis])]


@shape_rule("slice")
def slice_(input: Shape, *, axes, begin, end, stride=()) -> Shape:
    """As the reference: negative bounds count from the back, then clamp to [-1, extent];
    an end of 0 means the extent when every stride is 1 (the Python reference; the C++ one
    asks only this axis's stride to be 1); a range against its stride is an error."""
    _require(len(begin) == len(axes) and len(end) == len(axes), "'axes', 'begin' and 'end' differ in length")
    _require(not stride or len(stride) == len(axes), "'stride' differs in length from 'axes'")
    _check_axes(len(input), axes)
    stride = list(stride) or [1] * len(axes)
    _require(all(s != 0 for s in stride), "'stride' must not hold 0")
    to_the_end = all(s == 1 for s in stride)
    dims = list(input)
    for axis, first, last, step in zip(axes, begin, end, stride):
        extent = input[axis]
        first = _clamp(first + extent if first < 0 else first, -1, extent)
        last = _clamp(extent if last == 0 and to_the_end else last + extent if last < 0 else last, -1, extent)
        forward = step > 0
        _require((first >= 0) if forward else (first < extent), f"slice begin {first} outside axis {axis}")
        _require((last >= first) if forward else (last <= first),
                 f"slice {first}:{last} runs against stride {step} on axis {axis}")
        dims[axis] = _ceil_div(last - first, step)
    return tuple(dims)


@shape_rule("pad")
def pad(input: Shape, *, padding, **_) -> Shape:
    _require(len(padding) == len(input), f"'padding' needs {len(input)} items, found {len(padding)}")
    return tuple(p + d + q for d, (p, q) in zip(input, padding))


@shape_rule("tile")
def tile(input: Shape, *, repeats) -> Shape:
    _require(len(repeats) == len(input), f"'repeats' needs {len(input)} items, found {len(repeats)}")
    _check_positive("repeats", repeats)
    return tuple(d * r for d, r in zip(input, repeats))


@shape_rule("gather")
def gather(input: Shape, indices: Shape, *, axis) -> Shape:
    """The indexed axis is replaced by the shape of `indices`."""
    _check_axis(len(input), axis)
    return (*input[:axis], *indices, *input[axis + 1:])


# ---- matrix multiplication ----------------------------------------------------------------------


@shape_rule("matmul")
def matmul(A: Shape, B: Shape, *, transposeA=False, transposeB=False) -> Shape:
    """Equal ranks of at least 2: the leading dims broadcast, the last two multiply."""
    _require(len(A) == len(B), f"matmul operands differ in rank: {list(A)} and {list(B)}")
    _require(len(A) >= 2, f"matmul needs rank 2 or more, found {list(A)}")
    m, k = (A[-1], A[-2]) if transposeA else (A[-2], A[-1])
    k2, n = (B[-1], B[-2]) if transposeB else (B[-2], B[-1])
    _require(_equal(k, k2), f"inner dimensions differ: {list(A)} and {list(B)}")
    return (*broadcast(A[:-2], B[:-2]), m, n)


@shape_rule("linear")
def linear(input: Shape, filter: Shape, bias: Shape | None = ()) -> Shape:
    """The body, matmul(input, filter, transposeB = true), plus a per-channel bias. The
    reference allows rank 2 only; torch-to-nnef writes batched [1, O, C] filters."""
    output = matmul(input, filter, transposeB=True)
    _check_channel_bias(bias, output[-1])
    return output


# ---- region of interest, miscellaneous ------------------------------------------------------------


@shape_rule("avg_roi_pool", "max_roi_pool", "roi_resample", "avg_roi_align", "max_roi_align")
def roi(input: Shape, rois: Shape, batch_index: Shape, *, output_size, sampling_rate=(), **_) -> Shape:
    """One item per region: rois is [R, 4] and batch_index [R]."""
    spatial = len(input) - 2
    _require(len(output_size) == spatial, f"'output_size' needs {spatial} items, found {len(output_size)}")
    _check_positive("output_size", output_size)
    _require(not sampling_rate or len(sampling_rate) == spatial,
             f"'sampling_rate' needs {spatial} items, found {len(sampling_rate)}")
    _check_positive("sampling_rate", sampling_rate)
    _require(len(rois) == 2 and _equal(rois[1], 4), f"'rois' must be [R, 4], found {list(rois)}")
    _require(_same_shape(batch_index, rois[:1]), f"'batch_index' must be [{rois[0]}], found {list(batch_index)}")
    return (rois[0], input[1], *output_size)


@shape_rule("copy_n")
def copy_n(x: Shape, *, times) -> list:
    _require(times > 0, f"'times' must be positive, found {times}")
    return [tuple(x)] * times


@shape_rule("add_n")
def add_n(x: list) -> Shape:
    """The reference: identical shapes (the body would broadcast them, and give [1] for none)."""
    _require(len(x) > 0, "add_n needs at least one tensor")
    _require(all(_same_shape(s, x[0]) for s in x), f"add_n shapes differ: {[list(s) for s in x]}")
    return tuple(x[0])
