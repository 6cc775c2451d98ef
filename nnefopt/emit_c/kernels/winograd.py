"""3x3 convolution at stride 1 by Winograd's F(2x2, 3x3): each 2x2 block of outputs from
a 4x4 block of inputs with 16 multiplications per (input, output channel) pair instead
of 36. The filter is transformed at compile time (`filter_panels`: U = G g G^T, 16
matrices [O, C] packed in the GEMM tile's panels); per 16 blocks of outputs, the
inputs are transformed (V = B^T d B, 16 matrices [C, 16]), multiplied by the GEMM
tile (M = U V, 16 products) and transformed back (Y = A^T M A) with the bias, a
residual and the activation. The transforms add and subtract only (the filter's
halves are exact), so the result differs from the direct sum by rounding alone.

The input is copied inside its zero border with each row split in its even columns,
then its odd ones, so that the 4x4 blocks of consecutive output blocks along a row
read consecutive items (the loops over them vectorize on every path).
"""

from __future__ import annotations

import numpy as np

from nnefopt.emit_c.kernels.conv import split_row
from nnefopt.emit_c.kernels.elementwise import UNARY
from nnefopt.emit_c.kernels.gemm import MR, VECTOR_EPILOGUES, row_panels

# G (4x3) of F(2x2, 3x3): U = G g G^T.
_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def applies(c: int, o: int, kh: int, kw: int, stride, dilation, padding, groups: int, oh: int, ow: int) -> bool:
    """Where the kernel pays and applies: a dense 3x3 conv at stride 1 with a border of
    one on every side, input channels enough for the GEMM (16: its K; at 8 the tile's
    own cost ate the gain), 8 outputs and a plane of at least 8x8 outputs (fewer blocks:
    the transforms cost more than they save)."""
    return (kh, kw) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1) and groups == 1 \
        and [tuple(p) for p in padding] == [(1, 1), (1, 1)] and c >= 16 and o >= 8 and oh >= 8 and ow >= 8


def filter_panels(filters: np.ndarray) -> np.ndarray:
    """[O, C, 3, 3] -> the 16 transformed [O, C] matrices, each in the tile's row panels."""
    u = np.einsum("ik,ockl,jl->ijoc", _G, np.asarray(filters, np.float64), _G)  # [4, 4, O, C]
    return np.concatenate([row_panels(u[i, j].astype(np.float32)).reshape(-1) for i in range(4) for j in range(4)])


def scratch_items(c: int, o: int, oh: int, ow: int) -> int:
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    return _tables_items(c) + 16 + 16 * c * 16 + 16 * o * 16 + c * (2 * th + 2) * (2 * tw + 2) + 16


def _tables_items(c: int) -> int:
    return -(-2 * c // 16) * 16


def _input_transform() -> str:
    """C statements: the 16 items of V for block t from rows e0..e3 (even columns at
    e[t], odd at e[t + half]): B^T d B, stored at v[xi * C * 16 + t]."""
    cols = ("t", "t + half", "t + 1", "t + 1 + half")
    lines = [f"const float d{r}{k} = e{r}[{cols[k]}];" for r in range(4) for k in range(4)]
    for k in range(4):  # B^T over the rows
        lines += [f"const float w0{k} = d0{k} - d2{k}, w1{k} = d1{k} + d2{k}, w2{k} = d2{k} - d1{k}, "
                  f"w3{k} = d1{k} - d3{k};"]
    for i in range(4):  # and over the columns
        for j, expr in enumerate((f"w{i}0 - w{i}2", f"w{i}1 + w{i}2", f"w{i}2 - w{i}1", f"w{i}1 - w{i}3")):
            lines.append(f"v[{4 * i + j} * C * 16 + t] = {expr};")
    return "\n".join(" " * 24 + line for line in lines)


def _vector_input_transform(width: int = 8) -> str:
    """The AVX2 form of `_input_transform` for blocks t..t + width - 1 (8, or 4 in SSE registers)."""
    kind, mm = ("__m256", "_mm256") if width == 8 else ("__m128", "_mm")
    cols = ("t", "t + half", "t + 1", "t + 1 + half")
    lines = [f"const {kind} d{r}{k} = {mm}_loadu_ps(e{r} + {cols[k]});" for r in range(4) for k in range(4)]
    for k in range(4):
        lines += [f"const {kind} w0{k} = {mm}_sub_ps(d0{k}, d2{k}), w1{k} = {mm}_add_ps(d1{k}, d2{k}), "
                  f"w2{k} = {mm}_sub_ps(d2{k}, d1{k}), w3{k} = {mm}_sub_ps(d1{k}, d3{k});"]
    for i in range(4):
        for j, (f, a, b) in enumerate((("sub", 0, 2), ("add", 1, 2), ("sub", 2, 1), ("sub", 1, 3))):
            lines.append(f"{mm}_storeu_ps(v + {4 * i + j} * C * 16 + t, {mm}_{f}_ps(w{i}{a}, w{i}{b}));")
    return "\n".join(" " * 24 + line for line in lines)


def _vector_output_transform() -> str:
    """The AVX2 form of `_output_transform` for blocks j..j+7."""
    lines = [f"const __m256 m{xi} = _mm256_loadu_ps(m + {xi} * O * 16 + j);" for xi in range(16)]
    for k in range(4):
        lines.append(f"const __m256 s0{k} = _mm256_add_ps(_mm256_add_ps(m{k}, m{4 + k}), m{8 + k}), "
                     f"s1{k} = _mm256_sub_ps(_mm256_sub_ps(m{4 + k}, m{8 + k}), m{12 + k});")
    for a in range(2):
        lines.append(f"_mm256_storeu_ps(out[{2 * a}] + j, _mm256_add_ps(_mm256_add_ps(s{a}0, s{a}1), s{a}2));")
        lines.append(f"_mm256_storeu_ps(out[{2 * a + 1}] + j, _mm256_sub_ps(_mm256_sub_ps(s{a}1, s{a}2), s{a}3));")
    return "\n".join(" " * 20 + line for line in lines)


def _output_transform() -> str:
    """C statements: the 2x2 outputs of block j from its 16 products m[xi * O * 16 + j]."""
    lines = [f"const float m{xi} = m[{xi} * O * 16 + j];" for xi in range(16)]
    for k in range(4):  # A^T over the rows
        lines.append(f"const float s0{k} = m{k} + m{4 + k} + m{8 + k}, s1{k} = m{4 + k} - m{8 + k} - m{12 + k};")
    for a in range(2):
        lines.append(f"out[{2 * a}][j] = s{a}0 + s{a}1 + s{a}2;")
        lines.append(f"out[{2 * a + 1}][j] = s{a}1 - s{a}2 - s{a}3;")
    return "\n".join(" " * 20 + line for line in lines)


def _vector_epilogue(activation: str) -> str:
    """AVX2: y's row from `row`, eight at a time (bias, residual, activation), where the
    activation has a vector form; the scalar loop after it does the rest."""
    if activation not in VECTOR_EPILOGUES:
        return ""
    return f"""#ifdef NN_AVX2
                        {{
                            const __m256 kb = _mm256_set1_ps(bv), lo = _mm256_set1_ps(p0), hi = _mm256_set1_ps(p1);
                            (void)lo;
                            (void)hi;
                            for (; i + 8 <= cols; i += 8) {{
                                __m256 v = _mm256_add_ps(_mm256_loadu_ps(row + i), kb);
                                if (ro)
                                    v = _mm256_add_ps(v, _mm256_loadu_ps(ro + at + i));
                                _mm256_storeu_ps(yr + i, {VECTOR_EPILOGUES[activation]});
                            }}
                        }}
#endif"""


def winograd_kernel(activation: str, full: str) -> tuple[str, str]:
    """conv 3x3, stride 1, border 1 (`applies`) of the transformed filter `u`
    (`filter_panels`), then the bias, `res` (y's shape; NULL for none) and the
    activation; each product by `full` (gemm.tile_store_kernel, no activation)."""
    name = f"nn_winograd_{activation}"
    return name, f"""static void {name}(const float *x, const float *u, const float *bias, float *y, const float *res,
    float *scratch, long N, long C, long H, long W, long O, long OH, long OW, float p0, float p1)
{{
    const long TH = (OH + 1) / 2, TW = (OW + 1) / 2, T = TH * TW, Ws = 2 * TW + 2, half = TW + 1;
    const long plane = (2 * TH + 2) * Ws, panels = (O + {MR - 1}) / {MR};
    long *coff = (long *)scratch;
    float *zero = scratch + ((2 * C + 15) / 16) * 16;  /* after the offsets (longs) */
    float *vb = zero + 16;
    float *mb = vb + 16 * C * 16;
    float *xs = mb + 16 * O * 16;
    float out[4][16];
    long n, c, o, i, j, t, q, q0, xi, mp, len;
    (void)p0;
    (void)p1;
    for (c = 0; c < C; ++c)
        coff[c] = c * 16;
    for (j = 0; j < 16; ++j)
        zero[j] = 0.0f;
    for (n = 0; n < N; ++n) {{
        memset(xs, 0, (size_t)(C * plane + 16) * sizeof(float));
        if (T % 16)  /* a last group's unused blocks: zeros (the tile reads them, never stores them) */
            memset(vb, 0, (size_t)(16 * C * 16) * sizeof(float));
        for (c = 0; c < C; ++c)
            for (i = 0; i < H; ++i) {{
                float *row = xs + c * plane + (i + 1) * Ws;
                const float *xr = x + ((n * C + c) * H + i) * W;
{split_row("xr", "row", "(row + half)", "W", "1", 16)}
            }}
        for (q0 = 0; q0 < T; q0 += 16) {{
            const long nt = T - q0 < 16 ? T - q0 : 16;
            for (q = q0; q < q0 + nt; q += len) {{  /* the group's blocks, a run along one row at a time */
                const long ty = q / TW, tx0 = q % TW;
                len = TW - tx0 < q0 + nt - q ? TW - tx0 : q0 + nt - q;
                for (c = 0; c < C; ++c) {{
                    const float *restrict e0 = xs + c * plane + 2 * ty * Ws + tx0;
                    const float *restrict e1 = e0 + Ws, *restrict e2 = e1 + Ws, *restrict e3 = e2 + Ws;
                    float *restrict v = vb + c * 16 + (q - q0);
                    t = 0;
#ifdef NN_AVX2
                    for (; t + 8 <= len; t += 8) {{
{_vector_input_transform()}
                    }}
                    for (; t + 4 <= len; t += 4) {{  /* runs of 4 blocks: 8x8 planes */
{_vector_input_transform(4)}
                    }}
#endif
                    for (; t < len; ++t) {{
{_input_transform()}
                    }}
                }}
            }}
            for (xi = 0; xi < 16; ++xi)
                for (mp = 0; mp < panels; ++mp) {{
                    const long m0 = mp * {MR}, mr = O - m0 < {MR} ? O - m0 : {MR};
                    {full}(u + (xi * panels + mp) * C * {MR}, vb + xi * C * 16, coff, C, mb + (xi * O + m0) * 16, 16,
                           mr, nt, 8, 1, 1, zero, NULL, 0.0f, 0.0f);
                }}
            for (o = 0; o < O; ++o) {{
                const float bv = bias[o];
                const float *restrict m = mb + o * 16;
                float *yo = y + (n * O + o) * OH * OW;
                const float *ro = res ? res + (n * O + o) * OH * OW : NULL;
                j = 0;
#ifdef NN_AVX2
                for (; j + 8 <= nt; j += 8) {{
{_vector_output_transform()}
                }}
#endif
                for (; j < nt; ++j) {{
{_output_transform()}
                }}
                for (q = q0; q < q0 + nt; q += len) {{
                    const long ty = q / TW, tx0 = q % TW;
                    long a;
                    len = TW - tx0 < q0 + nt - q ? TW - tx0 : q0 + nt - q;
                    for (a = 0; a < 2 && 2 * ty + a < OH; ++a) {{
                        const long at = (2 * ty + a) * OW + 2 * tx0;
                        const long cols = 2 * len < OW - 2 * tx0 ? 2 * len : OW - 2 * tx0;
                        const float *restrict oa = out[2 * a] + (q - q0), *restrict ob = out[2 * a + 1] + (q - q0);
                        float *restrict yr = yo + at;
                        float row[32];
                        t = 0;
#ifdef NN_AVX2
                        for (; t + 8 <= len; t += 8) {{  /* a0 b0 a1 b1 ... from a0..a7 and b0..b7 */
                            const __m256 va = _mm256_loadu_ps(oa + t), vb_ = _mm256_loadu_ps(ob + t);
                            const __m256 lo = _mm256_unpacklo_ps(va, vb_), hi = _mm256_unpackhi_ps(va, vb_);
                            _mm256_storeu_ps(row + 2 * t, _mm256_permute2f128_ps(lo, hi, 0x20));
                            _mm256_storeu_ps(row + 2 * t + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
                        }}
                        for (; t + 4 <= len; t += 4) {{
                            const __m128 va = _mm_loadu_ps(oa + t), vb_ = _mm_loadu_ps(ob + t);
                            _mm_storeu_ps(row + 2 * t, _mm_unpacklo_ps(va, vb_));
                            _mm_storeu_ps(row + 2 * t + 4, _mm_unpackhi_ps(va, vb_));
                        }}
#endif
                        for (; t < len; ++t) {{
                            row[2 * t] = oa[t];
                            row[2 * t + 1] = ob[t];
                        }}
                        i = 0;
{_vector_epilogue(activation)}
                        if (ro)
                            for (; i < cols; ++i) {{
                                const float v = row[i] + bv + ro[at + i];
                                yr[i] = {UNARY[activation]};
                            }}
                        else
                            for (; i < cols; ++i) {{
                                const float v = row[i] + bv;
                                yr[i] = {UNARY[activation]};
                            }}
                    }}
                }}
            }}
        }}
    }}
}}
"""
