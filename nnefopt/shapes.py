"""Shape rules: one function per family of operations, registered by operation name.

A rule is called like the operation's kernel: `rule(*tensor_shapes, **attributes)`,
tensors in declaration order (a tensor array as a list of shapes, an absent optional
tensor as None), attributes with defaults filled in. It returns a shape tuple, a
tuple of shapes for several results, or a list of shapes for an array result.
Dims are ints or sympy expressions; rules use only arithmetic valid for both.
Bad arguments raise ValueError; the caller adds the location.
"""

from __future__ import annotations

from typing import Callable

import sympy

SHAPE_RULES: dict[str, Callable] = {}

Shape = tuple


def shape_rule(*names: str):
    def register(rule: Callable) -> Callable:
        for name in names:
            SHAPE_RULES[name] = rule
        return rule

    return register


def _require(condition, message: str) -> None:
    if condition is False or (condition is not True and not bool(condition)):
        raise ValueError(message)


def _same(a, b) -> bool:
    """Equal dims; symbolic dims that might differ are trusted (only run time can tell)."""
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return True


def _is_one(d) -> bool:
    return d == 1


def _ceil_div(a, b):
    return -(-a // b)


def _max(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    return sympy.Max(a, b)


# ---- element-wise ---------------------------------------------------------------------


def broadcast(*shapes: Shape) -> Shape:
    """NNEF broadcasting: shapes align from the left; a missing trailing dim is 1."""
    rank = max(len(s) for s in shapes)
    result = []
    for axis in range(rank):
        dims = [s[axis] for s in shapes if axis < len(s) and not _is_one(s[axis])]
        dim = dims[0] if dims else 1
        for other in dims[1:]:
            _require(_same(dim, other), f"shapes {' and '.join(str(list(s)) for s in shapes)} do not broadcast")
        result.append(dim)
    return tuple(result)


@shape_rule("copy", "neg", "rcp", "exp", "log", "sin", "cos", "tan", "sinh", "cosh", "tanh", "asin", "acos",
            "atan", "asinh", "acosh", "atanh", "abs", "sign", "not", "floor", "ceil", "round", "sqr", "sqrt",
            "rsqr", "rsqrt", "log2", "relu", "sigmoid", "softabs", "softplus", "elu", "selu", "gelu", "silu",
            "leaky_relu", "erf", "tract_core_erf", "tract_gelu", "tract_core_cast", "cast")
def unary(x: Shape, **_) -> Shape:
    return tuple(x)


@shape_rule("add", "sub", "mul", "div", "pow", "lt", "gt", "le", "ge", "eq", "ne", "and", "or", "min", "max")
def binary(x: Shape, y: Shape, **_) -> Shape:
    return broadcast(x, y)


@shape_rule("select", "clamp")
def ternary(a: Shape, b: Shape, c: Shape, **_) -> Shape:
    return broadcast(a, b, c)


@shape_rule("prelu")
def prelu(x: Shape, alpha: Shape) -> Shape:
    broadcast(x, alpha)
    return tuple(x)


@shape_rule("min_max_linear_quantize", "zero_point_linear_quantize", "linear_quantize", "logarithmic_quantize")
def quantize(x: Shape, *parameters: Shape, **_) -> Shape:
    for p in parameters:
        broadcast(x, p)
    return tuple(x)


# ---- tensors from nowhere -------------------------------------------------------------


@shape_rule("external", "variable", "constant", "tract_core_external")
def declared(shape: list, **_) -> Shape:
    return tuple(shape)


@shape_rule("update")
def update(variable: Shape, value: Shape) -> Shape:
    _require(tuple(variable) == tuple(value), f"value shape {list(value)} differs from variable shape {list(variable)}")
    return tuple(variable)


# ---- sliding windows ------------------------------------------------------------------


def _window_args(spatial: int, padding, stride, dilation) -> tuple[list, list]:
    for name, value in (("padding", padding), ("stride", stride), ("dilation", dilation)):
        _require(not value or len(value) == spatial, f"'{name}' needs {spatial} items, found {len(value)}")
    _require(all(s > 0 for s in stride), f"'stride' must be positive, found {stride}")
    _require(all(d > 0 for d in dilation), f"'dilation' must be positive, found {dilation}")
    return list(stride) or [1] * spatial, list(dilation) or [1] * spatial


def _downsized(dims, kernel, padding, stride, dilation) -> list:
    if not padding:  # automatic padding: the output is the input divided by the stride
        return [_ceil_div(i, s) for i, s in zip(dims, stride)]
    out = [(i + p + q - (k - 1) * d - 1) // s + 1 for i, k, (p, q), s, d in zip(dims, kernel, padding, stride, dilation)]
    _require(all(not isinstance(o, int) or o >= 0 for o in out), f"window larger than the padded input {list(dims)}")
    return out


def _upsized(dims, kernel, padding, stride, dilation) -> list:
    if not padding:
        return [i * s for i, s in zip(dims, stride)]
    return [(i - 1) * s + (k - 1) * d + 1 - p - q for i, k, (p, q), s, d in zip(dims, kernel, padding, stride, dilation)]


def _check_output_shape(output_shape, rank, expected_input, input) -> None:
    _require(len(output_shape) == rank, f"'output_shape' needs {rank} items, found {len(output_shape)}")
    _require(list(expected_input) == list(input),
             f"'output_shape' {list(output_shape)} does not fit input shape {list(input)}")


@shape_rule("conv")
def conv(input: Shape, filter: Shape, bias: Shape | None = (), *, border="constant", padding=(), stride=(),
         dilation=(), groups=1, output_shape=None, transposed=None) -> Shape:
    rank = len(input)
    _require(len(filter) == rank, f"filter rank {len(filter)} differs from input rank {rank}")
    _require(rank >= 3, f"input needs a batch, a channel and a spatial dimension, found {list(input)}")
    stride, dilation = _window_args(rank - 2, padding, stride, dilation)
    transposed = output_shape is not None if transposed is None else transposed
    _require(groups >= 0, f"'groups' must be non-negative, found {groups}")
    if groups == 0:  # one group per channel (depthwise)
        groups = input[1] if not transposed else (output_shape[1] if output_shape else input[1])
    if transposed:
        _require(_same(filter[0], input[1]), f"filter batch {filter[0]} differs from input channels {input[1]}")
        channels = filter[1] * groups
    else:
        _require(_same(filter[1] * groups, input[1]),
                 f"filter channels {filter[1]} times groups {groups} differ from input channels {input[1]}")
        channels = filter[0]
    _require(isinstance(filter[0], sympy.Expr) or filter[0] % groups == 0, f"groups {groups} do not divide filter batch {filter[0]}")
    if bias:
        _require(len(bias) <= 2 and _same(bias[-1], channels) and (len(bias) < 2 or _is_one(bias[0])),
                 f"bias shape {list(bias)} does not match {channels} channels")
    if transposed and output_shape:
        expected = [input[0], filter[0]] + _downsized(output_shape[2:], filter[2:], padding, stride, dilation)
        _check_output_shape(output_shape, rank, expected, input)
        return tuple(output_shape)
    resize = _upsized if transposed else _downsized
    return (input[0], channels, *resize(input[2:], filter[2:], padding, stride, dilation))


@shape_rule("deconv")
def deconv(input: Shape, filter: Shape, bias: Shape | None = (), **attributes) -> Shape:
    attributes["output_shape"] = attributes.get("output_shape") or []
    return conv(input, filter, bias, transposed=True, **attributes)


@shape_rule("separable_conv", "separable_deconv")
def separable_conv(input: Shape, plane_filter: Shape, point_filter: Shape, bias: Shape | None = (), *,
                   output_shape=None, **attributes) -> Shape:
    _require(all(_is_one(d) for d in point_filter[2:]), f"point filter {list(point_filter)} must be 1 in space")
    _require(_is_one(plane_filter[1]), f"plane filter {list(plane_filter)} must have one channel")
    transposed = output_shape is not None
    channels = point_filter[1] if transposed else input[1]
    combined = (point_filter[0], channels, *plane_filter[2:])
    return conv(input, combined, bias, output_shape=output_shape or [], transposed=transposed, **attributes)


@shape_rule("box", "argmax_pool", "max_pool", "avg_pool", "rms_pool")
def pool(input: Shape, *, size, border="constant", padding=(), stride=(), dilation=(), output_shape=None,
         transposed=None, normalize=False) -> Shape:
    rank = len(input)
    _require(len(size) == rank, f"'size' needs {rank} items, found {len(size)}")
    stride, dilation = _window_args(rank, padding, stride, dilation)
    if transposed and output_shape:
        _check_output_shape(output_shape, rank, _downsized(output_shape, size, padding, stride, dilation), input)
        return tuple(output_shape)
    resize = _upsized if transposed else _downsized
    return tuple(resize(input, size, padding, stride, dilation))


@shape_rule("debox")
def debox(input: Shape, **attributes) -> Shape:
    return pool(input, transposed=True, **attributes)


@shape_rule("max_pool_with_index")
def pool_with_index(input: Shape, **attributes) -> tuple[Shape, Shape]:
    shape = pool(input, **attributes)
    return shape, shape


@shape_rule("sample")
def sample(input: Shape, index: Shape, **attributes) -> Shape:
    _require(tuple(index) == tuple(input), f"index shape {list(index)} differs from input shape {list(input)}")
    return pool(input, **attributes)


@shape_rule("desample")
def desample(input: Shape, index: Shape, **attributes) -> Shape:
    return sample(input, index, transposed=True, **attributes)


# ---- resizing ---------------------------------------------------------------------------


def _check_factor(input: Shape, factor) -> None:
    _require(len(factor) == len(input) - 2, f"'factor' needs {len(input) - 2} items, found {len(factor)}")


@shape_rule("nearest_downsample", "area_downsample")
def downsample(input: Shape, *, factor, **_) -> Shape:
    _check_factor(input, factor)
    _require(all(isinstance(i, sympy.Expr) or i % f == 0 for i, f in zip(input[2:], factor)),
             f"'factor' {list(factor)} does not divide {list(input[2:])}")
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
        return tuple(d * int(s) if float(s).is_integer() else int(d * float(s)) for d, s in zip(input, scales.reshape(-1)))
    _require(sizes is not None and sizes.size == len(input), "tract_core_resize needs 'scales' or 'sizes' of the input's rank")
    return tuple(int(s) for s in sizes.reshape(-1))


# ---- reductions -------------------------------------------------------------------------


def _check_axes(input: Shape, axes) -> None:
    _require(all(0 <= a < len(input) for a in axes), f"axes {list(axes)} out of range for rank {len(input)}")


@shape_rule("sum_reduce", "max_reduce", "min_reduce", "argmax_reduce", "argmin_reduce", "any_reduce",
            "all_reduce", "mean_reduce")
def reduce(input: Shape, *, axes, **_) -> Shape:
    _check_axes(input, axes)
    return tuple(1 if axis in axes else d for axis, d in enumerate(input))


@shape_rule("moments")
def moments(input: Shape, *, axes) -> tuple[Shape, Shape]:
    shape = reduce(input, axes=axes)
    return shape, shape


@shape_rule("softmax", "l1_normalization", "l2_normalization")
def along_axes(input: Shape, *, axes=(), **_) -> Shape:
    _check_axes(input, axes)
    return tuple(input)


@shape_rule("local_response_normalization", "local_mean_normalization", "local_variance_normalization",
            "local_contrast_normalization")
def local_normalization(input: Shape, *, size, **_) -> Shape:
    _require(len(size) == len(input), f"'size' needs {len(input)} items, found {len(size)}")
    return tuple(input)


@shape_rule("batch_normalization")
def batch_normalization(input: Shape, mean: Shape, variance: Shape, offset: Shape, scale: Shape, **_) -> Shape:
    for name, shape in (("mean", mean), ("variance", variance), ("offset", offset), ("scale", scale)):
        try:
            _require(broadcast(input, shape) == tuple(input), "")
        except ValueError:
            raise ValueError(f"'{name}' shape {list(shape)} does not broadcast to input shape {list(input)}") from None
    return tuple(input)


# ---- tensor shape operations --------------------------------------------------------------


@shape_rule("reshape")
def reshape(input: Shape, *, shape, axis_start=0, axis_count=-1) -> Shape:
    rank = len(input)
    _require(0 <= axis_start <= rank, f"'axis_start' {axis_start} out of range for rank {rank}")
    count = rank - axis_start if axis_count == -1 else axis_count
    _require(0 <= count and axis_start + count <= rank, f"'axis_count' {axis_count} out of range for rank {rank}")
    _require(sum(1 for s in shape if s == -1) <= 1, f"at most one -1 allowed in 'shape', found {list(shape)}")
    _require(all(isinstance(s, sympy.Expr) or s >= -1 for s in shape), f"bad 'shape' {list(shape)}")
    replaced = input[axis_start:axis_start + count]
    dims = [replaced[i] if s == 0 else s for i, s in enumerate(shape)]
    total = sympy.sympify(sympy.prod(replaced))
    if -1 in dims:
        known = sympy.sympify(sympy.prod([d for d in dims if d != -1]))
        _require(known != 0, f"cannot infer -1 in 'shape' {list(shape)}")
        missing = total / known
        _require(not missing.is_Rational or missing.is_integer, f"'shape' {list(shape)} does not divide {list(replaced)}")
        dims[dims.index(-1)] = _plain(missing)
    else:
        _require(_same(_plain(sympy.sympify(sympy.prod(dims))), _plain(total)),
                 f"'shape' {list(shape)} has a different volume from {list(replaced)}")
    return (*input[:axis_start], *dims, *input[axis_start + count:])


def _plain(value: sympy.Expr):
    return int(value) if value.is_Integer else sympy.simplify(value)


@shape_rule("squeeze")
def squeeze(input: Shape, *, axes) -> Shape:
    _check_axes(input, axes)
    _require(all(_is_one(input[a]) for a in axes), f"cannot squeeze axes {list(axes)} of shape {list(input)}")
    return tuple(d for axis, d in enumerate(input) if axis not in axes)


@shape_rule("unsqueeze")
def unsqueeze(input: Shape, *, axes) -> Shape:
    rank = len(input) + len(axes)
    _require(all(0 <= a < rank for a in axes), f"axes {list(axes)} out of range for rank {rank}")
    dims = iter(input)
    return tuple(1 if axis in axes else next(dims) for axis in range(rank))


@shape_rule("transpose")
def transpose(input: Shape, *, axes) -> Shape:
    _require(sorted(axes) == list(range(len(axes))), f"'axes' {list(axes)} is not a permutation")
    _require(len(axes) <= len(input), f"'axes' {list(axes)} longer than rank {len(input)}")
    return (*(input[a] for a in axes), *input[len(axes):])


@shape_rule("concat")
def concat(values: list, *, axis) -> Shape:
    _require(len(values) > 0, "nothing to concatenate")
    first = values[0]
    _require(0 <= axis < len(first), f"axis {axis} out of range for rank {len(first)}")
    for shape in values[1:]:
        _require(len(shape) == len(first) and all(_same(a, b) for i, (a, b) in enumerate(zip(shape, first)) if i != axis),
                 f"shapes {list(first)} and {list(shape)} differ outside axis {axis}")
    return (*first[:axis], sum(s[axis] for s in values), *first[axis + 1:])


@shape_rule("split")
def split(value: Shape, *, axis, ratios) -> list:
    _require(0 <= axis < len(value), f"axis {axis} out of range for rank {len(value)}")
    _require(ratios and all(r > 0 for r in ratios), f"'ratios' must be positive, found {list(ratios)}")
    total = sum(ratios)
    _require(isinstance(value[axis], sympy.Expr) or value[axis] % total == 0,
             f"ratios {list(ratios)} do not divide extent {value[axis]}")
    unit = value[axis] // total
    return [(*value[:axis], r * unit, *value[axis + 1:]) for r in ratios]


@shape_rule("stack")
def stack(values: list, *, axis) -> Shape:
    _require(len(values) > 0, "nothing to stack")
    first = values[0]
    _require(all(tuple(v) == tuple(first) for v in values), "stacked shapes differ")
    _require(0 <= axis <= len(first), f"axis {axis} out of range for rank {len(first) + 1}")
    return (*first[:axis], len(values), *first[axis:])


@shape_rule("unstack")
def unstack(value: Shape, *, axis) -> list:
    _require(0 <= axis < len(value), f"axis {axis} out of range for rank {len(value)}")
    _require(isinstance(value[axis], int), f"cannot unstack symbolic extent {value[axis]}")
    return [(*value[:axis], *value[axis + 1:]) for _ in range(value[axis])]


@shape_rule("slice")
def slice_(input: Shape, *, axes, begin, end, stride=()) -> Shape:
    _require(len(begin) == len(axes) and len(end) == len(axes), "'axes', 'begin' and 'end' differ in length")
    _require(not stride or len(stride) == len(axes), "'stride' differs in length from 'axes'")
    _check_axes(input, axes)
    dims = list(input)
    for i, axis in enumerate(axes):
        step = stride[i] if stride else 1
        _require(step != 0, "'stride' must not be 0")
        extent = input[axis]
        first, last = begin[i], end[i]
        if not isinstance(extent, int):
            _require(first >= 0 and last > 0, f"cannot slice symbolic extent {extent} from the end")
            dims[axis] = (last - first + step - 1) // step if last != 0 else (extent - first + step - 1) // step
            continue
        if last == 0 and step == 1 and not stride:  # 0 as end means: to the end
            last = extent
        first = first + extent if first < 0 else first
        last = last + extent if last < 0 else last
        if step > 0:
            first, last = min(max(first, 0), extent), min(max(last, 0), extent)
            dims[axis] = max(0, _ceil_div(last - first, step))
        else:
            first, last = min(max(first, -1), extent - 1), min(max(last, -1), extent - 1)
            dims[axis] = max(0, _ceil_div(first - last, -step))
    return tuple(dims)


@shape_rule("pad")
def pad(input: Shape, *, padding, **_) -> Shape:
    _require(len(padding) == len(input), f"'padding' needs {len(input)} items, found {len(padding)}")
    return tuple(d + p + q for d, (p, q) in zip(input, padding))


@shape_rule("tile")
def tile(input: Shape, *, repeats) -> Shape:
    _require(len(repeats) == len(input), f"'repeats' needs {len(input)} items, found {len(repeats)}")
    return tuple(d * r for d, r in zip(input, repeats))


@shape_rule("gather")
def gather(input: Shape, indices: Shape, *, axis=0) -> Shape:
    _require(0 <= axis < len(input), f"axis {axis} out of range for rank {len(input)}")
    return (*input[:axis], *indices, *input[axis + 1:])


# ---- matrix multiplication ----------------------------------------------------------------


@shape_rule("matmul")
def matmul(A: Shape, B: Shape, *, transposeA=False, transposeB=False) -> Shape:
    _require(len(A) >= 2 and len(B) >= 2, f"matmul needs rank >= 2, found {list(A)} and {list(B)}")
    _require(len(A) == len(B), f"matmul operands differ in rank: {list(A)} and {list(B)}")
    m, k = (A[-1], A[-2]) if transposeA else (A[-2], A[-1])
    k2, n = (B[-1], B[-2]) if transposeB else (B[-2], B[-1])
    _require(_same(k, k2), f"inner dimensions differ: {list(A)} and {list(B)}")
    return (*broadcast(A[:-2], B[:-2]), m, n)


@shape_rule("linear")
def linear(input: Shape, filter: Shape, bias: Shape = ()) -> Shape:
    out = matmul(input, filter, transposeB=True)
    if bias:
        broadcast(out, bias)
    return out


# ---- region of interest, miscellaneous -----------------------------------------------------


@shape_rule("avg_roi_pool", "max_roi_pool", "roi_resample", "avg_roi_align", "max_roi_align")
def roi(input: Shape, rois: Shape, batch_index: Shape, *, output_size, **_) -> Shape:
    _require(len(output_size) == len(input) - 2, f"'output_size' needs {len(input) - 2} items")
    return (rois[0], input[1], *output_size)


@shape_rule("copy_n")
def copy_n(x: Shape, *, times) -> list:
    return [tuple(x)] * times


@shape_rule("add_n")
def add_n(x: list) -> Shape:
    _require(len(x) > 0, "add_n needs at least one tensor")
    return broadcast(*x)
