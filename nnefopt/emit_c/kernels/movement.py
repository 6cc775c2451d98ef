"""Data movement: copies of blocks (concat, split), transposes, nearest upsampling."""

from __future__ import annotations


def copy_kernel() -> tuple[str, str]:
    name = "nn_copy"
    return name, f"""static void {name}(const float *x, float *y, long n)
{{
    if (x != y)
        memcpy(y, x, (size_t)n * sizeof(float));
}}
"""


def blocks_kernel() -> tuple[str, str]:
    """`outer` blocks of `chunk` items, read every `xs` items and written every `ys`."""
    name = "nn_copy_blocks"
    return name, f"""static void {name}(const float *x, float *y, long outer, long chunk, long xs, long ys)
{{
    long o;
    for (o = 0; o < outer; ++o)
        memcpy(y + o * ys, x + o * xs, (size_t)chunk * sizeof(float));
}}
"""


def transpose_kernel() -> tuple[str, str]:
    """y (dense, of shape `shape`) item by item from x, whose stride along y's axis d is xs[d]."""
    name = "nn_transpose"
    return name, f"""static void {name}(const float *x, float *y, const long *shape, const long *xs, int rank)
{{
    long index[NN_MAX_RANK];
    long xo = 0, yo = 0;
    const long inner = shape[rank - 1], si = xs[rank - 1];
    int d;
    for (d = 0; d < rank; ++d)
        index[d] = 0;
    for (;;) {{
        long i;
        for (i = 0; i < inner; ++i)
            y[yo + i] = x[xo + i * si];
        yo += inner;
        for (d = rank - 2; d >= 0; --d) {{
            xo += xs[d];
            if (++index[d] < shape[d])
                break;
            xo -= xs[d] * shape[d];
            index[d] = 0;
        }}
        if (d < 0)
            return;
    }}
}}
"""


def upsample_nearest_kernel() -> tuple[str, str]:
    """[N, C, H, W] to [N, C, H * fh, W * fw], each item repeated: one output row made
    per input row, copied fh times."""
    name = "nn_upsample_nearest"
    return name, f"""static void {name}(const float *x, float *y, long NC, long H, long W, long fh, long fw)
{{
    long p, ih, iw, r, f;
    const long OW = W * fw;
    for (p = 0; p < NC; ++p) {{
        for (ih = 0; ih < H; ++ih) {{
            const float *xr = x + (p * H + ih) * W;
            float *yr = y + (p * H + ih) * fh * OW;
            if (fw == 2)
                for (iw = 0; iw < W; ++iw)
                    yr[2 * iw] = yr[2 * iw + 1] = xr[iw];
            else
                for (iw = 0; iw < W; ++iw)
                    for (f = 0; f < fw; ++f)
                        yr[iw * fw + f] = xr[iw];
            for (r = 1; r < fh; ++r)
                memcpy(yr + r * OW, yr, (size_t)OW * sizeof(float));
        }}
    }}
}}
"""
