"""Element-wise kernels: arithmetic, comparison, logic, activations, quantization, casts.

NNEF broadcasting aligns shapes from the left: a tensor of lower rank gets trailing
singleton dimensions (a `[1, C]` bias meets `[N, C, H, W]` as `[1, C, 1, 1]`), unlike
numpy, which aligns from the right. `operands` does that alignment and picks one dtype.
Compound ops follow their stdlib fragments literally (`min` is `select(x < y, x, y)`,
`gelu` is `x * sigmoid(1.702 * x)`), so NaN handling matches the specification's text.
"""

from __future__ import annotations

import math

import numpy as np

from nnefopt.broadcasting import align
from nnefopt.dtypes import NUMPY_TYPES, TRACT_DATUM_TYPES

from .registry import kernel

# Floating-point warnings the kernels silence: an overflow gives inf, 0/0 NaN, as in C.
# A prepared kernel (`kernel.prepare`) runs under the IR interpreter's plan, which sets
# them once per run, so it does not set them per call.
QUIET_FLOATS = {"divide": "ignore", "invalid": "ignore", "over": "ignore"}

# NNEF type names of `cast<T>` / `constant<T>` and tract's datum type names.
DTYPES = {**NUMPY_TYPES, **TRACT_DATUM_TYPES}


def to_dtype(name) -> np.dtype:
    """A numpy dtype from an NNEF or tract type name, or from a dtype itself."""
    return np.dtype(DTYPES.get(name, name) if isinstance(name, str) else name)


def common_dtype(arrays) -> np.dtype:
    """The dtype an element-wise op computes in.

    Literals reach kernels as 0-d float64 or int64 arrays; they must not widen a float32
    or int8 tensor as numpy's promotion would. So shaped operands decide; among 0-d ones
    alone, a literal type gives way to any other, and literals alone make NNEF's
    `scalar` (float32) or `integer` (int32).
    """
    for kinds, literal, default in (("f", np.float64, np.float32), ("iu", np.int64, np.int32)):
        found = [a for a in arrays if a.dtype.kind in kinds]
        if found:
            decisive = ([a.dtype for a in found if a.ndim]
                        or [a.dtype for a in found if a.dtype != literal] or [np.dtype(default)])
            return np.result_type(*decisive)
    return np.dtype(bool)


def operands(*values):
    """Left-aligned arrays converted to their common dtype."""
    dtype = common_dtype([np.asarray(v) for v in values])  # before alignment adds dims
    return [a.astype(dtype, copy=False) for a in align(*values)]


def floating(x) -> np.ndarray:
    """`x` itself when floating, else as float32: transcendental ops have no integer form."""
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float32)


def accumulating(a, b):
    """Operands of a multiply-accumulate (conv, matmul): integers with integers
    accumulate in int32, as quantized kernels do; anything else in a common float."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "iub" and b.dtype.kind in "iub":
        return a.astype(np.int32), b.astype(np.int32)
    a, b = floating(a), floating(b)
    dtype = common_dtype([a, b])
    return a.astype(dtype, copy=False), b.astype(dtype, copy=False)


def nnef_round(x):
    """The specification's round (1.0.5, 4.2): floor(x + 0.5), so halves go up (-0.5 -> 0);
    numpy's rounds to even, C's away from zero. The sum is taken in float64: in float32,
    0.49999997 + 0.5 is 1.0."""
    x = np.asarray(x)
    rounded = np.floor(x.astype(np.float64) + 0.5)
    return rounded.astype(x.dtype) if x.dtype.kind == "f" else rounded


def average(total, count):
    """`total / count` in the dtype of `total`; an integer average is rounded like `round`."""
    if total.dtype.kind == "f":
        return (total / count).astype(total.dtype)
    return nnef_round(total / count).astype(total.dtype)


# ---- binary ops -------------------------------------------------------------------------

def _divide(x, y):
    """Float division; integer division truncates toward zero, as C and tract do."""
    if x.dtype.kind == "f":
        return x / y
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.trunc(x.astype(np.float64) / y).astype(x.dtype)


def _power(x, y):
    if x.dtype.kind == "f":
        return np.power(x, y)
    return np.power(x.astype(np.float64), y).astype(x.dtype)  # negative integer exponents


_BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": _divide, "pow": _power,
    "lt": np.less, "gt": np.greater, "le": np.less_equal, "ge": np.greater_equal,
    "eq": np.equal, "ne": np.not_equal, "and": np.logical_and, "or": np.logical_or,
    "min": lambda x, y: np.where(x < y, x, y), "max": lambda x, y: np.where(x > y, x, y),
}


def _binary_kernel(name, function):
    @kernel(name)
    def binary(x, y):
        with np.errstate(**QUIET_FLOATS):
            return np.asarray(function(*operands(x, y)))  # 0-d results stay arrays

    def prepare(known, attribs):
        """For operands of fixed shapes and dtypes, the alignment and common dtype of
        `operands` decided once (the IR interpreter's plan asks)."""
        (shape_x, dtype_x, _), (shape_y, dtype_y, _) = known
        if None in (shape_x, shape_y, dtype_x, dtype_y):
            return None
        probes = [np.broadcast_to(np.zeros((), d), s) for s, d in ((shape_x, dtype_x), (shape_y, dtype_y))]
        dtype = common_dtype(probes)
        rank = max(len(shape_x), len(shape_y))
        aligned_x, aligned_y = (tuple(s) + (1,) * (rank - len(s)) for s in (shape_x, shape_y))

        def prepared(x, y):  # under the plan's QUIET_FLOATS
            if x.dtype != dtype_x or y.dtype != dtype_y or x.shape != shape_x or y.shape != shape_y:
                return binary(x, y)
            return np.asarray(function(x.reshape(aligned_x).astype(dtype, copy=False),
                                       y.reshape(aligned_y).astype(dtype, copy=False)))

        return prepared

    binary.__name__ = name
    binary.prepare = prepare
    return binary


for _name, _function in _BINARY.items():
    _binary_kernel(_name, _function)


@kernel("select")
def select(condition, true_value, false_value):
    condition, true_value, false_value = align(condition, *operands(true_value, false_value))
    return np.where(condition.astype(bool), true_value, false_value)


@kernel("clamp")
def clamp(x, a, b):
    x, a, b = operands(x, a, b)
    if np.isnan(a).any() or np.isnan(b).any():
        lower = np.where(x < b, x, b)
        return np.where(lower > a, lower, a)
    # Bounds that are numbers: fmin/fmax give the spec's select on NaN inputs (the
    # bound) and on ties (the second operand), in place, at half the passes.
    return _clamp_between(x, a, b)


def _clamp_between(x, a, b):
    out = np.asarray(np.fmin(x, b))  # a rank-0 fmin is a numpy scalar, which cannot be an `out`
    return np.fmax(out, a, out=out) if np.broadcast_shapes(out.shape, a.shape) == out.shape else np.fmax(out, a)


def _prepare_clamp(known, attribs):
    """clamp of an input of fixed shape and dtype between known bounds that are numbers:
    the bounds aligned and converted once (the IR interpreter's plan asks)."""
    (shape, dtype, _), (_, _, a), (_, _, b) = known
    if shape is None or dtype is None or a is None or b is None:
        return None
    x, low, high = operands(np.zeros(shape, dtype), a, b)
    if x.shape != tuple(shape) or x.dtype != dtype or np.isnan(low).any() or np.isnan(high).any() \
            or np.broadcast_shapes(x.shape, low.shape, high.shape) != x.shape:
        return None

    def prepared(input, a, b):
        if input.dtype == dtype and input.shape == shape:
            return _clamp_between(input, low, high)
        return clamp(input, a, b)

    return prepared


clamp.prepare = _prepare_clamp


@kernel("add_n")
def add_n(x):
    # The fragment's recursion ends in constant [0.0]: that is what no terms give.
    return sum(x[1:], start=np.array(x[0], copy=True)) if x else np.zeros([1], np.float32)


# ---- unary ops --------------------------------------------------------------------------

def _keep(function):
    """Ops that keep an integer tensor integer (abs, neg, ...)."""
    return lambda x: np.asarray(function(np.asarray(x)))


def _float(function):
    """Ops defined on reals only: integers are computed as float32."""

    def apply(x):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.asarray(function(floating(x)))

    return apply


def _rounding(function):
    """floor/ceil/round are the identity on integers."""
    return lambda x: np.asarray(function(x)) if np.asarray(x).dtype.kind == "f" else np.array(x, copy=True)


def sigmoid(x):
    # exp(-log(1 + exp(-x))) never overflows and stays accurate in both tails.
    return np.exp(-np.logaddexp(np.zeros((), x.dtype), -x))


def _erf(x):
    """Error function in float64, within 1e-10: the Maclaurin series in x² (64 terms,
    Horner) up to |x| = 4, where cancelling its alternating terms costs under 1e-10, and
    the asymptotic series of erfc beyond, which is then exact to 1e-12 of erfc."""
    wide = np.asarray(x, np.float64)
    near = np.clip(wide, -4.0, 4.0)
    square = near * near
    series = np.full_like(near, _ERF_SERIES[-1])
    for coefficient in _ERF_SERIES[-2::-1]:
        series *= square
        series += coefficient
    far = np.maximum(np.abs(wide), 4.0)
    inverse = 1 / (2 * far * far)
    tail = np.full_like(far, _ERFC_ASYMPTOTIC[-1])
    for coefficient in _ERFC_ASYMPTOTIC[-2::-1]:
        tail *= inverse
        tail += coefficient
    complement = np.exp(-far * far) / (far * math.sqrt(math.pi)) * tail
    return np.where(np.abs(wide) <= 4.0, near * series, np.sign(wide) * (1 - complement)).astype(x.dtype)


_ERF_SERIES = [2 / math.sqrt(math.pi) * (-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(64)]
# erfc(x) ~ exp(-x²) / (x √π) · Σ (-1)^n (2n-1)!! / (2x²)^n
_ERFC_ASYMPTOTIC = [(-1) ** n * math.prod(range(1, 2 * n, 2)) for n in range(8)]

def _rsqrt(x):
    """x ^ -0.5, as the specification defines it: rsqrt(-0) is +inf, like pow(-0, -0.5)
    and IEEE 754's rSqrt, where 1 / sqrt(-0) is -inf (x + 0 turns -0 into +0, nothing else)."""
    return 1 / np.sqrt(x + x.dtype.type(0))


_UNARY = {
    "copy": _keep(np.copy), "neg": _keep(np.negative), "abs": _keep(np.abs),
    "sign": _keep(np.sign), "not": _keep(np.logical_not),
    "sqr": _keep(lambda x: x * x), "relu": _keep(lambda x: np.fmax(x, np.zeros((), x.dtype))),  # select(x > 0, x, 0): NaN and -0 give 0
    "floor": _rounding(np.floor), "ceil": _rounding(np.ceil), "round": _rounding(nnef_round),
    "exp": _float(np.exp), "log": _float(np.log), "log2": _float(np.log2),
    "sin": _float(np.sin), "cos": _float(np.cos), "tan": _float(np.tan),
    "asin": _float(np.arcsin), "acos": _float(np.arccos), "atan": _float(np.arctan),
    "sinh": _float(np.sinh), "cosh": _float(np.cosh), "tanh": _float(np.tanh),
    "asinh": _float(np.arcsinh), "acosh": _float(np.arccosh), "atanh": _float(np.arctanh),
    "rcp": _float(lambda x: 1 / x), "sqrt": _float(np.sqrt), "rsqrt": _float(_rsqrt),
    "rsqr": _float(lambda x: 1 / (x * x)),
    "sigmoid": _float(sigmoid), "softplus": _float(lambda x: np.logaddexp(np.zeros((), x.dtype), x)),
    "gelu": _float(lambda x: x * sigmoid(x * x.dtype.type(1.702))),
    "silu": _float(lambda x: x * sigmoid(x)),
    # Extensions: `erf` from nnef-tools, tract's `tract_core_erf` and `tract_gelu` fragment.
    "erf": _float(_erf), "tract_core_erf": _float(_erf),
    "tract_gelu": _float(lambda x: x * (_erf(x * x.dtype.type(math.sqrt(0.5))) + 1) / 2),
}

for _name, _function in _UNARY.items():
    kernel(_name)(_function)


def _exponential_unit(x, alpha):
    """alpha * (exp(x) - 1) below zero, x above; expm1 of the negative part only."""
    x = floating(x)
    return np.where(x < 0, alpha * np.expm1(np.minimum(x, 0)), x).astype(x.dtype)


@kernel("elu")
def elu(x, alpha=1.0):
    return _exponential_unit(x, alpha)


@kernel("selu")
def selu(x, alpha=1.67326319, **attributes):
    x = floating(x)
    return (_exponential_unit(x, alpha) * x.dtype.type(attributes.get("lambda", 1.05070102))).astype(x.dtype)


@kernel("prelu")
def prelu(x, alpha):
    x, alpha = operands(x, alpha)
    return np.where(x < 0, alpha * x, x)


@kernel("leaky_relu")
def leaky_relu(x, alpha):
    x = floating(x)
    return prelu(x, np.asarray(alpha, x.dtype))


@kernel("softabs")
def softabs(x, epsilon):
    x = floating(x)
    return np.sqrt(x * x + x.dtype.type(epsilon))


# ---- quantization -----------------------------------------------------------------------

@kernel("min_max_linear_quantize")
def min_max_linear_quantize(x, min, max, bits, signed, symmetric):
    x, low, high = operands(floating(x), min, max)
    levels = x.dtype.type(2**bits - 1 - int(signed and symmetric))
    z = clamp(x, low, high)
    # q + p of the fragment: the offset p cancels out of the reconstruction.
    code = nnef_round((z - low) / (high - low) * levels)
    return (code / levels * (high - low) + low).astype(x.dtype)


@kernel("linear_quantize")
def linear_quantize(x, min, max, bits):
    return min_max_linear_quantize(x, min, max, bits, signed=False, symmetric=False)


@kernel("zero_point_linear_quantize")
def zero_point_linear_quantize(x, zero_point, scale, bits, signed, symmetric):
    x, zero, scale = operands(floating(x), np.asarray(zero_point).astype(np.float32), scale)
    top = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    bottom = 0 if not signed else -top if symmetric else -top - 1
    # the fragment's clamp (a select): a NaN code, from a zero scale, becomes the top code
    code = clamp(nnef_round(x / scale) + zero, x.dtype.type(bottom), x.dtype.type(top))
    return ((code - zero) * scale).astype(x.dtype)


@kernel("logarithmic_quantize")
def logarithmic_quantize(x, max, bits):
    x, high = operands(floating(x), max)
    with np.errstate(divide="ignore"):
        top = np.ceil(np.log2(high))
        exponent = nnef_round(clamp(np.log2(np.abs(x)), top - (2**bits - 1), top))
    return (np.sign(x) * np.exp2(exponent)).astype(x.dtype)


# ---- casts and constants ----------------------------------------------------------------

@kernel("cast")
def cast(input, dtype="scalar"):
    """`cast<T>`: `dtype` is the generic argument T (an NNEF type name or a numpy dtype)."""
    return np.asarray(input).astype(to_dtype(dtype))


@kernel("tract_core_cast")
def tract_core_cast(input, to=""):
    """tract's cast; float to integer truncates toward zero. `to=''` means the target
    comes from graph.quant, which the caller applies: the values pass unchanged."""
    return np.array(input, copy=True) if to == "" else cast(input, to)


@kernel("constant")
def constant(shape, value, dtype="scalar"):
    """A tensor of `shape` from `value`: all its items, or its single item repeated."""
    values = np.asarray(value, to_dtype(dtype)).reshape(-1)
    return np.full(shape, values[0]) if values.size == 1 else values.reshape(shape)


@kernel("update")
def update(variable, value):
    return np.array(value, copy=True)
