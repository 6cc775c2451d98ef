"""Element-wise kernels: unary maps (with up to two scalar parameters) and binary maps
over broadcast operands (strides of 0 on the broadcast axes)."""

from __future__ import annotations

# Unary maps as C expressions of `v` (the item) and `p0`, `p1` (scalar parameters: an
# activation's alpha, clamp's bounds). These are also the epilogues of conv and linear.
UNARY: dict[str, str] = {
    "copy": "v",
    "neg": "-v",
    "abs": "fabsf(v)",
    "sign": "(v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : 0.0f))",
    "exp": "expf(v)",
    "log": "logf(v)",
    "log2": "log2f(v)",
    "sqrt": "sqrtf(v)",
    "rsqrt": "1.0f / sqrtf(v + 0.0f)",  # + 0 makes -0 +0: rsqrt(-0) = +inf, as x ^ -0.5
    "sqr": "v * v",
    "square": "v * v",
    "rsqr": "1.0f / (v * v)",
    "rcp": "1.0f / v",
    "floor": "floorf(v)",
    "ceil": "ceilf(v)",
    "round": "(v < 0.0f ? -floorf(-v + 0.5f) : floorf(v + 0.5f))",
    "sin": "sinf(v)",
    "cos": "cosf(v)",
    "tan": "tanf(v)",
    "sinh": "sinhf(v)",
    "cosh": "coshf(v)",
    "tanh": "tanhf(v)",
    "asin": "asinf(v)",
    "acos": "acosf(v)",
    "atan": "atanf(v)",
    "asinh": "asinhf(v)",
    "acosh": "acoshf(v)",
    "atanh": "atanhf(v)",
    "erf": "erff(v)",
    "relu": "(v > 0.0f ? v : 0.0f)",
    "sigmoid": "1.0f / (1.0f + expf(-v))",
    "silu": "v / (1.0f + expf(-v))",
    "softplus": "logf(1.0f + expf(v))",
    "softabs": "sqrtf(v * v + p0)",
    "elu": "(v < 0.0f ? p0 * (expf(v) - 1.0f) : v)",
    "selu": "(v < 0.0f ? p1 * p0 * (expf(v) - 1.0f) : p1 * v)",
    "leaky_relu": "(v < 0.0f ? p0 * v : v)",
    "clamp": "(v < p0 ? p0 : (v > p1 ? p1 : v))",
    "gelu": "v / (1.0f + expf(-1.702f * v))",
    "gelu_erf": "0.5f * v * (1.0f + erff(v * 0.70710678118654752f))",
}

# The scalar parameters of each map, by the op's parameter names, in p0, p1 order.
PARAMETERS: dict[str, tuple[str, ...]] = {
    "elu": ("alpha",),
    "selu": ("alpha", "lambda"),
    "leaky_relu": ("alpha",),
    "clamp": ("a", "b"),
    "softabs": ("epsilon",),
}

# Binary maps as C expressions of `u` (first operand) and `w` (second).
BINARY: dict[str, str] = {
    "add": "u + w",
    "sub": "u - w",
    "mul": "u * w",
    "div": "u / w",
    "pow": "powf(u, w)",
    "min": "(u < w ? u : w)",
    "max": "(u > w ? u : w)",
    "prelu": "(u < 0.0f ? w * u : u)",
}


def unary_kernel(op: str) -> tuple[str, str]:
    name = f"nn_map_{op}"
    return name, f"""static void {name}(const float *x, float *y, long n, float p0, float p1)
{{
    long i;
    (void)p0;
    (void)p1;
    for (i = 0; i < n; ++i) {{
        const float v = x[i];
        y[i] = {UNARY[op]};
    }}
}}
"""


def binary_kernel(op: str) -> tuple[str, str]:
    """y = a OP b over `shape` (rank >= 1); `as`/`bs` are the operands' strides in items,
    0 along an axis they are broadcast on. y may be a or b (in place): each item is read
    before it is written."""
    name = f"nn_zip_{op}"
    return name, f"""static void {name}(const float *a, const long *as, const float *b, const long *bs,
    float *y, const long *shape, int rank)
{{
    long index[NN_MAX_RANK];
    long ao = 0, bo = 0, yo = 0;
    const long inner = shape[rank - 1], sa = as[rank - 1], sb = bs[rank - 1];
    int d;
    for (d = 0; d < rank; ++d)
        index[d] = 0;
    for (;;) {{
        long i;
        for (i = 0; i < inner; ++i) {{
            const float u = a[ao + i * sa];
            const float w = b[bo + i * sb];
            y[yo + i] = {BINARY[op]};
        }}
        yo += inner;
        for (d = rank - 2; d >= 0; --d) {{
            ao += as[d];
            bo += bs[d];
            if (++index[d] < shape[d])
                break;
            ao -= as[d] * shape[d];
            bo -= bs[d] * shape[d];
            index[d] = 0;
        }}
        if (d < 0)
            return;
    }}
}}
"""
