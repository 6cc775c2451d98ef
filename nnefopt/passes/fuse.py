"""fuse: fewer operations over the same weights.

- a batch normalization, or a per-channel (or scalar) `mul`/`add` by known values, after
  a `conv`, `deconv` or `linear` whose weights are known is folded into new weights;
- an activation after a `conv` or `linear` makes one fused operation (`conv_relu`, see
  nnefopt/frontend/fused.py), written as a fragment with a body;
- a zero `pad` before a `conv` or a pool becomes the window's own padding.

A pattern fires only when the producer has no other user: folding into weights that
someone else also reads would change what that someone computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriter, PatternRewriteWalker, RewritePattern

from nnefopt.dialects.layout import is_channel_last, set_channel_last
from nnefopt.dialects.nnef import OPERATIONS, CallOp
from nnefopt.dialects.quantization import unquantized
from nnefopt.frontend.binder import is_tensor_type
from nnefopt.frontend.fused import fused_name
from nnefopt.export.from_ir import fragment_signatures
from nnefopt.passes import register_pass
from nnefopt.passes.expand import discard, expand_call
from nnefopt.passes.idioms import LayerNorm, match_affine_layer_norm, match_gelu, match_layer_norm, used_only_inside
from nnefopt.passes.rewriting import (
    Weights,
    affordable,
    aligned,
    attribute,
    attributes,
    create,
    erase_if_dead,
    is_op,
    is_quantized,
    known_value,
    op_named,
    replace_op,
    single_use,
    static_shape,
)
from nnefopt.traits import Activation, Biased, PadFoldable, SlidingWindow


def _weighted_producer(value: SSAValue) -> Operation | None:
    """The conv/deconv/linear (Biased) computing `value` alone for its one user, weights
    known, channels on axis 1 (not made channel-last by the layout pass), shapes static."""
    op = value.owner
    if not isinstance(op, Operation) or not op.has_trait(Biased) or not single_use(value) or is_quantized(value) \
            or static_shape(value) is None or is_channel_last(op) or known_value(op.filter) is None:
        return None
    if op.bias is not None and known_value(op.bias) is None:
        return None
    return op


def _channels(op: Operation) -> int:
    return static_shape(op.results[0])[1]


def _per_channel(value: np.ndarray, channels: int, rank: int) -> np.ndarray | None:
    """A value that varies only along axis 1 of a rank-`rank` tensor (or not at all), as
    a vector of `channels` items; None for anything else."""
    if value.size == 1:
        return np.full(channels, value.reshape(()), np.float64)
    shape = aligned(value, rank).shape
    if len(shape) != rank or len(shape) < 2 or shape[1] != channels or any(d != 1 for i, d in enumerate(shape) if i != 1):
        return None
    return value.reshape(channels).astype(np.float64)


def _scaled_filter(op: Operation, filter_: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The filter whose output channel c is multiplied by scale[c]."""
    if not is_op(op, "deconv"):  # conv and linear: [C_out, ...]
        return filter_ * scale.reshape((-1,) + (1,) * (filter_.ndim - 1))
    groups = attribute(op, "groups") or 1
    groups = groups if groups > 0 else filter_.shape[0]
    c_in, per_group = filter_.shape[0], filter_.shape[1]  # deconv: [C_in, C_out / groups, ...]
    grouped = filter_.reshape((groups, c_in // groups, per_group) + filter_.shape[2:])
    factors = scale.reshape((groups, 1, per_group) + (1,) * (filter_.ndim - 2))
    return (grouped * factors).reshape(filter_.shape)


def _bias_vector(op: Operation, channels: int) -> np.ndarray:
    bias = known_value(op.bias) if op.bias is not None else np.zeros(1)
    return np.broadcast_to(np.asarray(bias, np.float64).reshape(-1), (channels,)) if bias.size in (1, channels) else None


def _refold(rewriter: PatternRewriter, weights: Weights, op: Operation, user: Operation,
            scale: np.ndarray | None, shift: np.ndarray) -> None:
    """Replace `user(op(...))` by op with its filter scaled and its bias shifted: the
    same operation, its weights changed in place (one operation fewer to build)."""
    channels = _channels(op)
    bias = _bias_vector(op, channels)
    filter_ = known_value(op.filter)
    if bias is None or not affordable(filter_.size, [op.filter]):  # not a one-value filter of 2^31 items
        return
    filter_ = filter_.astype(np.float64)
    if scale is not None:
        filter_, bias = _scaled_filter(op, filter_, scale), bias * scale
    # before the operation they now feed, which stays where it is
    new_filter = weights.insert(rewriter, filter_.astype(np.float32), weights.hint(op.filter, "fused"), op)
    new_bias = weights.insert(rewriter, (bias + shift).astype(np.float32).reshape(1, channels),
                              weights.bias_hint(op.filter, "fused"), op)
    old_filter, old_bias = op.filter, op.bias
    op.operands = [op.operands[0], new_filter, new_bias]
    rewriter.notify_op_modified(op)
    # Never refused: `user` is the only user of op's result, so it is no graph output.
    replace_op(rewriter, user, op.results[0])
    erase_if_dead(rewriter, old_filter)
    erase_if_dead(rewriter, old_bias)


class FoldBatchNorm(RewritePattern):
    """batch_normalization(conv(x, w, b)) = conv(x, w * s, (b - mean) * s + offset),
    s = scale / sqrt(variance + epsilon)."""

    def __init__(self, weights: Weights):
        self.weights = weights

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "batch_normalization"):
            return
        producer = _weighted_producer(op.input)
        if producer is None or static_shape(op.results[0]) is None:
            return
        channels, rank = _channels(producer), len(static_shape(op.results[0]))
        params = {}
        for name, default in (("mean", None), ("variance", None), ("offset", 0.0), ("scale", 1.0)):
            operand = getattr(op, name)
            value = np.asarray(default) if operand is None else known_value(operand)
            params[name] = None if value is None else _per_channel(value, channels, rank)
            if params[name] is None:
                return
        scale = params["scale"] / np.sqrt(params["variance"] + attribute(op, "epsilon"))
        _refold(rewriter, self.weights, producer, op, scale, params["offset"] - params["mean"] * scale)


class FoldChannelAffine(RewritePattern):
    """mul(conv(...), s) and add(conv(...), t) for s, t per channel or scalar."""

    def __init__(self, weights: Weights):
        self.weights = weights

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "mul", "add"):
            return
        for produced, other in ((op.operands[0], op.operands[1]), (op.operands[1], op.operands[0])):
            producer = _weighted_producer(produced)
            value = known_value(other)
            if producer is None or value is None or unquantized(op.results[0].type) != produced.type:
                continue
            vector = _per_channel(value, _channels(producer), len(static_shape(produced)))
            if vector is None:
                continue
            if is_op(op, "mul"):
                _refold(rewriter, self.weights, producer, op, vector, np.zeros_like(vector))
            else:
                _refold(rewriter, self.weights, producer, op, None, vector)
            return


class MatmulBiasAsLinear(RewritePattern):
    """matmul(x, w) + b with known w and a bias per column: linear(x, w^T, b), which takes
    the bias in the same pass over the output (and then an activation)."""

    def __init__(self, weights: Weights):
        self.weights = weights

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "add"):
            return
        for product, other in ((op.operands[0], op.operands[1]), (op.operands[1], op.operands[0])):
            matmul = op_named(product, "matmul")
            bias, shape = known_value(other), static_shape(product)
            if matmul is None or bias is None or shape is None or len(shape) != 2 or not single_use(product):
                continue
            filter_ = known_value(matmul.B)
            if filter_ is None or filter_.ndim != 2 or attribute(matmul, "transposeA") or is_quantized(product) \
                    or not affordable(filter_.size, [matmul.B]):
                continue
            if aligned(bias, 2).shape not in ((1, shape[1]), (1, 1)) or unquantized(op.results[0].type) != product.type:
                continue
            filter_ = filter_ if attribute(matmul, "transposeB") else filter_.T
            new_filter = self.weights.insert(rewriter, np.ascontiguousarray(filter_), self.weights.hint(matmul.B, "t"), op)
            new_bias = self.weights.insert(rewriter, np.broadcast_to(aligned(bias, 2), (1, shape[1])).astype(np.float32),
                                           self.weights.hint(other, "bias"), op)
            new = create("linear", [matmul.A, new_filter, new_bias], result_types=[op.results[0].type], like=op)
            replace_op(rewriter, op, new.results[0], [new])
            return


class FuseActivation(RewritePattern):
    """relu(conv(...)) → conv_relu(...): one operation, one pass over the output. Any
    Activation after a producer that has a fused operation with it."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not op.has_trait(Activation):
            return
        producer = op.operands[0].owner
        entry = getattr(producer, "OP_DEF", None)
        fused_op = None if entry is None else fused_name(entry.name, op.OP_DEF.name)
        if fused_op not in OPERATIONS or not single_use(op.operands[0]) or is_quantized(op.operands[0]) \
                or unquantized(op.results[0].type) != op.operands[0].type:
            return
        attribs = attributes(producer)
        # The activation's further parameters: tensors (clamp's bounds) must be known
        # scalars, attributes come as they are.
        _, *extra = op.OP_DEF.signature.params
        for param, value in zip([p for p in extra if is_tensor_type(p.type)], op.operands[1:]):
            bound = known_value(value)
            if bound is None or bound.size != 1:
                return
            attribs[param.name] = float(bound.reshape(()))
        for param in op.OP_DEF.attribute_params:
            attribs[param.name] = attribute(op, param.name)
        fused = create(fused_op, [producer.input, producer.filter, producer.bias], attribs,
                       result_types=[op.results[0].type], like=op)
        set_channel_last(fused, is_channel_last(producer))
        replace_op(rewriter, op, fused.results[0], [fused])


class RecognizeLayerNorm(RewritePattern):
    """The spelled-out layer normalization (nnef-tools') as one `layer_normalization`."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "div", "mul"):
            return
        match = match_layer_norm(op.results[0])
        if match is not None and used_only_inside(match.ops):
            replace_op(rewriter, op, *_layer_norm(match, op))


def _layer_norm(match: LayerNorm, like: Operation) -> tuple[SSAValue, list[Operation]]:
    new = create("layer_normalization", [match.input, match.scale, match.offset],
                 {"axes": match.axes, "epsilon": match.epsilon}, result_types=[like.results[0].type], like=like)
    return new.results[0], [new]


class FoldAffineIntoLayerNorm(RewritePattern):
    """layer_normalization(x) * scale + offset: the scale and offset of the operation."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "mul", "add"):
            return
        for normed, other in ((op.operands[0], op.operands[1]), (op.operands[1], op.operands[0])):
            norm = op_named(normed, "layer_normalization")
            if norm is None or not single_use(normed) or unquantized(op.results[0].type) != normed.type or norm.offset is not None:
                continue
            if is_op(op, "mul") and norm.scale is not None:
                continue
            scale, offset = (other, None) if is_op(op, "mul") else (norm.scale, other)
            new = create("layer_normalization", [norm.input, scale, offset], attributes(norm),
                         result_types=[op.results[0].type], like=op)
            replace_op(rewriter, op, new.results[0], [new])
            return


class RecognizeGelu(RewritePattern):
    """x * 0.5 * (1 + erf(x / sqrt(2))) in any order: one `gelu_erf`."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "mul"):
            return
        match = match_gelu(op.results[0])
        if match is not None and used_only_inside(match.ops):
            new = create("gelu_erf", [match.input], result_types=[op.results[0].type], like=op)
            replace_op(rewriter, op, new.results[0], [new])


class RecognizeFragment(RewritePattern):
    """A call of a fragment whose body is a layer normalization or a gelu (torch-to-nnef's
    `layer_norm_with_affine`, `gelu`) becomes that operation: its body is built aside
    and matched, and the call is replaced only when the body is the idiom entire."""

    def __init__(self, signatures: dict):
        self.signatures = signatures

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, CallOp) or len(op.outputs) != 1:
            return
        signature = self.signatures.get(op.callee.data)
        expanded = expand_call(op, signature, self.signatures) if signature is not None else None
        if expanded is None:
            return
        built, (result,) = expanded
        replacement = None
        norm = match_affine_layer_norm(result)
        gelu = match_gelu(result) if norm is None else None
        if norm is not None and _covers(norm.ops, built):
            replacement = _layer_norm(norm, op)
        elif gelu is not None and _covers(gelu.ops, built):
            new = create("gelu_erf", [gelu.input], result_types=[op.results[0].type], like=op)
            replacement = new.results[0], [new]
        discard(built)  # the body built aside goes, whatever the outcome
        if replacement is not None:
            replace_op(rewriter, op, *replacement)


def _covers(ops: list[Operation], built: list[Operation]) -> bool:
    """The idiom is the whole body: every operation built is part of it (literals aside)."""
    return all(b in ops or is_op(b, "constant") for b in built) and used_only_inside(ops)


class FoldPadIntoWindow(RewritePattern):
    """conv(pad(x, p)) → conv(x) with padding p added, when the pad is with zeros and the
    window pads with zeros too (border 'constant'): the same numbers are seen."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not op.has_trait(PadFoldable):
            return
        name = op.OP_DEF.name
        pad = op_named(op.operands[0], "pad")
        if pad is None or not single_use(op.operands[0]) or is_channel_last(op):
            return  # a channel-last window's padding is not in the pad's axis order
        if attribute(pad, "border") != "constant" or attribute(pad, "value") != 0.0:
            return
        padding, extra = attribute(op, "padding"), [tuple(p) for p in attribute(pad, "padding")]
        if not padding:  # automatic padding depends on the shape the pad changes
            return
        if attribute(op, "border") != "constant" and any(tuple(p) != (0, 0) for p in padding):
            return
        if not op.has_trait(SlidingWindow):  # a convolution: its window leaves batch and channel out
            if any(p != (0, 0) for p in extra[:2]):
                return  # padding of the batch or channel axis is no window padding
            extra = extra[2:]
        if len(extra) != len(padding):
            return
        combined = [(a + c, b + d) for (a, b), (c, d) in zip(padding, extra)]
        attribs = {**attributes(op), "padding": combined, "border": "constant"}
        operands = [getattr(op, p.name) for p in op.OP_DEF.tensor_params]
        operands[0] = pad.operands[0]
        new = create(name, operands, attribs, result_types=[op.results[0].type], like=op)
        replace_op(rewriter, op, new.results[0], [new])


@register_pass
@dataclass(frozen=True)
class Fuse(ModulePass):
    """fold batch norms and channel scales into weights; fuse activations and pads"""

    name = "fuse"
    activations: bool = True

    def apply(self, ctx, op: ModuleOp) -> None:
        weights = Weights(op)
        patterns = [FoldBatchNorm(weights), FoldChannelAffine(weights), MatmulBiasAsLinear(weights),
                    FoldPadIntoWindow(), RecognizeLayerNorm(),
                    FoldAffineIntoLayerNorm(), RecognizeGelu(), RecognizeFragment(fragment_signatures(op))]
        if self.activations:
            patterns.append(FuseActivation())
        PatternRewriteWalker(GreedyRewritePatternApplier(patterns)).rewrite_module(op)

