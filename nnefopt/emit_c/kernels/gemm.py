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


# The register block of the GEMM: MR rows of A by NR columns of B, kept in MR * NR
# accumulators (6 x 16 floats: twelve 8-wide registers on the AVX2 path; the portable
# path keeps them in an array the compiler may vectorize).
MR, NR = 6, 16
def _scalar_k_loop(half: str) -> str:
    """The portable path's inner loops, shared by both tile kernels: acc[MR x NR] += a
    panel (MR per k) times row k of b, whose columns 0.. are at b + boff[k] and columns
    NR / 2.. at b + boff[k] + `half` (C text: a literal NR / 2 for one contiguous row,
    a variable for two output rows of NR / 2 positions read in place)."""
    return f"""    for (k = 0; k < K; ++k) {{
        const float *br = b + boff[k];
        const float *ak = a + k * {MR};
        for (r = 0; r < {MR}; ++r) {{
            const float av = ak[r];
            float *cr = acc + r * {NR};
            for (j = 0; j < {NR // 2}; ++j)
                cr[j] += av * br[j];
            for (j = 0; j < {NR // 2}; ++j)
                cr[{NR // 2} + j] += av * br[{half} + j];
        }}
    }}
"""


def gemm_kernel(activation: str, bias_along: str) -> tuple[str, str]:
    """y[M, N] = a[M, K] b[K, N] + bias, then the activation (`v`, `p0`, `p1`); a
    row-major with row stride lda, y with ldy, b packed in panels of NR columns (`pack_panels`:
    each panel's K rows of NR items contiguous, so a block streams through memory
    instead of striding N apart, where rows a power of two apart fight for the same
    cache sets); the bias per row ("m": conv's channels) or
    per column ("n": linear's features). Rows past M are read from row M - 1 (never
    stored), so the block stays full."""
    from nnefopt.emit_c.kernels.elementwise import UNARY

    name = f"nn_gemm_{bias_along}_{activation}"
    bias = "bias[m0 + r]" if bias_along == "m" else "bias[n0 + j]"
    rows = "\n".join(f"        const float *a{r} = a + (m0 + (mr > {r} ? {r} : 0)) * lda;" for r in range(MR))
    loads = ", ".join(f"v{r} = a{r}[k]" for r in range(MR))
    updates = "\n".join(f"                        acc[{r}][j] += v{r} * bv;" for r in range(MR))

    registers = ", ".join(f"c{r}{h} = _mm256_setzero_ps()" for r in range(MR) for h in range(2))
    fmas = "\n".join(f"                    a = _mm256_broadcast_ss(a{r} + k);\n"
                      f"                    c{r}0 = _mm256_fmadd_ps(a, b0, c{r}0);\n"
                      f"                    c{r}1 = _mm256_fmadd_ps(a, b1, c{r}1);" for r in range(MR))
    stores = "\n".join(f"                _mm256_storeu_ps(acc[{r}], c{r}0);\n"
                        f"                _mm256_storeu_ps(acc[{r}] + 8, c{r}1);" for r in range(MR))
    avx2 = f"""#ifdef NN_AVX2
            if (nr == {NR}) {{
                __m256 {registers};
                for (k = 0; k < K; ++k) {{
                    const __m256 b0 = _mm256_loadu_ps(bp + k * {NR}), b1 = _mm256_loadu_ps(bp + k * {NR} + 8);
                    __m256 a;
{fmas}
                }}
{stores}
            }} else
#endif"""

    def k_loop(bound: str) -> str:
        return f"""                for (k = 0; k < K; ++k) {{
                    const float *br = bp + k * {NR};
                    const float {loads};
                    for (j = 0; j < {bound}; ++j) {{
                        const float bv = br[j];
{updates}
                    }}
                }}"""

    return name, f"""static void {name}(const float *a, long lda, const float *b, const float *bias,
    float *y, long ldy, long M, long N, long K, float p0, float p1)
{{
    long m0, n0, k, r, j;
    (void)p0;
    (void)p1;
    for (m0 = 0; m0 < M; m0 += {MR}) {{
        const long mr = M - m0 < {MR} ? M - m0 : {MR};
{rows}
        for (n0 = 0; n0 < N; n0 += {NR}) {{
            const long nr = N - n0 < {NR} ? N - n0 : {NR};
            const float *bp = b + n0 * K;
            float acc[{MR}][{NR}];
            for (r = 0; r < {MR}; ++r)
                for (j = 0; j < {NR}; ++j)
                    acc[r][j] = 0.0f;
{avx2}
            if (nr == {NR}) {{
{k_loop(str(NR))}
            }} else {{
{k_loop("nr")}
            }}
            for (r = 0; r < mr; ++r) {{
                float *yr = y + (m0 + r) * ldy + n0;
                for (j = 0; j < nr; ++j) {{
                    const float v = acc[r][j] + {bias};
                    yr[j] = {UNARY[activation]};
                }}
            }}
        }}
    }}
}}
"""


def panels(matrix):
    """A [K, N] matrix (numpy) as the GEMM's b: panels of NR columns, zero-padded."""
    import numpy as np

    k, n = matrix.shape
    count = -(-n // NR)
    padded = np.zeros((k, count * NR), np.float32)
    padded[:, :n] = matrix
    return np.ascontiguousarray(padded.reshape(k, count, NR).transpose(1, 0, 2))


def panel_items(k: int, n: int) -> int:
    return k * -(-n // NR) * NR


def _avx2_k_loop(fmas: str, halves: int = 2, second: str = "8") -> str:
    """The tile's k loop, two steps per turn (the loop's own instructions were a tenth of
    its time at small K); each item still sums over k in order. `halves` 0: a quarter
    tile, four columns in 4-wide registers."""
    if halves == 0:
        loads, kind = "const __m128 b0 = _mm_loadu_ps(br)", "__m128"
    else:
        loads = "const __m256 b0 = _mm256_loadu_ps(br)" + (f", b1 = _mm256_loadu_ps(br + {second})" if halves == 2 else "")
        kind = "__m256"
    step = f"""        {{
            const float *br = b + boff[k];
            const float *ak = a + k * {MR};
            {loads};
            {kind} t;
{fmas}
        }}"""
    return f"""    for (k = 0; k + 1 < K; ++k) {{
{step}
        ++k;
{step}
    }}
    if (k < K)
{step}"""


def tile_kernel() -> tuple[str, str]:
    """acc[MR][NR] += a b over `K`: a an MR-row panel packed at compile time (`row_panels`:
    item (k, r) at a[k * MR + r]), row k of b the NR floats at b + boff[k] (the rows of
    an input image a convolution reads, or of columns built for it). The AVX2 path keeps
    the block in twelve registers; the portable one sums each item in the same order."""
    name = f"nn_tile_{MR}x{NR}"
    registers = ", ".join(f"c{r}{h} = _mm256_loadu_ps(acc + {r * NR + 8 * h})" for r in range(MR) for h in range(2))
    fmas = "\n".join(f"            t = _mm256_broadcast_ss(ak + {r});\n"
                      f"            c{r}0 = _mm256_fmadd_ps(t, b0, c{r}0);\n"
                      f"            c{r}1 = _mm256_fmadd_ps(t, b1, c{r}1);" for r in range(MR))
    stores = "\n".join(f"    _mm256_storeu_ps(acc + {r * NR}, c{r}0);\n"
                        f"    _mm256_storeu_ps(acc + {r * NR + 8}, c{r}1);" for r in range(MR))
    return name, f"""static void {name}(const float *restrict a, const float *restrict b, const long *restrict boff, long K,
    float *restrict acc)
{{
    long k;
#ifdef NN_AVX2
    __m256 {registers};
{_avx2_k_loop(fmas)}
{stores}
#else
    long r, j;
{_scalar_k_loop(str(NR // 2))}#endif
}}
"""


def row_panels(matrix):
    """An [M, K] matrix (numpy) as the tile kernel's a: panels of MR rows, each [K, MR],
    rows past M zero."""
    import numpy as np

    m, k = matrix.shape
    count = -(-m // MR)
    padded = np.zeros((count * MR, k), np.float32)
    padded[:m] = matrix
    return np.ascontiguousarray(padded.reshape(count, MR, k).transpose(0, 2, 1))


# Epilogues the AVX2 tile applies in registers (`v`; `lo`, `hi`: p0, p1 broadcast), each
# as the scalar map of elementwise.UNARY also treats a NaN.
VECTOR_EPILOGUES = {
    "copy": "v",
    "relu": "_mm256_max_ps(v, _mm256_setzero_ps())",
    "clamp": "_mm256_min_ps(hi, _mm256_max_ps(lo, v))",
    "leaky_relu": "_mm256_blendv_ps(v, _mm256_mul_ps(lo, v), _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ))",
}


def _vector_exp(x: str, e: str) -> str:
    """C statements setting `e` to exp(`x`) for eight floats: x clamped to [-88, 88]
    (exp is finite there; below it the result is 0), x = n ln 2 + r with |r| <= ln 2 / 2
    (ln 2 in two parts, so r is exact), exp(r) by a degree-7 polynomial (relative
    error under 2e-7), times 2^n built in the exponent bits."""
    return f"""{{
                const __m256 x_ = _mm256_min_ps(_mm256_set1_ps(88.0f), _mm256_max_ps(_mm256_set1_ps(-88.0f), {x}));
                const __m256 n_ = _mm256_round_ps(_mm256_mul_ps(x_, _mm256_set1_ps(1.44269504089f)),
                                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                const __m256 r_ = _mm256_fnmadd_ps(n_, _mm256_set1_ps(-2.12194440e-4f),
                                                   _mm256_fnmadd_ps(n_, _mm256_set1_ps(0.693359375f), x_));
                __m256 p_ = _mm256_set1_ps(1.9875691500e-4f);
                p_ = _mm256_fmadd_ps(p_, r_, _mm256_set1_ps(1.3981999507e-3f));
                p_ = _mm256_fmadd_ps(p_, r_, _mm256_set1_ps(8.3334519073e-3f));
                p_ = _mm256_fmadd_ps(p_, r_, _mm256_set1_ps(4.1665795894e-2f));
                p_ = _mm256_fmadd_ps(p_, r_, _mm256_set1_ps(1.6666665459e-1f));
                p_ = _mm256_fmadd_ps(p_, r_, _mm256_set1_ps(5.0000001201e-1f));
                p_ = _mm256_fmadd_ps(p_, _mm256_mul_ps(r_, r_), _mm256_add_ps(r_, _mm256_set1_ps(1.0f)));
                {e} = _mm256_mul_ps(p_, _mm256_castsi256_ps(_mm256_slli_epi32(
                    _mm256_add_epi32(_mm256_cvtps_epi32(n_), _mm256_set1_epi32(127)), 23)));
            }}"""


# Epilogues the AVX2 tile applies in registers as statements mapping `v` (eight items)
# in place, where a scalar libm call per item was most of a conv's time (a tanh conv
# over K = 216: half): within 1e-6 of the scalar map, a NaN kept a NaN.
VECTOR_MAPS = {
    "sigmoid": f"""{{
            __m256 e;
            {_vector_exp("_mm256_sub_ps(_mm256_setzero_ps(), v)", "e")}
            v = _mm256_blendv_ps(_mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e)), v,
                                 _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        }}""",
    # tanh |v| = 1 - 2 / (exp(2 |v|) + 1) with v's sign; under 1/16 its odd series to
    # v^7, where the formula would lose digits to 1 - (almost 1)
    "tanh": f"""{{
            const __m256 sign = _mm256_set1_ps(-0.0f), a = _mm256_andnot_ps(sign, v), v2 = _mm256_mul_ps(v, v);
            __m256 e, big, small;
            {_vector_exp("_mm256_add_ps(a, a)", "e")}
            big = _mm256_or_ps(_mm256_and_ps(sign, v), _mm256_sub_ps(_mm256_set1_ps(1.0f),
                  _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f)))));
            small = _mm256_fmadd_ps(_mm256_set1_ps(-17.0f / 315.0f), v2, _mm256_set1_ps(2.0f / 15.0f));
            small = _mm256_fmadd_ps(small, v2, _mm256_set1_ps(-1.0f / 3.0f));
            small = _mm256_fmadd_ps(_mm256_mul_ps(small, v2), v, v);
            v = _mm256_blendv_ps(_mm256_blendv_ps(big, small, _mm256_cmp_ps(a, _mm256_set1_ps(0.0625f), _CMP_LT_OQ)),
                                 v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        }}""",
}


def _tile_fmas(rows: int, halves: int) -> str:
    if halves == 0:  # a quarter tile: q<r>, the low half of c<r>0
        return "\n".join(f"            t = _mm_broadcast_ss(ak + {r});\n"
                         f"            q{r} = _mm_fmadd_ps(t, b0, q{r});" for r in range(rows))
    return "\n".join(f"            t = _mm256_broadcast_ss(ak + {r});\n"
                     + "\n".join(f"            c{r}{h} = _mm256_fmadd_ps(t, b{h}, c{r}{h});" for h in range(halves))
                     for r in range(rows))


def _row_count_loops() -> str:
    """The AVX2 tile's k loops by the products wanted: a quarter of a tile when nr <= 4,
    half when nr <= 8 (the rest's are not wanted), and 2, 4 or 6 rows by mr (the last panel of 16 or 32
    channels has 4 or 2: a sixth to a third of its work was on the panel's zeros)."""
    def by_rows(halves: int) -> str:
        loops = [(f"if (mr > {rows - 2})" if rows > 2 else "", _avx2_k_loop(_tile_fmas(rows, halves), halves, "half"))
                 for rows in (MR, 4, 2)]
        return " else ".join(f"{test} {{\n{loop}\n        }}" if test else f"{{\n{loop}\n        }}"
                             for test, loop in loops)

    quarters = ", ".join(f"q{r} = _mm256_castps256_ps128(c{r}0)" for r in range(MR))
    back = "\n".join(f"        c{r}0 = _mm256_insertf128_ps(c{r}0, q{r}, 0);" for r in range(MR))
    return f"""    if (nr <= 4) {{  /* a quarter: the cost of the half tile's 8-wide products, halved */
        __m128 {quarters};
        {by_rows(0)}
{back}
    }} else if (nr <= 8) {{  /* half a tile */
        {by_rows(1)}
    }} else {{
        {by_rows(2)}
    }}"""


def tile_store_kernel(activation: str) -> tuple[str, str]:
    """A tile of mr <= MR rows by nr <= NR of y (row stride ldy) += a b over K (as
    `tile_kernel`; a's rows past mr are the panel's zeros, not stored; b's columns past
    nr are read, and only a quarter or half of a tile computed when nr <= 4 or 8), started
    from zero (`first`) or from y, and stored with the bias of each row and the
    activation when `last` (else as it is: K goes on in another call); a residual `res`
    (row stride ldy; NULL for none) is added after the bias, before the activation. Columns NR / 2..
    of b's row k are at b + boff[k] + `half` (NR / 2 for one row; two output rows of
    NR / 2 positions read in place otherwise). The AVX2 path keeps the tile in registers
    from the first load to the store."""
    from nnefopt.emit_c.kernels.elementwise import UNARY

    name = f"nn_tile_{MR}x{NR}_{activation}"
    pairs = [(r, h) for r in range(MR) for h in range(2)]
    starts = "\n".join(f"        c{r}{h} = mr > {r} ? _mm256_loadu_ps(y + {r} * ldy + {8 * h}) : _mm256_setzero_ps();"
                       for r, h in pairs)
    zeros = "\n".join(f"        c{r}{h} = _mm256_setzero_ps();" for r, h in pairs)
    raw = "\n".join(f"        if (mr > {r})\n            _mm256_storeu_ps(y + {r} * ldy + {8 * h}, c{r}{h});"
                    for r, h in pairs)
    from_part = "\n".join(f"        c{r}{h} = _mm256_loadu_ps(part + {r * NR + 8 * h});" for r, h in pairs)
    to_part = "\n".join(f"        _mm256_storeu_ps(part + {r * NR + 8 * h}, c{r}{h});" for r, h in pairs)
    if activation in VECTOR_EPILOGUES:
        def finals(residual: bool) -> str:
            add = "_mm256_add_ps(c{r}{h}, _mm256_broadcast_ss(bias + {r}))"
            if residual:
                add = "_mm256_add_ps(" + add + ", _mm256_loadu_ps(res + {r} * ldy + {o}))"
            return "\n".join(f"            if (mr > {r}) {{\n                const __m256 v = "
                             + add.format(r=r, h=h, o=8 * h) + ";\n"
                             f"                _mm256_storeu_ps(y + {r} * ldy + {8 * h}, {VECTOR_EPILOGUES[activation]});\n"
                             f"            }}" for r, h in pairs)
        final = f"""        const __m256 lo = _mm256_set1_ps(p0), hi = _mm256_set1_ps(p1);
        (void)lo;
        (void)hi;
        if (res) {{
{finals(True)}
        }} else {{
{finals(False)}
        }}"""
    elif activation in VECTOR_MAPS:
        final = f"""{to_part}
        for (r = 0; r < mr; ++r)
            for (j = 0; j < {NR}; j += 8) {{
                __m256 v = _mm256_add_ps(_mm256_loadu_ps(part + r * {NR} + j), _mm256_broadcast_ss(bias + r));
                if (res)
                    v = _mm256_add_ps(v, _mm256_loadu_ps(res + r * ldy + j));
                {VECTOR_MAPS[activation]}
                _mm256_storeu_ps(y + r * ldy + j, v);
            }}"""
    else:
        final = f"""{raw}
        for (r = 0; r < mr; ++r)
            for (j = 0; j < {NR}; ++j) {{
                const float v = res ? y[r * ldy + j] + bias[r] + res[r * ldy + j] : y[r * ldy + j] + bias[r];
                y[r * ldy + j] = {UNARY[activation]};
            }}"""
    return name, f"""static void {name}(const float *restrict a, const float *restrict b, const long *restrict boff, long K,
    float *restrict y, long ldy, long mr, long nr, long half, int first, int last, const float *restrict bias,
    const float *restrict res, float p0, float p1)
{{
    long k, r, j;
    (void)p0;
    (void)p1;
#ifdef NN_AVX2
    __m256 {", ".join(f"c{r}{h}" for r, h in pairs)};
    float part[{MR} * {NR}];
    if (first) {{
{zeros}
    }} else if (nr == {NR}) {{
{starts}
    }} else {{
        for (r = 0; r < {MR}; ++r)
            for (j = 0; j < {NR}; ++j)
                part[r * {NR} + j] = r < mr && j < nr ? y[r * ldy + j] : 0.0f;
{from_part}
    }}
{_row_count_loops()}
    if (nr == {NR} && last) {{
{final}
    }} else if (nr == {NR}) {{
{raw}
    }} else {{
{to_part}
        for (r = 0; r < mr; ++r)
            for (j = 0; j < nr; ++j) {{
                const float v = part[r * {NR} + j] + bias[r] + (res ? res[r * ldy + j] : 0.0f);
                y[r * ldy + j] = last ? {UNARY[activation]} : part[r * {NR} + j];
            }}
    }}
#else
    float acc[{MR} * {NR}];
    for (r = 0; r < {MR}; ++r)
        for (j = 0; j < {NR}; ++j)
            acc[r * {NR} + j] = first || r >= mr || j >= nr ? 0.0f : y[r * ldy + j];
{_scalar_k_loop('half')}    for (r = 0; r < mr; ++r)
        for (j = 0; j < nr; ++j) {{
            const float v = acc[r * {NR} + j] + bias[r] + (res ? res[r * ldy + j] : 0.0f);
            y[r * ldy + j] = last ? {UNARY[activation]} : acc[r * {NR} + j];
        }}
#endif
}}
"""
