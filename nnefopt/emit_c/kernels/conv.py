"""Convolution kernels (NCHW, grouped, strided, dilated, zero padding) with a fused
epilogue: bias first, then the activation map of `elementwise.UNARY` (`v`, `p0`, `p1`).

Dense convs are a GEMM over columns built per 16 output positions (`conv2d_gemm`);
depthwise convs and deconvs are direct loops: per output plane, each filter tap adds
a shifted input row to an output row (contiguous when the stride is 1, so compilers
vectorize it). An NHWC variant is another kernel of the same signature.
"""

from __future__ import annotations

from nnefopt.emit_c.kernels.elementwise import UNARY


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


def conv2d_gemm_kernel(activation: str, gemm: str) -> tuple[str, str]:
    """conv as GEMM per image and group, filter [O/G, C/G * KH * KW] times the columns,
    built 16 output positions at a time into `col` (K x 16 floats of the arena's
    scratch, which stays in L1 while every block of filter rows reads it): a whole
    im2col matrix would go out to memory and back."""
    name = f"nn_conv2d_gemm_{activation}"
    return name, f"""static void {name}(const float *x, const float *w, const float *bias, float *y, float *col,
    long N, long C, long H, long W, long O, long KH, long KW, long OH, long OW,
    long sh, long sw, long dh, long dw, long ph, long pw, long G, float p0, float p1)
{{
    const long cg = C / G, og = O / G, K = cg * KH * KW, P = OH * OW;
    const int pointwise = KH == 1 && KW == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
    long n, g, p0_, j, c, kh, kw;
    for (n = 0; n < N; ++n)
        for (g = 0; g < G; ++g) {{
            const float *xg = x + (n * C + g * cg) * H * W;
            for (p0_ = 0; p0_ < P; p0_ += 16) {{
                const long nr = P - p0_ < 16 ? P - p0_ : 16;
                long ih0[16], iw0[16];
                for (j = 0; j < 16; ++j) {{
                    const long p = p0_ + (j < nr ? j : 0);
                    ih0[j] = (p / OW) * sh - ph;
                    iw0[j] = (p % OW) * sw - pw;
                }}
                if (pointwise) {{
                    for (c = 0; c < cg; ++c) {{
                        const float *xr = xg + c * H * W + p0_;
                        for (j = 0; j < 16; ++j)
                            col[c * 16 + j] = j < nr ? xr[j] : 0.0f;
                    }}
                }} else {{
                    /* The 16 positions in one output row at stride 1 read 16 consecutive
                       input items per tap: copied whole where the tap stays inside. */
                    const int one_row = sw == 1 && nr == 16 && ih0[0] == ih0[15];
                    float *row = col;
                    for (c = 0; c < cg; ++c) {{
                        const float *xp = xg + c * H * W;
                        for (kh = 0; kh < KH; ++kh)
                            for (kw = 0; kw < KW; ++kw) {{
                                const long ih = ih0[0] + kh * dh, iw = iw0[0] + kw * dw;
                                if (one_row && (ih < 0 || ih >= H)) {{
                                    for (j = 0; j < 16; ++j)
                                        row[j] = 0.0f;
                                }} else if (one_row && iw >= 0 && iw + 16 <= W) {{
                                    const float *xr = xp + ih * W + iw;
                                    for (j = 0; j < 16; ++j)
                                        row[j] = xr[j];
                                }} else {{
                                    for (j = 0; j < 16; ++j) {{
                                        const long ihj = ih0[j] + kh * dh, iwj = iw0[j] + kw * dw;
                                        row[j] = ihj >= 0 && ihj < H && iwj >= 0 && iwj < W ? xp[ihj * W + iwj] : 0.0f;
                                    }}
                                }}
                                row += 16;
                            }}
                    }}
                }}
                {gemm}(w + g * og * K, K, col, bias + g * og, y + (n * O + g * og) * P + p0_, P, og, nr, K, p0, p1);
            }}
        }}
}}
"""
