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


# The register block of the portable GEMM: MR rows of A by NR columns of B, kept in
# MR * NR accumulators (4 x 16 floats: eight 8-wide vector registers under AVX2, which
# compilers find from this C with -O3 -march=native).
MR, NR = 4, 16


def gemm_kernel(activation: str, bias_along: str) -> tuple[str, str]:
    """y[M, N] = a[M, K] b[K, N] + bias, then the activation (`v`, `p0`, `p1`); a and b
    row-major with row strides lda and ldb; the bias per row ("m": conv's channels) or
    per column ("n": linear's features). Rows past M are read from row M - 1 (never
    stored), so the block stays full."""
    name = f"nn_gemm_{bias_along}_{activation}"
    bias = "bias[m0 + r]" if bias_along == "m" else "bias[n0 + j]"
    from nnefopt.emit_c.kernels.elementwise import UNARY

    return name, f"""static void {name}(const float *a, long lda, const float *b, long ldb, const float *bias,
    float *y, long M, long N, long K, float p0, float p1)
{{
    long m0, n0, k, r, j;
    (void)p0;
    (void)p1;
    for (m0 = 0; m0 < M; m0 += {MR}) {{
        const long mr = M - m0 < {MR} ? M - m0 : {MR};
        const float *a0 = a + m0 * lda;
        const float *a1 = a + (m0 + (mr > 1 ? 1 : 0)) * lda;
        const float *a2 = a + (m0 + (mr > 2 ? 2 : 0)) * lda;
        const float *a3 = a + (m0 + (mr > 3 ? 3 : 0)) * lda;
        for (n0 = 0; n0 < N; n0 += {NR}) {{
            const long nr = N - n0 < {NR} ? N - n0 : {NR};
            float acc[{MR}][{NR}];
            for (r = 0; r < {MR}; ++r)
                for (j = 0; j < {NR}; ++j)
                    acc[r][j] = 0.0f;
            if (nr == {NR}) {{
                for (k = 0; k < K; ++k) {{
                    const float *br = b + k * ldb + n0;
                    const float v0 = a0[k], v1 = a1[k], v2 = a2[k], v3 = a3[k];
                    for (j = 0; j < {NR}; ++j) {{
                        const float bv = br[j];
                        acc[0][j] += v0 * bv;
                        acc[1][j] += v1 * bv;
                        acc[2][j] += v2 * bv;
                        acc[3][j] += v3 * bv;
                    }}
                }}
            }} else {{
                for (k = 0; k < K; ++k) {{
                    const float *br = b + k * ldb + n0;
                    const float v0 = a0[k], v1 = a1[k], v2 = a2[k], v3 = a3[k];
                    for (j = 0; j < nr; ++j) {{
                        const float bv = br[j];
                        acc[0][j] += v0 * bv;
                        acc[1][j] += v1 * bv;
                        acc[2][j] += v2 * bv;
                        acc[3][j] += v3 * bv;
                    }}
                }}
            }}
            for (r = 0; r < mr; ++r) {{
                float *yr = y + (m0 + r) * N + n0;
                for (j = 0; j < nr; ++j) {{
                    const float v = acc[r][j] + {bias};
                    yr[j] = {UNARY[activation]};
                }}
            }}
        }}
    }}
}}
"""
