"""Sliding-window and axis kernels: pools, reductions, softmax, normalization."""

from __future__ import annotations

_POOL_INIT = {"max": "-HUGE_VALF", "avg": "0.0f", "sum": "0.0f"}
_POOL_STEP = {"max": "acc = v > acc ? v : acc;", "avg": "acc += v;", "sum": "acc += v;"}


def pool_kernel(mode: str) -> tuple[str, str]:
    """A window over all four axes (is: input shape, os: output shape, k/s/d/p: size,
    stride, dilation, front padding). `ignore` leaves padded positions out (of the max
    and of the average's count); otherwise they are zeros."""
    name = f"nn_pool_{mode}"
    final = {"max": "acc", "sum": "acc", "avg": "acc / (float)(ignore ? count : total)"}[mode]
    return name, f"""static void {name}(const float *x, float *y, const long *is, const long *os, const long *k,
    const long *s, const long *d, const long *p, int ignore)
{{
    const long total = k[0] * k[1] * k[2] * k[3];
    long o0, o1, o2, o3, k0, k1, k2, k3;
    float *out = y;
    (void)total;
    for (o0 = 0; o0 < os[0]; ++o0)
    for (o1 = 0; o1 < os[1]; ++o1)
    for (o2 = 0; o2 < os[2]; ++o2)
    for (o3 = 0; o3 < os[3]; ++o3) {{
        float acc = {_POOL_INIT[mode]};
        long count = 0;
        int padded = 0;
        for (k0 = 0; k0 < k[0]; ++k0) {{
            const long i0 = o0 * s[0] + k0 * d[0] - p[0];
            for (k1 = 0; k1 < k[1]; ++k1) {{
                const long i1 = o1 * s[1] + k1 * d[1] - p[1];
                for (k2 = 0; k2 < k[2]; ++k2) {{
                    const long i2 = o2 * s[2] + k2 * d[2] - p[2];
                    for (k3 = 0; k3 < k[3]; ++k3) {{
                        const long i3 = o3 * s[3] + k3 * d[3] - p[3];
                        float v;
                        if (i0 < 0 || i0 >= is[0] || i1 < 0 || i1 >= is[1] || i2 < 0 || i2 >= is[2]
                                || i3 < 0 || i3 >= is[3]) {{
                            padded = 1;
                            continue;
                        }}
                        v = x[((i0 * is[1] + i1) * is[2] + i2) * is[3] + i3];
                        {_POOL_STEP[mode]}
                        ++count;
                    }}
                }}
            }}
        }}
        if (padded && !ignore) {{
            const float v = 0.0f;
            {_POOL_STEP[mode]}
        }}
        *out++ = {final};
    }}
}}
"""


def pool2d_kernel(mode: str) -> tuple[str, str]:
    """A window over the last two axes only (pool_kernel's semantics), plane by plane;
    where every window stays inside the plane, no read is checked."""
    name = f"nn_pool2d_{mode}"
    final = {"max": "acc", "sum": "acc", "avg": "acc / (float)(ignore ? count : KH * KW)"}[mode]
    return name, f"""static void {name}(const float *x, float *restrict y, long planes, long H, long W, long OH, long OW,
    long KH, long KW, long sh, long sw, long dh, long dw, long ph, long pw, int ignore)
{{
    const int inside = ph == 0 && pw == 0 && (OH - 1) * sh + (KH - 1) * dh < H && (OW - 1) * sw + (KW - 1) * dw < W;
    long p, oh, ow, kh, kw;
    for (p = 0; p < planes; ++p) {{
        const float *xp = x + p * H * W;
        float *yp = y + p * OH * OW;
        for (oh = 0; oh < OH; ++oh)
            for (ow = 0; ow < OW; ++ow) {{
                float acc = {_POOL_INIT[mode]};
                long count = 0;
                int padded = 0;
                if (inside) {{
                    const float *xw = xp + oh * sh * W + ow * sw;
                    for (kh = 0; kh < KH; ++kh)
                        for (kw = 0; kw < KW; ++kw) {{
                            const float v = xw[kh * dh * W + kw * dw];
                            {_POOL_STEP[mode]}
                        }}
                    count = KH * KW;
                }} else {{
                    for (kh = 0; kh < KH; ++kh) {{
                        const long ih = oh * sh + kh * dh - ph;
                        for (kw = 0; kw < KW; ++kw) {{
                            const long iw = ow * sw + kw * dw - pw;
                            float v;
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W) {{
                                padded = 1;
                                continue;
                            }}
                            v = xp[ih * W + iw];
                            {_POOL_STEP[mode]}
                            ++count;
                        }}
                    }}
                }}
                if (padded && !ignore) {{
                    const float v = 0.0f;
                    {_POOL_STEP[mode]}
                }}
                (void)count;
                yp[oh * OW + ow] = {final};
            }}
    }}
}}
"""


_REDUCE_INIT = {"sum": "0.0f", "mean": "0.0f", "max": "-HUGE_VALF", "min": "HUGE_VALF"}
_REDUCE_STEP = {"sum": "y[t] += v;", "mean": "y[t] += v;", "max": "if (v > y[t]) y[t] = v;",
                "min": "if (v < y[t]) y[t] = v;"}


def reduce_kernel(mode: str) -> tuple[str, str]:
    """y (of nout items) over x of `shape`: ys are y's strides per axis of x, 0 along the
    reduced axes; the mean multiplies by `scale` (1 / items reduced)."""
    name = f"nn_reduce_{mode}"
    scale = "\n    for (i = 0; i < nout; ++i)\n        y[i] *= scale;" if mode == "mean" else "\n    (void)scale;"
    return name, f"""static void {name}(const float *x, float *y, const long *shape, const long *ys, int rank,
    long nout, float scale)
{{
    long index[NN_MAX_RANK];
    long yo = 0, xo = 0, i;
    const long inner = shape[rank - 1], si = ys[rank - 1];
    int d;
    for (i = 0; i < nout; ++i)
        y[i] = {_REDUCE_INIT[mode]};
    for (d = 0; d < rank; ++d)
        index[d] = 0;
    for (;;) {{
        if (si == 0) {{  /* the last axis reduced: one item of y, carried in a register */
            float acc = y[yo];
            for (i = 0; i < inner; ++i) {{
                const float v = x[xo + i];
                {_REDUCE_STEP[mode].replace("y[t]", "acc")}
            }}
            y[yo] = acc;
        }} else
            for (i = 0; i < inner; ++i) {{
                const float v = x[xo + i];
                const long t = yo + i * si;
                {_REDUCE_STEP[mode]}
            }}
        xo += inner;
        for (d = rank - 2; d >= 0; --d) {{
            yo += ys[d];
            if (++index[d] < shape[d])
                break;
            yo -= ys[d] * shape[d];
            index[d] = 0;
        }}
        if (d < 0)
            break;
    }}{scale}
}}
"""


def softmax_kernel() -> tuple[str, str]:
    """Softmax along the middle axis of [outer, length, inner]."""
    name = "nn_softmax"
    return name, f"""static void {name}(const float *x, float *y, long outer, long length, long inner)
{{
    long o, j, i;
    for (o = 0; o < outer; ++o) {{
        for (i = 0; i < inner; ++i) {{
            const float *xp = x + o * length * inner + i;
            float *yp = y + o * length * inner + i;
            float top = -HUGE_VALF, sum = 0.0f;
            for (j = 0; j < length; ++j)
                top = xp[j * inner] > top ? xp[j * inner] : top;
            for (j = 0; j < length; ++j) {{
                yp[j * inner] = expf(xp[j * inner] - top);
                sum += yp[j * inner];
            }}
            for (j = 0; j < length; ++j)
                yp[j * inner] /= sum;
        }}
    }}
}}
"""


def normalize_kernel() -> tuple[str, str]:
    """(x - mean) / sqrt(variance + epsilon) along the middle axis of [outer, length,
    inner]: layer normalization before its scale and offset."""
    name = "nn_normalize"
    return name, f"""static void {name}(const float *x, float *y, long outer, long length, long inner, float epsilon)
{{
    long o, j, i;
    for (o = 0; o < outer; ++o) {{
        for (i = 0; i < inner; ++i) {{
            const float *xp = x + o * length * inner + i;
            float *yp = y + o * length * inner + i;
            float mean = 0.0f, variance = 0.0f, scale;
            for (j = 0; j < length; ++j)
                mean += xp[j * inner];
            mean /= (float)length;
            for (j = 0; j < length; ++j) {{
                const float c = xp[j * inner] - mean;
                variance += c * c;
            }}
            variance /= (float)length;
            scale = 1.0f / sqrtf(variance + epsilon);
            for (j = 0; j < length; ++j)
                yp[j * inner] = (xp[j * inner] - mean) * scale;
        }}
    }}
}}
"""
