"""The C kernels of the op table: each entry's "c_kernel" slot, a `CKernel` naming how
its call is formed from the operation's attributes and shapes.

Element-wise maps, activations and their fused `conv_<act>` / `linear_<act>` come from
the expressions in `kernels.elementwise`; adding an activation there gives it every
form. Everything is NCHW (the graph's own layout) and float32.
"""

from __future__ import annotations

import math

import numpy as np
from xdsl.ir import Operation

from nnefopt.broadcasting import aligned_shape
from nnefopt.emit_c.kernels import conv, elementwise, gemm, movement, window, winograd
from nnefopt.emit_c.kernels.common import MAX_RANK
from nnefopt.emit_c.lower import CKernel, Longs, Lowering, c_kernel_of, items, shape_of
from nnefopt.frontend.fused import BASES, fused_name
from nnefopt.ops import op_table, register_slot
from nnefopt.traits import TensorSource


def _dense_strides(shape) -> list[int]:
    strides, step = [], 1
    for extent in reversed(shape):
        strides.append(step)
        step *= extent
    return strides[::-1]


def _activation_parameters(op: Operation, ctx: Lowering, activation: str) -> tuple[float, float]:
    values = [ctx.scalar(op, name) for name in elementwise.PARAMETERS.get(activation, ())]
    return tuple((values + [0.0, 0.0])[:2])


# ---- element-wise -----------------------------------------------------------------------


def _unary(activation: str):
    def lower(op: Operation, ctx: Lowering) -> None:
        x, y = op.operands[0], op.results[0]
        p0, p1 = _activation_parameters(op, ctx, activation)
        ctx.call(elementwise.unary_kernel(activation), ctx.read(x), ctx.write(y), items(shape_of(y)), p0, p1)

    return lower


def _broadcast_strides(shape, result) -> list[int]:
    shape = aligned_shape(shape, len(result))
    dense = _dense_strides(shape)
    return [0 if extent == 1 and want != 1 else stride for extent, want, stride in zip(shape, result, dense)]


def _binary(name: str):
    def lower(op: Operation, ctx: Lowering) -> None:
        a, b = op.operands[:2]
        y = op.results[0]
        zip_into(ctx, name, ctx.read(a), shape_of(a), ctx.read(b), shape_of(b), ctx.write(y), shape_of(y))

    return lower


def zip_into(ctx: Lowering, name: str, a, a_shape, b, b_shape, y, y_shape) -> None:
    """y = a NAME b, broadcast (NNEF aligns shapes from the left)."""
    result = tuple(y_shape) or (1,)
    if len(result) > MAX_RANK:
        ctx.refuse(f"rank {len(result)} is above the kernels' {MAX_RANK}")
    strides = [_broadcast_strides(s or (1,), result) for s in (a_shape, b_shape)]
    if all(items(s) in (1, items(result)) for s in (a_shape, b_shape)):  # flat: the common case
        strides = [[0 if items(s) == 1 and items(result) > 1 else 1] for s in (a_shape, b_shape)]
        result = (items(result),)
    ctx.call(elementwise.binary_kernel(name), a, Longs(tuple(strides[0])), b, Longs(tuple(strides[1])), y,
             Longs(tuple(result)), len(result))


# ---- conv, deconv, linear, matmul -------------------------------------------------------


def _bias(op: Operation, ctx: Lowering, channels: int):
    bias = ctx.operand(op, "bias")
    data = np.zeros(1, np.float32) if bias is None else ctx.known(bias)
    if data is None:
        ctx.refuse("the bias must be known to be compiled in")
    data = np.asarray(data, np.float32).reshape(-1)
    if data.size == 1:
        data = np.full(channels, data[0], np.float32)
    if data.size != channels:
        ctx.refuse(f"a bias of {data.size} items for {channels} channels")
    if bias is not None and data.size == items(shape_of(bias)) and bias.owner.has_trait(TensorSource) \
            and shape_of(bias) in ((channels,), (1, channels)):
        return ctx.read(bias)
    return ctx.pack(data, f"{ctx.names.get(op.results[0], 'op')}_bias")


def _window_geometry(ctx: Lowering, op: Operation, extents, size, counts, transposed: bool):
    stride = list(ctx.attr(op, "stride")) or [1] * len(extents)
    dilation = list(ctx.attr(op, "dilation")) or [1] * len(extents)
    padding = [tuple(p) for p in ctx.attr(op, "padding")]
    if not padding:  # NNEF's automatic padding: the smaller half in front
        inner, outer = (counts, extents) if transposed else (extents, counts)
        totals = [max((m - 1) * s + (k - 1) * d + 1 - n, 0)
                  for n, k, s, d, m in zip(inner, size, stride, dilation, outer)]
        padding = [(t // 2, t - t // 2) for t in totals]
    return stride, dilation, padding


def _as_2d(shape):
    return shape if len(shape) == 4 else (shape[0], shape[1], 1, shape[2])


def _conv(own_activation: str, transposed: bool = False):
    def lower(op: Operation, ctx: Lowering) -> None:
        activation = own_activation
        x, w, y = ctx.operand(op, "input"), ctx.operand(op, "filter"), op.results[0]
        xs, ws, ys = shape_of(x), shape_of(w), shape_of(y)
        if len(xs) not in (3, 4):
            ctx.refuse(f"only 1-D and 2-D convolutions have a C kernel (input of rank {len(xs)})")
        if ctx.attr(op, "border") not in ("constant", "ignore"):
            ctx.refuse(f"border '{ctx.attr(op, 'border')}' has no C kernel")
        filter_data = ctx.known(w)
        if filter_data is None:
            ctx.refuse("the filter must be known to be compiled in")
        groups = ctx.attr(op, "groups") or xs[1]
        spatial, counts, size = xs[2:], ys[2:], ws[2:]
        stride, dilation, padding = _window_geometry(ctx, op, spatial, size, counts, transposed)
        if len(xs) == 3:
            stride, dilation, padding = [1, *stride], [1, *dilation], [(0, 0), *padding]
        n, c, h, wd = _as_2d(xs)
        _, o, oh, ow = _as_2d(ys)
        kh, kw = (1, size[0]) if len(size) == 1 else size
        p0, p1 = _activation_parameters(op, ctx, activation)
        fused = ctx.fusion(op)  # a residual add (and activation) in the GEMM's epilogue
        residual = None
        if fused is not None:
            residual = ctx.read(fused.residual)
            if fused.activation is not None:
                activation = c_kernel_of(fused.activation).activation
                p0, p1 = _activation_parameters(fused.activation, ctx, activation)
        geometry = (n, c, h, wd, o, kh, kw, oh, ow, stride[0], stride[1], dilation[0], dilation[1],
                    padding[0][0], padding[1][0], groups, p0, p1)
        cropping = min(p for pair in padding for p in pair) < 0
        if c // groups == 1 and groups > 1 and not transposed and not cropping:
            hs, ws = _bordered(h, wd, oh, ow, kh, kw, stride, dilation, padding)
            copies = conv.depthwise_copies(h, wd, hs, ws, kh, kw, stride, dilation)
            scratch = ctx.scratch(conv.depthwise_scratch_items(hs, ws, oh) if copies else 1)
            ctx.call(conv.depthwise_kernel(activation), ctx.read(x), ctx.read(w), _bias(op, ctx, o), ctx.write(y),
                     scratch, *geometry, hs, ws)
            return
        if transposed and not cropping:
            _deconv_gemm(ctx, activation, filter_data, (ctx.read(x), None, _bias(op, ctx, o), ctx.write(y)),
                         geometry, c, o, kh, kw, groups)
            return
        direct = transposed or cropping
        # The filter as NNEF has it only for the direct loops: the GEMM reads a packed copy.
        operands = (ctx.read(x), ctx.read(w) if direct else None, _bias(op, ctx, o), ctx.write(y))
        if direct:  # deconv, depthwise, a cropping conv: direct loops
            make = conv.deconv2d_kernel if transposed else conv.conv2d_kernel
            ctx.call(make(activation), *operands, *geometry)
            return
        _conv_gemm(ctx, activation, filter_data, operands, geometry, (n, c, h, wd, o, kh, kw, oh, ow), stride,
                   dilation, padding, groups, residual)

    return lower


def _conv_takes_residual(op: Operation, ctx: Lowering) -> bool:
    """Whether `_conv` lowers `op` to the GEMM kernel (whose tile can add a residual):
    a dense or grouped conv that does not crop, not depthwise."""
    x, w = ctx.operand(op, "input"), ctx.operand(op, "filter")
    xs, ws, ys = shape_of(x), shape_of(w), shape_of(op.results[0])
    if len(xs) not in (3, 4) or ctx.known(w) is None:
        return False
    groups = ctx.attr(op, "groups") or xs[1]
    _, _, padding = _window_geometry(ctx, op, xs[2:], ws[2:], ys[2:], False)
    cropping = min(p for pair in padding for p in pair) < 0
    return not cropping and not (xs[1] // groups == 1 and groups > 1)


def _conv_blocking(k: int, rows: int, positions: int) -> tuple[int, int]:
    """(KC, NB): the filter's K cut in blocks of KC when long, and NB blocks of 16
    positions sharing each block of a filter too large for the second-level cache, so
    that it streams from memory once per NB blocks while their columns (NB x KC x 16
    floats) stay in a 256 KiB share of that cache. A filter that fits is read from
    there anyway: one block, the least scratch; unless the output is well over that
    cache and K short: then each panel's rows are written NB x 16 items at a time
    (the columns in 16 KiB of the first-level cache), not 16 in each of the
    output's rows in turn (MobileNetV2's 112x112 and 56x56 expansions, K = 16, 24)."""
    kc = k if k <= 1024 else 512
    if rows * k * 4 <= 256 * 1024:
        if rows * positions * 4 > 1024 * 1024:
            return kc, max(1, min(16, (16 * 1024) // (kc * 16 * 4)))
        return kc, 1
    return kc, max(1, min(8, (256 * 1024) // (kc * 16 * 4)))


def _bordered(h, wd, oh, ow, kh, kw, stride, dilation, padding) -> tuple[int, int]:
    """Hs x Ws: the input with its zero border, as far as the windows reach."""
    hs = padding[0][0] + max(h, (oh - 1) * stride[0] + (kh - 1) * dilation[0] + 1 - padding[0][0])
    ws = padding[1][0] + max(wd, (ow - 1) * stride[1] + (kw - 1) * dilation[1] + 1 - padding[1][0])
    return hs, ws


def _conv_gemm(ctx: Lowering, activation, filter_data, operands, geometry, dims, stride, dilation, padding, groups,
               residual=None):
    n, c, h, wd, o, kh, kw, oh, ow = dims
    x, _, bias, y = operands
    if winograd.applies(c, o, kh, kw, stride, dilation, padding, groups, oh, ow) \
            and activation in gemm.VECTOR_EPILOGUES:
        scratch = ctx.scratch(winograd.scratch_items(c, o, oh, ow))
        full = ctx.use(gemm.tile_store_kernel("copy"))
        panels = winograd.filter_panels(np.asarray(filter_data, np.float32).reshape(o, c, 3, 3))
        ctx.call(winograd.winograd_kernel(activation, full), x,
                 ctx.pack(panels, f"{ctx.names.get(ctx.current.results[0], 'conv')}_winograd"), bias, y, residual,
                 scratch, n, c, h, wd, o, oh, ow, geometry[16], geometry[17])
        return
    og, k = o // groups, c // groups * kh * kw
    hs, ws = _bordered(h, wd, oh, ow, kh, kw, stride, dilation, padding)
    padded_items = c * hs * ws if (hs, ws) != (h, wd) or conv.conv_splits(stride, kw) else 0
    kc, nb = _conv_blocking(k, og, oh * ow)
    filters = np.asarray(filter_data, np.float32).reshape(groups, og, k)
    packed = np.concatenate([gemm.row_panels(f).reshape(-1) for f in filters])
    scratch = ctx.scratch(conv.conv_scratch_items(c, k, kc, nb, padded_items))
    full = ctx.use(gemm.tile_store_kernel(activation))
    ctx.call(conv.conv2d_gemm_kernel(activation, full), x,
             ctx.pack(packed, f"{ctx.names.get(ctx.current.results[0], 'conv')}_panels"), bias, y, residual, scratch,
             *geometry, hs, ws, kc, nb)


def _deconv_gemm(ctx: Lowering, activation, filter_data, operands, geometry, c, o, kh, kw, groups):
    cg, og = c // groups, o // groups
    # NNEF's deconv filter [C, O / G, KH, KW]: per group, rows (o, kh, kw) over its C / G channels.
    filters = np.asarray(filter_data, np.float32).reshape(groups, cg, og * kh * kw).transpose(0, 2, 1)
    packed = np.concatenate([gemm.row_panels(f).reshape(-1) for f in filters])
    x, _, bias, y = operands
    scratch = ctx.scratch(conv.deconv_scratch_items(cg))
    tile = ctx.use(gemm.tile_kernel())
    ctx.call(conv.deconv2d_gemm_kernel(activation, tile), x,
             ctx.pack(packed, f"{ctx.names.get(ctx.current.results[0], 'deconv')}_panels"), bias, y, scratch, *geometry)


def _linear(activation: str):
    def lower(op: Operation, ctx: Lowering) -> None:
        x, w, y = ctx.operand(op, "input"), ctx.operand(op, "filter"), op.results[0]
        xs, ws = shape_of(x), shape_of(w)
        if len(ws) > 2 and items(ws[:-2]) == 1:  # torch-to-nnef's batched linear: one filter for all
            ws = ws[-2:]
        if len(ws) != 2 or not xs or xs[-1] != ws[1]:
            ctx.refuse("linear of a [..., K] input by a [N, K] filter only")
        p0, p1 = _activation_parameters(op, ctx, activation)
        filter_data = ctx.known(w)
        if filter_data is None:
            ctx.refuse("the filter must be known to be compiled in")
        # Packed at compile time as the GEMM's b: [K, N] in panels of its register block.
        transposed = ctx.pack(gemm.panels(np.asarray(filter_data, np.float32).reshape(ws).T),
                              f"{ctx.names.get(w, 'w')}_t")
        n_out, k = ws
        ctx.call(gemm.gemm_kernel(activation, "n"), ctx.read(x), k, transposed, _bias(op, ctx, n_out),
                 ctx.write(y), n_out, items(xs[:-1]), n_out, k, p0, p1)

    return lower


def _matmul(op: Operation, ctx: Lowering) -> None:
    a, b, y = ctx.operand(op, "A"), ctx.operand(op, "B"), op.results[0]
    ys = shape_of(y)
    rank = len(ys)
    ash, bsh = aligned_shape(shape_of(a), rank), aligned_shape(shape_of(b), rank)
    m, n = ys[-2:]
    ta, tb = ctx.attr(op, "transposeA"), ctx.attr(op, "transposeB")
    k = ash[-2] if ta else ash[-1]
    batch = items(ys[:-2])
    strides = []
    for shape, transposed in ((ash, ta), (bsh, tb)):
        rows, cols = shape[-2:]
        own = items(shape[:-2])
        if own not in (1, batch) or (own == batch and tuple(shape[:-2]) != tuple(ys[:-2])):
            ctx.refuse("matmul broadcasting over some batch axes only has no C kernel")
        batch_stride = 0 if own == 1 else rows * cols
        row, col = (1, cols) if transposed else (cols, 1)
        strides.append((batch_stride, row, col))
    ctx.call(gemm.matmul_kernel(), ctx.read(a), ctx.read(b), ctx.write(y), batch, m, n, k, *strides[0], *strides[1])


# ---- windows, axes ------------------------------------------------------------------------


def _pool(mode: str):
    def lower(op: Operation, ctx: Lowering) -> None:
        x, y = op.operands[0], op.results[0]
        xs, ys = shape_of(x), shape_of(y)
        if len(xs) > 4:
            ctx.refuse("pooling over more than 4 axes has no C kernel")
        border = ctx.attr(op, "border")
        if border not in ("constant", "ignore"):
            ctx.refuse(f"border '{border}' has no C kernel")
        size = list(ctx.attr(op, "size"))
        stride, dilation, padding = _window_geometry(ctx, op, xs, size, ys, False)
        kind = mode
        if mode == "box":
            kind = "avg" if ctx.attr(op, "normalize") else "sum"
        if len(xs) >= 2 and all(size[d] == 1 and stride[d] == 1 and dilation[d] == 1 and padding[d] == (0, 0)
                                for d in range(len(xs) - 2)):  # a window over the last two axes: plane by plane
            ctx.call(window.pool2d_kernel(kind), ctx.read(x), ctx.write(y), items(xs[:-2]), *xs[-2:], *ys[-2:],
                     *size[-2:], *stride[-2:], *dilation[-2:], padding[-2][0], padding[-1][0], int(border == "ignore"))
            return
        lead = 4 - len(xs)

        def four(values, fill):
            return Longs(tuple([fill] * lead + [int(v) for v in values]))

        ctx.call(window.pool_kernel(kind), ctx.read(x), ctx.write(y), four(xs, 1), four(ys, 1), four(size, 1),
                 four(stride, 1), four(dilation, 1), four([p for p, _ in padding], 0), int(border == "ignore"))

    return lower


def _reduce(mode: str):
    def lower(op: Operation, ctx: Lowering) -> None:
        x, y = op.operands[0], op.results[0]
        xs = shape_of(x) or (1,)
        axes = {a % len(xs) for a in ctx.attr(op, "axes")}
        if len(xs) > MAX_RANK:
            ctx.refuse(f"rank {len(xs)} is above the kernels' {MAX_RANK}")
        reduced = math.prod(xs[d] for d in axes)
        # Neighbouring axes both reduced or both kept as one: the kernel's inner loop
        # runs over the last (49 items of a 7x7 mean, not 7), and its odometer turns less.
        merged: list[list] = []
        for d, extent in enumerate(xs):
            if merged and merged[-1][1] == (d in axes):
                merged[-1][0] *= extent
            else:
                merged.append([extent, d in axes])
        xs = [extent for extent, _ in merged]
        axes = {d for d, (_, gone) in enumerate(merged) if gone}
        kept = [1 if d in axes else e for d, e in enumerate(xs)]
        dense = _dense_strides(kept)
        ys = [0 if d in axes else s for d, s in enumerate(dense)]
        ctx.call(window.reduce_kernel(mode), ctx.read(x), ctx.write(y), Longs(tuple(xs)), Longs(tuple(ys)), len(xs),
                 items(shape_of(y)), 1.0 / reduced if reduced else 0.0)

    return lower


def _around(ctx: Lowering, shape, axes) -> tuple[int, int, int]:
    """[outer, length, inner] of a shape for consecutive `axes`."""
    axes = sorted(a % len(shape) for a in axes)
    if axes != list(range(axes[0], axes[-1] + 1)):
        ctx.refuse("axes that are not consecutive have no C kernel")
    return items(shape[:axes[0]]), items(shape[axes[0]:axes[-1] + 1]), items(shape[axes[-1] + 1:])


def _softmax(op: Operation, ctx: Lowering) -> None:
    x, y = op.operands[0], op.results[0]
    ctx.call(window.softmax_kernel(), ctx.read(x), ctx.write(y), *_around(ctx, shape_of(x), ctx.attr(op, "axes")))


def _layer_norm(op: Operation, ctx: Lowering) -> None:
    x, y = ctx.operand(op, "input"), op.results[0]
    xs = shape_of(x)
    ctx.call(window.normalize_kernel(), ctx.read(x), ctx.write(y), *_around(ctx, xs, ctx.attr(op, "axes")),
             float(ctx.attr(op, "epsilon")))
    for name, kind in (("scale", "mul"), ("offset", "add")):
        value = ctx.operand(op, name)
        if value is None:
            continue
        zip_into(ctx, kind, ctx.write(y), xs, ctx.read(value), shape_of(value), ctx.write(y), xs)


# ---- data movement ----------------------------------------------------------------------


def _transpose(op: Operation, ctx: Lowering) -> None:
    x, y = op.operands[0], op.results[0]
    xs = shape_of(x)
    axes = list(ctx.attr(op, "axes")) + list(range(len(ctx.attr(op, "axes")), len(xs)))
    dense = _dense_strides(xs)
    ys = shape_of(y) or (1,)
    if len(ys) > MAX_RANK:
        ctx.refuse(f"rank {len(ys)} is above the kernels' {MAX_RANK}")
    ctx.call(movement.transpose_kernel(), ctx.read(x), ctx.write(y), Longs(tuple(ys)),
             Longs(tuple(dense[a] for a in axes) or (1,)), len(ys))


def _concat(op: Operation, ctx: Lowering) -> None:
    y = op.results[0]
    ys = shape_of(y)
    axis = ctx.attr(op, "axis") % len(ys)
    outer, inner = items(ys[:axis]), items(ys[axis + 1:])
    start = 0
    for value in ctx.operand(op, "values"):
        chunk = shape_of(value)[axis] * inner
        ctx.call(movement.blocks_kernel(), ctx.read(value), ctx.write(y, start), outer, chunk, chunk, ys[axis] * inner)
        start += chunk


def _split(op: Operation, ctx: Lowering) -> None:
    x = op.operands[0]
    xs = shape_of(x)
    axis = ctx.attr(op, "axis") % len(xs)
    outer, inner = items(xs[:axis]), items(xs[axis + 1:])
    start = 0
    for result in op.results:
        chunk = items(shape_of(result)) // max(outer, 1)
        ctx.call(movement.blocks_kernel(), ctx.read(x, start), ctx.write(result), outer, chunk, xs[axis] * inner, chunk)
        start += chunk


def _nearest_upsample(op: Operation, ctx: Lowering) -> None:
    x, y = op.operands[0], op.results[0]
    xs = shape_of(x)
    factor = list(ctx.attr(op, "factor"))
    if len(xs) not in (3, 4):
        ctx.refuse("nearest_upsample of rank 3 or 4 only")
    if len(xs) == 3:
        xs, factor = (xs[0], xs[1], 1, xs[2]), [1, *factor]
    ctx.call(movement.upsample_nearest_kernel(), ctx.read(x), ctx.write(y), xs[0] * xs[1], xs[2], xs[3], *factor)


def _copy(op: Operation, ctx: Lowering) -> None:
    x, y = op.operands[0], op.results[0]
    ctx.call(movement.copy_kernel(), ctx.read(x), ctx.write(y), items(shape_of(y)))


# ---- the slots ----------------------------------------------------------------------------


def _register() -> None:
    table = op_table()
    slots: dict[str, CKernel] = {}
    for name, entry in table.items():
        if entry.has_trait(TensorSource):
            slots[name] = CKernel(None)
    for name in elementwise.UNARY:
        slots[name] = CKernel(_unary(name), inplace=True, activation=name)
    slots["copy"] = CKernel(_copy)
    for name in elementwise.BINARY:
        slots[name] = CKernel(_binary(name), inplace=True, residual_add=name == "add")
    for activation in ("none", *elementwise.UNARY):
        conv_name = "conv" if activation == "none" else fused_name("conv", activation)
        linear_name = "linear" if activation == "none" else fused_name("linear", activation)
        # a conv with an activation of its own keeps it: the residual would come after
        slots[conv_name] = CKernel(_conv("copy" if activation == "none" else activation),
                                   takes_residual=_conv_takes_residual if activation == "none" else None)
        slots[linear_name] = CKernel(_linear("copy" if activation == "none" else activation))
    slots["deconv"] = CKernel(_conv("copy", transposed=True))
    slots["matmul"] = CKernel(_matmul)
    for name, mode in (("max_pool", "max"), ("avg_pool", "avg"), ("box", "box")):
        slots[name] = CKernel(_pool(mode))
    for mode in ("sum", "mean", "max", "min"):
        slots[f"{mode}_reduce"] = CKernel(_reduce(mode))
    slots["softmax"] = CKernel(_softmax)
    slots["layer_normalization"] = CKernel(_layer_norm)
    slots["transpose"] = CKernel(_transpose)
    slots["concat"] = CKernel(_concat)
    slots["split"] = CKernel(_split)
    slots["unstack"] = CKernel(_split)
    slots["nearest_upsample"] = CKernel(_nearest_upsample)
    for name in ("reshape", "squeeze", "unsqueeze"):
        slots[name] = CKernel(None, alias=True)
    assert all(base in ("conv", "linear") for base in BASES)
    for name, kernel in slots.items():
        if name in table:
            register_slot(name, "c_kernel", kernel)


_register()
