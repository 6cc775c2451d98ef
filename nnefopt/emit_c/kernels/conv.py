"""Convolution kernels (NCHW, grouped, strided, dilated, zero padding) with a fused
epilogue: bias first, then the activation map of `elementwise.UNARY` (`v`, `p0`, `p1`).

Dense convs are a GEMM over columns built per 16 output positions (`conv2d_gemm`);
depthwise convs and deconvs are direct loops: per output plane, each filter tap adds
a shifted input row to an output row (contiguous when the stride is 1, so compilers
vectorize it). An NHWC variant is another kernel of the same signature.
"""

from __future__ import annotations

from nnefopt.emit_c.kernels.elementwise import UNARY
from nnefopt.emit_c.kernels.gemm import VECTOR_EPILOGUES


def conv2d_kernel(activation: str) -> tuple[str, str]:
    name = f"nn_conv2d_{activation}"
    return name, f"""static void {name}(const float *restrict x, const float *restrict w, const float *restrict bias,
    float *restrict y, long N, long C, long H, long W, long O, long KH, long KW, long OH, long OW,
    long sh, long sw, long dh, long dw, long ph, long pw, long G, float p0, float p1)
{{
    const long cg = C / G, og = O / G;
    long n, o, c, kh, kw, oh, ow, i;
    (void)p0;
    (void)p1;
    for (n = 0; n < N; ++n) {{
        for (o = 0; o < O; ++o) {{
            float *yp = y + (n * O + o) * OH * OW;
            const long g = o / og;
            for (i = 0; i < OH * OW; ++i)
                yp[i] = bias[o];
            for (c = 0; c < cg; ++c) {{
                const float *xp = x + (n * C + g * cg + c) * H * W;
                const float *wp = w + (o * cg + c) * KH * KW;
                for (kh = 0; kh < KH; ++kh) {{
                    for (kw = 0; kw < KW; ++kw) {{
                        const float wv = wp[kh * KW + kw];
                        const long shift = kw * dw - pw;
                        const long lo = shift >= 0 ? 0 : (-shift + sw - 1) / sw;
                        const long last = W - 1 - shift;
                        long hi = last < 0 ? 0 : last / sw + 1;
                        if (hi > OW)
                            hi = OW;
                        for (oh = 0; oh < OH; ++oh) {{
                            const long ih = oh * sh - ph + kh * dh;
                            const float *xr;
                            float *yr;
                            if (ih < 0 || ih >= H)
                                continue;
                            xr = xp + ih * W + shift;
                            yr = yp + oh * OW;
                            if (sw == 1)  /* contiguous: the loop compilers vectorize */
                                for (ow = lo; ow < hi; ++ow)
                                    yr[ow] += wv * xr[ow];
                            else
                                for (ow = lo; ow < hi; ++ow)
                                    yr[ow] += wv * xr[ow * sw];
                        }}
                    }}
                }}
            }}
            for (i = 0; i < OH * OW; ++i) {{
                const float v = yp[i];
                yp[i] = {UNARY[activation]};
            }}
        }}
    }}
}}
"""


def split_row(row: str, even: str, odd: str, width: str, border: str, indent: int) -> str:
    """C statements: the items of `row` (`width` of them, after `border` zero columns)
    as the even columns of the bordered row at `even`[j] (column 2j) and the odd ones
    at `odd`[j] (2j + 1), eight of each from two loads and two shuffles on the AVX2
    path. Declares `start`: to be inside a block of its own."""
    text = f"""long start = ({border} + 1) / 2;  /* the first even bordered column 2j inside the row */
if ({border} / 2 < start)  /* an odd column before it */
    {odd}[{border} / 2] = {row}[2 * ({border} / 2) + 1 - {border}];
#ifdef NN_AVX2
if (2 * start - {border} + 16 <= {width}) {{
    /* {row}[m], m = 2j - {border}: 8 even, 8 odd per step, the last step back to the
       last whole 16 (writing some again, the same values) */
    const long stop = ({width} - 16 + {border}) / 2;
    for (;;) {{
        const __m256 a = _mm256_loadu_ps({row} + 2 * start - {border}), b = _mm256_loadu_ps({row} + 2 * start - {border} + 8);
        _mm256_storeu_ps({even} + start, _mm256_castpd_ps(_mm256_permute4x64_pd(
            _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), _MM_SHUFFLE(3, 1, 2, 0))));
        _mm256_storeu_ps({odd} + start, _mm256_castpd_ps(_mm256_permute4x64_pd(
            _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), _MM_SHUFFLE(3, 1, 2, 0))));
        if (start == stop)
            break;
        start = start + 8 <= stop ? start + 8 : stop;
    }}
    start = stop + 8;
}}
#endif
for (j = start; 2 * j - {border} < {width}; ++j)  /* bordered column 2j */
    {even}[j] = {row}[2 * j - {border}];
for (j = start; 2 * j + 1 - {border} < {width}; ++j)  /* and 2j + 1 */
    {odd}[j] = {row}[2 * j + 1 - {border}];"""
    pad = " " * indent
    return "\n".join(pad + line if line and not line.startswith("#") else line for line in text.split("\n"))


def depthwise_kernel(activation: str) -> tuple[str, str]:
    """Depthwise conv (one input channel per group, O / C outputs each): per output
    plane, the input plane inside a zero border (Hs x Ws, copied into the arena's
    scratch when the conv pads, so no read is checked), then each output row in one
    pass. 3x3 is spelled out: the nine taps stay in registers, each tap reads a run of
    consecutive items from its own pointer, and each kernel row is summed apart (three
    chains of three multiply-adds, not one of nine: the chain's latency bounded it).
    At stride 2 the copy splits the plane into its four phases (even or odd row, even
    or odd column; each ceil(Hs / 2) x ceil(Ws / 2)), so each tap reads consecutive
    items of one phase as at stride 1. Short rows (under 16) are one long row over
    the plane (its last columns computed and thrown away as the rows are moved out). Scratch: `depthwise_scratch_items`, when `depthwise_copies`."""
    name = f"nn_depthwise_{activation}"
    weights = "\n".join(f"                const float w{t} = wp[{t}];" for t in range(9))
    sources = "\n".join(f"                const float *restrict x{t} = t{t} + oh * pitch;" for t in range(9))
    scalar_sum = " + ".join(f"({'bv + ' if r == 0 else ''}" + " + ".join(f"w{3 * r + c} * x{3 * r + c}[ow]"
                                                                         for c in range(3)) + ")" for r in range(3))

    def rows(target: str, count: str, epilogue: str) -> str:
        """target[0, count) from the taps' runs x0..x8: eight at a time in registers on
        the AVX2 path when the epilogue has a vector form (the last eight overlapping
        the ones before when count is not a multiple of 8), else the portable loop."""
        vector = ""
        if epilogue in VECTOR_EPILOGUES:
            steps = "\n".join(f"                        s{r} = _mm256_fmadd_ps(k{3 * r + c}, "
                              f"_mm256_loadu_ps(x{3 * r + c} + ow), s{r});" for c in (1, 2) for r in range(3))
            vector = f"""#ifdef NN_AVX2
                    while (ow + 8 <= {count} || (ow < {count} && {count} >= 8)) {{
                        __m256 s0, s1, s2, v;
                        if (ow + 8 > {count})
                            ow = {count} - 8;
                        s0 = _mm256_fmadd_ps(k0, _mm256_loadu_ps(x0 + ow), kb);
                        s1 = _mm256_mul_ps(k3, _mm256_loadu_ps(x3 + ow));
                        s2 = _mm256_mul_ps(k6, _mm256_loadu_ps(x6 + ow));
{steps}
                        v = _mm256_add_ps(_mm256_add_ps(s0, s1), s2);
                        _mm256_storeu_ps({target} + ow, {VECTOR_EPILOGUES[epilogue]});
                        ow += 8;
                    }}
#endif
"""
        return f"""                    ow = 0;
{vector}                    for (; ow < {count}; ++ow) {{
                        const float v = {scalar_sum};
                        {target}[ow] = {UNARY[epilogue]};
                    }}"""

    vector_taps = ""
    if activation in VECTOR_EPILOGUES:
        vector_taps = ("#ifdef NN_AVX2\n                const __m256 "
                       + ", ".join(f"k{t} = _mm256_set1_ps(w{t})" for t in range(9))
                       + ", kb = _mm256_set1_ps(bv);\n"
                       "                const __m256 lo = _mm256_set1_ps(p0), hi = _mm256_set1_ps(p1);\n"
                       "                (void)lo;\n                (void)hi;\n#endif\n")
    # tap (r, c) reads from t<3r+c>, where output (0, 0) finds it
    def phase(r: int, c: int) -> str:
        terms = [f"{2 * (r & 1) + (c & 1)} * phase_rows" if r & 1 or c & 1 else "", "1" if r >> 1 else ""]
        row = " + ".join(t for t in terms if t)
        return " + ".join(t for t in ("sp", f"({row}) * half" if row else "", "1" if c >> 1 else "") if t)

    def plain(r: int, c: int) -> str:
        return " + ".join(t for t in ("sp", {0: "", 1: "dh * Ws", 2: "2 * dh * Ws"}[r], str(c) if c else "") if t)

    pointers = ",\n                    ".join(f"*restrict t{3 * r + c} = split ? {phase(r, c)} : {plain(r, c)}"
                                             for r in range(3) for c in range(3))

    return name, f"""static void {name}(const float *x, const float *w, const float *bias, float *restrict y,
    float *restrict scratch, long N, long C, long H, long W, long O, long KH, long KW, long OH, long OW,
    long sh, long sw, long dh, long dw, long ph, long pw, long G, float p0, float p1, long Hs, long Ws)
{{
    const long mult = O / C, half = (Ws + 1) / 2, phase_rows = (Hs + 1) / 2;
    const int fast = KH == 3 && KW == 3 && dw == 1 && (sw == 1 || (sw == 2 && sh == 2 && dh == 1));
    const int split = fast && sw == 2;  /* the plane copied as its four phases */
    const int copied = Hs != H || Ws != W || split;
    /* an output row's items, one tap's run to the next row's: */
    const long pitch = split ? half : sh * Ws;
    long n, o, i, j, oh, ow, kh, kw;
    (void)G;
    (void)p0;
    (void)p1;
    if (copied)  /* the border stays zero: every plane writes the same items */
        memset(scratch, 0, (size_t)((split ? 4 * phase_rows * half : Hs * Ws) + 16) * sizeof(float));
    for (n = 0; n < N; ++n)
        for (o = 0; o < O; ++o) {{
            const float *xp = x + (n * C + o / mult) * H * W;
            const float *restrict wp = w + o * KH * KW;
            const float *sp = copied ? scratch : xp;
            const float bv = bias[o];
            float *yp = y + (n * O + o) * OH * OW;
            if (split)
                for (i = 0; i < H; ++i) {{
                    /* bordered row p = i + ph: row p / 2 of the phases of its parity */
                    float *even = scratch + (2 * ((i + ph) & 1) * phase_rows + (i + ph) / 2) * half;
                    float *odd = even + phase_rows * half;
                    const float *xr = xp + i * W;
{split_row('xr', 'even', 'odd', 'W', 'pw', 20)}
                }}
            else if (copied && W < 16)  /* short rows: a call to memcpy each cost more than the copy */
                for (i = 0; i < H; ++i)
                    for (j = 0; j < W; ++j)
                        scratch[(i + ph) * Ws + pw + j] = xp[i * W + j];
            else if (copied)
                for (i = 0; i < H; ++i)
                    memcpy(scratch + (i + ph) * Ws + pw, xp + i * W, (size_t)W * sizeof(float));
            if (fast) {{
                const float {pointers};
{weights}
{vector_taps}                if (copied && (split || sh == 1) && OW < 16) {{
                    /* Short rows: the plane as one row of OH rows `pitch` apart, read past
                       its last row's end into the phases' (or the plane's) zero tail. */
                    const long L = OH * pitch;
                    float *restrict yr = scratch + (split ? 4 * phase_rows * half : Hs * Ws) + 16;
                    oh = 0;
                    {{
{sources}
{rows("yr", "L", activation)}
                    }}
                    for (oh = 0; oh < OH; ++oh)
                        for (ow = 0; ow < OW; ++ow)
                            yp[oh * OW + ow] = yr[oh * pitch + ow];
                    continue;
                }}
                for (oh = 0; oh < OH; ++oh) {{
{sources}
                    float *restrict yr = yp + oh * OW;
{rows("yr", "OW", activation)}
                }}
                continue;
            }}
            for (oh = 0; oh < OH; ++oh) {{
                float *restrict yr = yp + oh * OW;
                for (ow = 0; ow < OW; ++ow)
                    yr[ow] = bv;
                for (kh = 0; kh < KH; ++kh)
                    for (kw = 0; kw < KW; ++kw) {{
                        const float wv = wp[kh * KW + kw];
                        const float *restrict xr = sp + (oh * sh + kh * dh) * Ws + kw * dw;
                        for (ow = 0; ow < OW; ++ow)
                            yr[ow] += wv * xr[ow * sw];
                    }}
                for (ow = 0; ow < OW; ++ow) {{
                    const float v = yr[ow];
                    yr[ow] = {UNARY[activation]};
                }}
            }}
        }}
}}
"""


def depthwise_copies(h: int, w: int, hs: int, ws: int, kh: int, kw: int, stride, dilation) -> bool:
    """Whether `depthwise_kernel` copies each plane into its scratch (a border, or the
    phases of 3x3 at stride 2): the kernel's own test, for the lowering."""
    split = kh == 3 and kw == 3 and dilation[1] == 1 and tuple(stride) == (2, 2) and dilation[0] == 1
    return (hs, ws) != (h, w) or split


def depthwise_scratch_items(Hs: int, Ws: int, OH: int) -> int:
    """The copied plane (or its four phases) with a zero tail, and the short-row output."""
    phases = 4 * ((Hs + 1) // 2) * ((Ws + 1) // 2)
    return max(Hs * Ws, phases) + 16 + OH * Ws


def deconv2d_kernel(activation: str) -> tuple[str, str]:
    """Transposed conv: input item (ih, iw) adds w * x to output (ih*sh - ph + kh*dh, ...).
    The filter is NNEF's [C, O / G, KH, KW]."""
    name = f"nn_deconv2d_{activation}"
    return name, f"""static void {name}(const float *x, const float *w, const float *bias, float *y,
    long N, long C, long H, long W, long O, long KH, long KW, long OH, long OW,
    long sh, long sw, long dh, long dw, long ph, long pw, long G, float p0, float p1)
{{
    const long cg = C / G, og = O / G;
    long n, o, c, kh, kw, ih, iw, i;
    (void)p0;
    (void)p1;
    for (n = 0; n < N; ++n) {{
        for (o = 0; o < O; ++o) {{
            float *yp = y + (n * O + o) * OH * OW;
            for (i = 0; i < OH * OW; ++i)
                yp[i] = bias[o];
        }}
        for (c = 0; c < C; ++c) {{
            const float *xp = x + (n * C + c) * H * W;
            const long g = c / cg;
            for (o = 0; o < og; ++o) {{
                float *yp = y + (n * O + g * og + o) * OH * OW;
                const float *wp = w + (c * og + o) * KH * KW;
                for (kh = 0; kh < KH; ++kh) {{
                    for (kw = 0; kw < KW; ++kw) {{
                        const float wv = wp[kh * KW + kw];
                        for (ih = 0; ih < H; ++ih) {{
                            const long oh = ih * sh - ph + kh * dh;
                            if (oh < 0 || oh >= OH)
                                continue;
                            for (iw = 0; iw < W; ++iw) {{
                                const long ow = iw * sw - pw + kw * dw;
                                if (ow >= 0 && ow < OW)
                                    yp[oh * OW + ow] += wv * xp[ih * W + iw];
                            }}
                        }}
                    }}
                }}
            }}
        }}
        for (o = 0; o < O; ++o) {{
            float *yp = y + (n * O + o) * OH * OW;
            for (i = 0; i < OH * OW; ++i) {{
                const float v = yp[i];
                yp[i] = {UNARY[activation]};
            }}
        }}
    }}
}}
"""


def conv_splits(stride, kw: int) -> bool:
    """Whether `conv2d_gemm_kernel` copies the input with its rows split in even and odd
    columns (then always copied): its own test, for the lowering."""
    return stride[1] == 2 and kw > 1


def conv_scratch_items(C: int, K: int, KC: int, NB: int, padded_items: int) -> int:
    """The floats of arena scratch `conv2d_gemm` wants: its two offset tables (longs,
    counted as two floats each), NB column blocks of KC x 16, the zero-padded input."""
    return _tables_items(K, KC) + NB * KC * 16 + padded_items


def _tables_items(K: int, KC: int) -> int:
    return -(-2 * (K + KC) // 16) * 16


def conv2d_gemm_kernel(activation: str, full: str) -> tuple[str, str]:
    """conv as GEMM per image and group: the filter [O/G, K = C/G * KH * KW], packed at
    compile time in panels of 6 rows (`gemm.row_panels`), times the K x P matrix of the
    input items each output position reads, 6 channels by 16 positions per tile. A zero
    border is copied once around the input (Hs x Ws, in the arena's scratch) when the
    conv pads, so no read is checked. Sixteen positions in one output row at stride 1
    read sixteen consecutive items per (channel, tap): the tile reads them in place
    through a table of K offsets (the indirection), and so do two rows of 8 (the tile
    reads the second 8 items a row further); other blocks are gathered into
    columns. At stride 2 along the rows (wider than one column: `conv_splits`) the copy
    lays each row out as its even columns, then its odd ones, so that sixteen positions
    of a row read sixteen consecutive items there too. K is cut in blocks of KC and NB
    position blocks share each block of the filter, so what a tile reads stays in cache
    (the blocking is the lowering's choice).
    Each tile is `full` (gemm.tile_store_kernel: bias, the residual `res` of y's shape
    when not NULL, and activation in registers)."""
    name = f"nn_conv2d_gemm_{activation}"
    return name, f"""static void {name}(const float *x, const float *w, const float *bias, float *y, const float *res,
    float *scratch, long N, long C, long H, long W, long O, long KH, long KW, long OH, long OW,
    long sh, long sw, long dh, long dw, long ph, long pw, long G, float p0, float p1,
    long Hs, long Ws, long KC, long NB)
{{
    const long cg = C / G, og = O / G, K = cg * KH * KW, P = OH * OW, panels = (og + 5) / 6;
    const long blocks = (P + 15) / 16, plane = Hs * Ws, half = (Ws + 1) / 2;
    const int split = sw == 2 && KW > 1;  /* rows copied as their even columns, then their odd ones */
    const int padded = Hs != H || Ws != W || split;
    const long step = split ? 1 : sw;  /* the items between two positions of a row */
    const int fetch = cg * plane > 64 * 1024;  /* floats of a group's input: over 256 KiB */
    long *boff = (long *)scratch;
    long *coff = boff + K;
    float *col = scratch + ((2 * (K + KC) + 15) / 16) * 16;
    float *xpad = col + NB * KC * 16;
    long n, g, c, kh, kw, k, b0, kb, mp, i, j;
    (void)p0;
    (void)p1;
    (void)fetch;
    for (c = 0, k = 0; c < cg; ++c)
        for (kh = 0; kh < KH; ++kh)
            for (kw = 0; kw < KW; ++kw)
                boff[k++] = c * plane + kh * dh * Ws + (split ? (kw * dw) % 2 * half + kw * dw / 2 : kw * dw);
    for (k = 0; k < KC; ++k)
        coff[k] = k * 16;
    for (n = 0; n < N; ++n) {{
        const float *src = x + n * C * H * W;
        if (padded) {{
            memset(xpad, 0, (size_t)(C * plane) * sizeof(float));
            for (c = 0; c < C; ++c)
                for (i = 0; i < H; ++i) {{
                    float *row = xpad + c * plane + (i + ph) * Ws;
                    const float *xr = src + (c * H + i) * W;
                    if (split) {{
{split_row("xr", "row", "(row + half)", "W", "pw", 24)}
                    }} else
                        memcpy(row + pw, xr, (size_t)W * sizeof(float));
                }}
            src = xpad;
        }}
        for (g = 0; g < G; ++g) {{
            const float *sg = src + g * cg * plane;
            const float *wg = w + g * panels * K * 6;
            for (b0 = 0; b0 < blocks; b0 += NB) {{
                const long nb = blocks - b0 < NB ? blocks - b0 : NB;
                for (kb = 0; kb < K; kb += KC) {{
                    const long kc = K - kb < KC ? K - kb : KC;
                    const int last = kb + kc == K;
                    const float *bs[64];
                    const long *os[64];
                    long hs[64];  /* where the block's second 8 positions read, from its first */
                    for (i = 0; i < nb; ++i) {{
                        const long q0 = (b0 + i) * 16, nr = P - q0 < 16 ? P - q0 : 16;
                        const long oh0 = q0 / OW, ow0 = q0 % OW;
                        hs[i] = 8;
                        if (nr == 16 && step == 1 && OW == 8) {{
                            /* in place: two output rows of 8, each 8 consecutive items */
                            bs[i] = sg + oh0 * sh * Ws;
                            os[i] = boff + kb;
                            hs[i] = sh * Ws;
                        }} else if (nr == 16 && step == 1 && (ow0 + 16 <= OW || (Ws == OW && sh == 1))) {{
                            bs[i] = sg + oh0 * sh * Ws + ow0;  /* in place: 16 consecutive items */
                            os[i] = boff + kb;
#ifdef NN_AVX2
                            /* the next block's items, in the cache by the time the panels
                               are done with this one (dozens of rows apart, too many
                               streams for the hardware's prefetcher), when the input is
                               over the L2 cache (else the prefetches cost, not save) */
                            for (k = 0; fetch && k < kc; ++k) {{
                                _mm_prefetch((const char *)(bs[i] + boff[kb + k] + 16), _MM_HINT_T0);
                                _mm_prefetch((const char *)(bs[i] + boff[kb + k] + 31), _MM_HINT_T0);
                            }}
#endif
                        }} else {{
                            long pos[16];
                            float *cb = col + i * KC * 16;
                            for (j = 0; j < 16; ++j) {{
                                const long q = q0 + (j < nr ? j : 0);
                                pos[j] = (q / OW) * sh * Ws + (q % OW) * step;
                            }}
                            for (k = 0; k < kc; ++k) {{
                                const float *sk = sg + boff[kb + k];
                                for (j = 0; j < 16; ++j)
                                    cb[k * 16 + j] = sk[pos[j]];
                            }}
                            bs[i] = cb;
                            os[i] = coff;
                        }}
                    }}
                    for (mp = 0; mp < panels; ++mp) {{
                        const long m0 = mp * 6, mr = og - m0 < 6 ? og - m0 : 6;
                        const float *a = wg + mp * K * 6 + kb * 6;
                        for (i = 0; i < nb; ++i) {{
                            const long q0 = (b0 + i) * 16, nr = P - q0 < 16 ? P - q0 : 16;
                            float *yt = y + (n * O + g * og + m0) * P + q0;
                            const float *rt = res ? res + (n * O + g * og + m0) * P + q0 : NULL;
                            {full}(a, bs[i], os[i], kc, yt, P, mr, nr, hs[i], kb == 0, last, bias + g * og + m0, rt,
                                   p0, p1);
                        }}
                    }}
                }}
            }}
        }}
    }}
}}
"""


def deconv2d_gemm_kernel(activation: str, tile: str) -> tuple[str, str]:
    """Transposed conv as GEMM per image and group: rows (o, kh, kw) of the filter
    (packed at compile time in panels of 6, K = C / G) times the input's positions, 16
    at a time (read in place, the last partial block gathered with its tail repeated),
    each product added where it lands in the output (bias first, the activation after:
    windows that overlap add up)."""
    name = f"nn_deconv2d_gemm_{activation}"
    return name, f"""static void {name}(const float *x, const float *w, const float *bias, float *y, float *scratch,
    long N, long C, long H, long W, long O, long KH, long KW, long OH, long OW,
    long sh, long sw, long dh, long dw, long ph, long pw, long G, float p0, float p1)
{{
    const long cg = C / G, og = O / G, K = cg, M = og * KH * KW, P = H * W, panels = (M + 5) / 6;
    long *boff = (long *)scratch;
    long *coff = boff + K;
    float *col = scratch + ((4 * K + 15) / 16) * 16;
    float acc[6 * 16];
    long n, g, o, c, q0, mp, i, j, r;
    (void)p0;
    (void)p1;
    for (c = 0; c < K; ++c) {{
        boff[c] = c * P;
        coff[c] = c * 16;
    }}
    for (n = 0; n < N; ++n) {{
        for (o = 0; o < O; ++o)
            for (i = 0; i < OH * OW; ++i)
                y[(n * O + o) * OH * OW + i] = bias[o];
        for (g = 0; g < G; ++g) {{
            const float *xg = x + (n * C + g * cg) * P;
            const float *wg = w + g * panels * K * 6;
            for (q0 = 0; q0 < P; q0 += 16) {{
                const long nr = P - q0 < 16 ? P - q0 : 16;
                const float *b = xg + q0;
                const long *offsets = boff;
                long ih[16], iw[16];
                for (j = 0; j < 16; ++j) {{
                    ih[j] = (q0 + j) / W * sh - ph;
                    iw[j] = (q0 + j) % W * sw - pw;
                }}
                if (nr < 16) {{
                    for (c = 0; c < K; ++c)
                        for (j = 0; j < 16; ++j)
                            col[c * 16 + j] = xg[c * P + q0 + (j < nr ? j : 0)];
                    b = col;
                    offsets = coff;
                }}
                for (mp = 0; mp < panels; ++mp) {{
                    for (j = 0; j < 6 * 16; ++j)
                        acc[j] = 0.0f;
                    {tile}(wg + mp * K * 6, b, offsets, K, acc);
                    for (r = 0; r < 6 && mp * 6 + r < M; ++r) {{
                        const long m = mp * 6 + r, oc = g * og + m / (KH * KW);
                        const long kh = m / KW % KH, kw = m % KW;
                        float *yp = y + (n * O + oc) * OH * OW;
                        for (j = 0; j < nr; ++j) {{
                            const long oh = ih[j] + kh * dh, ow = iw[j] + kw * dw;
                            if (oh >= 0 && oh < OH && ow >= 0 && ow < OW)
                                yp[oh * OW + ow] += acc[r * 16 + j];
                        }}
                    }}
                }}
            }}
        }}
        for (o = 0; o < O; ++o)
            for (i = 0; i < OH * OW; ++i) {{
                const float v = y[(n * O + o) * OH * OW + i];
                y[(n * O + o) * OH * OW + i] = {UNARY[activation]};
            }}
    }}
}}
"""


def deconv_scratch_items(K: int) -> int:
    return -(-4 * K // 16) * 16 + K * 16
