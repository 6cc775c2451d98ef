"""canonicalize: the same computation, in fewer and more regular operations.

- identities go: `copy`, a reshape/squeeze/unsqueeze/transpose/tile/pad that changes
  nothing, `add`/`sub` of 0, `mul`/`div` by 1;
- chains merge: transpose of a transpose, reshapes of reshapes, `mul` of `mul` and `add`
  of `add` by constants;
- one spelling per computation: `sub(x, c)` is `add(x, -c)` (a bias the fuse pass can
  take), `min(max(x, a), b)` is `clamp(x, a, b)`, reshape/tile/reshape that repeats every
  pixel is `nearest_upsample`, a fragment whose body is one or two table operations is
  inlined (torch-to-nnef's `hard_tanh`);
- variables with the same label are the same tensor file, hence one value;
- then xDSL's common-subexpression elimination, and dead code goes throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriter, PatternRewriteWalker, RewritePattern
from xdsl.rewriter import Rewriter
from xdsl.transforms.common_subexpression_elimination import CSEDriver

from nnefopt.broadcasting import broadcast_shape
from nnefopt.dialects.nnef import CallOp, FragmentOp, OpaqueOp
from nnefopt.export.from_ir import fragment_signatures
from nnefopt.passes import register_pass
from nnefopt.passes.expand import discard, expand_call
from nnefopt.passes.rewriting import (
    Weights,
    aligned,
    attribute,
    create,
    erase_dead_producers,
    is_graph_output,
    is_op,
    is_quantized,
    known_value,
    stored,
    op_named,
    producer_with,
    replace_op,
    single_use,
    static_shape,
)
from nnefopt.traits import Reshaping

MAX_INLINED = 2  # operations a fragment body may expand to and still be inlined


def _same_type(op: Operation, value) -> bool:
    return op.results[0].type == value.type


class RemoveIdentity(RewritePattern):
    """Operations that give their input back unchanged."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        name = op.name.removeprefix("nnef.")
        if name == "copy" or ((op.has_trait(Reshaping) or name == "tile") and _same_type(op, op.operands[0])):
            replace_op(rewriter, op, op.operands[0])
        elif name == "pad" and all(tuple(p) == (0, 0) for p in attribute(op, "padding")):
            replace_op(rewriter, op, op.operands[0])  # (1, -1) keeps the shape, not the values
        elif name == "transpose" and _same_type(op, op.operands[0]):
            perm = attribute(op, "axes")
            if perm == list(range(len(perm))):
                replace_op(rewriter, op, op.operands[0])


_NEUTRAL = {"add": (0.0, True), "sub": (0.0, False), "mul": (1.0, True), "div": (1.0, False)}


class RemoveNeutralArithmetic(RewritePattern):
    """x + 0, x - 0, x * 1, x / 1 (and 0 + x, 1 * x), when the result has x's type: a
    broadcast to a larger shape is not an identity."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        neutral = _NEUTRAL.get(op.name.removeprefix("nnef."))
        if neutral is None:
            return
        value, commutes = neutral
        x, y = op.operands
        candidates = [(x, y), (y, x)] if commutes else [(x, y)]
        for kept, other in candidates:
            known = known_value(other)
            if known is not None and _same_type(op, kept) and np.all(stored(known) == value):
                replace_op(rewriter, op, kept)
                return


class ComposeTransposes(RewritePattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        inner = op_named(op.operands[0], "transpose") if is_op(op, "transpose") else None
        if inner is None:
            return
        p, q = attribute(inner, "axes"), attribute(op, "axes")
        if len(p) != len(q):
            return
        composed = [p[i] for i in q]
        if composed == list(range(len(composed))) and _same_type(op, inner.operands[0]):
            replace_op(rewriter, op, inner.operands[0])
            return
        new = create("transpose", [inner.operands[0]], {"axes": composed}, result_types=[op.results[0].type], like=op)
        replace_op(rewriter, op, new.results[0], [new])


class ComposeReshapes(RewritePattern):
    """A reshape of a reshape is one reshape, to the final shape."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not op.has_trait(Reshaping):
            return
        inner = producer_with(op.operands[0], Reshaping)
        shape = static_shape(op.results[0])
        if inner is None or shape is None:
            return
        source = inner.operands[0]
        if _same_type(op, source):
            replace_op(rewriter, op, source)
            return
        new = create("reshape", [source], {"shape": list(shape)}, result_types=[op.results[0].type], like=op)
        replace_op(rewriter, op, new.results[0], [new])


class MergeConstantChains(RewritePattern):
    """(x * a) * b → x * (a * b), (x + a) + b → x + (a + b), for known a and b."""

    def __init__(self, weights: Weights):
        self.weights = weights

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        name = op.name.removeprefix("nnef.")
        if not is_op(op, "mul", "add"):
            return
        outer = _split_known(op)
        if outer is None:
            return
        x, b = outer
        inner = op_named(x, name)
        if inner is None or not single_use(x):
            return
        split = _split_known(inner)
        if split is None:
            return
        source, a = split
        rank = len(op.results[0].type.get_shape())
        a, b = aligned(a, rank), aligned(b, rank)
        merged = a * b if name == "mul" else a + b
        if broadcast_shape(source.type.get_shape(), merged.shape) != tuple(op.results[0].type.get_shape()):
            return
        constant = self.weights.insert(rewriter, merged.astype(np.float32), self.weights.hint(inner.operands[1], name), op)
        new = create(name, [source, constant], result_types=[op.results[0].type], like=op)
        replace_op(rewriter, op, new.results[0], [new])


def _split_known(op: Operation):
    """(the unknown operand, the known one's value) of a binary operation, or None."""
    x, y = op.operands
    for unknown, other in ((x, y), (y, x)):
        value = known_value(other)
        if value is not None and known_value(unknown) is None and value.dtype.kind == "f":
            return unknown, value
    return None


class SubtractAsAdd(RewritePattern):
    """x - c → x + (-c): a shift the fuse pass folds into a bias like any other."""

    def __init__(self, weights: Weights):
        self.weights = weights

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "sub"):
            return
        x, c = op.operands
        value = known_value(c)
        if value is None or known_value(x) is not None or value.dtype.kind != "f":
            return
        negated = np.broadcast_to(-stored(value), value.shape)  # a broadcast constant stays one
        negated = self.weights.insert(rewriter, negated, self.weights.hint(c, "neg"), op)
        new = create("add", [x, negated], result_types=[op.results[0].type], like=op)
        replace_op(rewriter, op, new.results[0], [new])


class MinMaxAsClamp(RewritePattern):
    """min(max(x, a), b) and max(min(x, b), a) with scalars a <= b: clamp(x, a, b)."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        name = op.name.removeprefix("nnef.")
        inner_name = {"min": "max", "max": "min"}.get(name)
        if inner_name is None:
            return
        outer = _split_known(op)
        if outer is None or outer[1].size != 1:
            return
        inner = op_named(outer[0], inner_name)
        if inner is None or not single_use(outer[0]):
            return
        split = _split_known(inner)
        if split is None or split[1].size != 1:
            return
        x = split[0]
        low, high = (split[1], outer[1]) if name == "min" else (outer[1], split[1])
        if float(low.reshape(())) > float(high.reshape(())) or not _same_type(op, x):
            return
        bounds = [op.operands[1] if op.operands[0] is outer[0] else op.operands[0],
                  inner.operands[1] if inner.operands[0] is x else inner.operands[0]]
        a, b = (bounds[1], bounds[0]) if name == "min" else (bounds[0], bounds[1])
        new = create("clamp", [x, a, b], result_types=[op.results[0].type], like=op)
        replace_op(rewriter, op, new.results[0], [new])


class NearestUpsampleIdiom(RewritePattern):
    """reshape(tile(reshape(x, [N, C, H, 1, W, 1]), [1, 1, 1, f, 1, g]), [N, C, H*f, W*g])
    repeats every pixel: nearest_upsample(x, [f, g]) (torch-to-nnef's spelling)."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "reshape"):
            return
        tile = op_named(op.operands[0], "tile")
        inner = op_named(tile.operands[0], "reshape") if tile is not None else None
        if inner is None or not single_use(tile.results[0]) or not single_use(inner.results[0]):
            return
        x = inner.operands[0]
        source, expanded, out = static_shape(x), static_shape(inner.results[0]), static_shape(op.results[0])
        repeats = attribute(tile, "repeats")
        if None in (source, expanded, out) or len(source) < 3 or len(expanded) != 2 + 2 * (len(source) - 2):
            return
        spatial = source[2:]
        if list(expanded) != [*source[:2], *[d for s in spatial for d in (s, 1)]]:
            return
        factors = repeats[3::2]
        if list(repeats[:2]) != [1, 1] or any(r != 1 for r in repeats[2::2]) or len(factors) != len(spatial):
            return
        if list(out) != [*source[:2], *[s * f for s, f in zip(spatial, factors)]]:
            return
        new = create("nearest_upsample", [x], {"factor": list(factors)}, result_types=[op.results[0].type], like=op)
        replace_op(rewriter, op, new.results[0], [new])


class InlineSmallFragment(RewritePattern):
    """A call of a fragment whose body is at most MAX_INLINED table operations."""

    def __init__(self, signatures: dict):
        self.signatures = signatures

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, CallOp):
            return
        signature = self.signatures.get(op.callee.data)
        if signature is None or signature.body is None:
            return
        expanded = expand_call(op, signature, self.signatures)
        if expanded is None:
            return
        built, values = expanded
        if sum(1 for b in built if not is_op(b, "constant")) > MAX_INLINED or len(values) != 1:
            discard(built)
            return
        for b in built:
            b.location = op.location
        replace_op(rewriter, op, values[0], built)


class WeightBlindCSE(CSEDriver):
    """xDSL's common-subexpression elimination that does not look at used variables, and
    erases what its merges leave unused.

    Two variables never match (each carries its own weight handle) and those of one label
    are already merged; hashing their attributes was most of the time cse took. Merging an
    operation frees its operands, which xDSL's driver, having visited them, leaves in
    place: they go here, instead of in a second walk over the whole module."""

    def _simplify_operation(self, op: Operation) -> None:
        if is_op(op, "variable") and op.results[0].uses:
            return
        super()._simplify_operation(op)

    def _commit_erasures(self) -> None:
        freed = [operand for op in self._to_erase for operand in op.operands]
        super()._commit_erasures()
        erase_dead_producers(freed, Rewriter.erase_op)


class MergeSameLabelVariables(RewritePattern):
    """Two variables of one label read one tensor file: the later one is the earlier
    (the sweep meets them in program order), unless it is itself a graph output."""

    def __init__(self):
        self.first: dict[tuple, Operation] = {}

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "variable") or is_quantized(op.results[0]):
            return
        key = (op.parent_block(), op.properties["label"].data, op.results[0].type)
        kept = self.first.setdefault(key, op)
        if kept.parent is None:  # erased since: this one stands for the label now
            self.first[key] = op
        elif kept is not op and not is_graph_output(op.results[0]):
            replace_op(rewriter, op, kept.results[0])


def drop_uncalled_fragments(module: ModuleOp) -> None:
    """Fragments nothing calls any more (their calls were inlined) are not written."""
    texts = {op: op.text.data for op in module.ops if isinstance(op, FragmentOp)}
    if not any(_defines_body(text) for text in texts.values()):
        return  # nothing could be dropped: no need to look for calls
    called = {op.callee.data for op in module.walk() if isinstance(op, CallOp)}
    # An undeclared operation may name a fragment by a string (tract's scan: `body = "scan_body_0"`).
    called |= {attr.data for op in module.walk() if isinstance(op, OpaqueOp)
               for attr in op.args.data.values() if isinstance(attr, StringAttr)}
    for op, text in texts.items():
        name = op.sym_name.data
        used_by_others = any(name + "(" in t.replace(" (", "(") for o, t in texts.items() if o is not op)
        if name not in called and not used_by_others and _defines_body(text):
            module.body.block.erase_op(op)


def _defines_body(text: str) -> bool:
    return "{" in text  # a bare declaration says which operations exist; it stays


def canonicalization_patterns(module: ModuleOp) -> list[RewritePattern]:
    weights = Weights(module)
    return [MergeSameLabelVariables(), RemoveIdentity(), RemoveNeutralArithmetic(), ComposeTransposes(),
            ComposeReshapes(), MergeConstantChains(weights), SubtractAsAdd(weights), MinMaxAsClamp(),
            NearestUpsampleIdiom(), InlineSmallFragment(fragment_signatures(module))]


@register_pass
@dataclass(frozen=True)
class Canonicalize(ModulePass):
    """remove identities, merge chains, one spelling per computation; cse and dce"""

    name = "canonicalize"

    def apply(self, ctx, op: ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier(canonicalization_patterns(op))).rewrite_module(op)
        WeightBlindCSE().simplify(op)
        drop_uncalled_fragments(op)
