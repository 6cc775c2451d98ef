"""Matrix products: `linear` (y = x w^T + b, with a fused activation) and batched
`matmul` with any transposition (operands addressed by row and column strides)."""

from __future__ import annotations

from nnefopt.emit_c.kernels.elementwise import UNARY


def linear_kernel(activation: str) -> tuple[str, str]:
    name = f"nn_linear_{activation}"
    return name, f"""static void {name}(const float *x, const float *w, const float *bias, float *y,
    long M, long N, long K, float p0, float p1)
{{
    long m, n, k;
    (void)p0;
    (void)p1;
    for (m = 0; m < M; ++m) {{
        const float *xr = x + m * K;
        for (n = 0; n < N; ++n) {{
            const float *wr = w + n * K;
            float v = 0.0f;
            for (k = 0; k < K; ++k)
                v += xr[k] * wr[k];
            v += bias[n];
            y[m * N + n] = {UNARY[activation]};
        }}
    }}
}}
"""


def matmul_kernel() -> tuple[str, str]:
    """y[b] = A[b] B[b] with A(m, k) at a[m * ars + k * acs] (a transposed operand is
    a swap of strides); a batch stride of 0 broadcasts an operand over the batch."""
    name = "nn_matmul"
    return name, f"""static void {name}(const float *a, const float *b, float *y, long batch, long M, long N, long K,
    long abs_, long ars, long acs, long bbs, long brs, long bcs)
{{
    long t, m, n, k;
    for (t = 0; t < batch; ++t) {{
        const float *ap = a + t * abs_;
        const float *bp = b + t * bbs;
        float *yp = y + t * M * N;
        for (m = 0; m < M; ++m) {{
            float *yr = yp + m * N;
            for (n = 0; n < N; ++n)
                yr[n] = 0.0f;
            for (k = 0; k < K; ++k) {{
                const float av = ap[m * ars + k * acs];
                const float *br = bp + k * brs;
                for (n = 0; n < N; ++n)
                    yr[n] += av * br[n * bcs];
            }}
        }}
    }}
}}
"""
