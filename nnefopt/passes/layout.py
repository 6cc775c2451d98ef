"""layout: convolution, pooling and resampling with channel-last data, in the IR.

`layout{to=nhwc}` (the default) tags every operation with the ChannelLastCapable trait
(convolution, deconvolution, spatial pooling, batch normalization, spatial resampling)
whose input has rank 3 or more and static shapes with the property `layout = "nhwc"`
(nnefopt/dialects/layout.py). A tagged operation is the NNEF operation with its
`input` and its result stored channel-last, [N, spatial..., C]; everything else keeps
its NNEF meaning: filter, bias, per-channel parameters and attributes (size, stride,
padding, factor...) stay in NNEF's channel-first order.

Each operation is first wrapped: transpose(input → channel-last), the tagged operation,
transpose(result → channel-first). Then patterns move the channel-first transposes
towards the outputs and cancel them against the next operation's channel-last one:

- a transpose of a transpose is one transpose, or none when they cancel;
- an element-wise operation (the ElementWise trait) whose tensor operands are transposes with the same
  permutation, known constants (permuted into new weights) or rank-0 values is
  computed before the transpose;
- so are concat (its axis remapped) and the reductions that keep their rank (the
  AxesReduction trait; their axes remapped).

Anything else (reshape, linear, matmul, softmax, a fragment call...) gets the
channel-first tensor, so transposes remain only next to the graph's inputs and
outputs and next to such operations. The patterns move only the transposes the pass
made (marked while it runs) and those they meet; the model's own transposes elsewhere
stay where they are.

`layout{to=nchw}` restores channel-first operations the same way in the other
direction; the NNEF exporter runs it, so that what nnefopt writes is channel-first
NNEF. The interpreter runs a tagged operation as its definition says: `channel_first`
wraps each in its two transposes, without moving anything.

Tensor names stay with the values the graph computes (the channel-last ones), a graph
output keeps its name, and a quantized tensor's transpose carries its graph.quant
entry (transposing does not change values).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import ModuleOp, TensorType, UnitAttr
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriter, PatternRewriteWalker, RewritePattern
from xdsl.rewriter import InsertPoint

from nnefopt.broadcasting import aligned
from nnefopt.dialects.layout import is_channel_last, set_channel_last
from nnefopt.dialects.nnef import OPERATIONS, to_attribute
from nnefopt.dialects.quantization import quantization_of, with_quantization
from nnefopt.dialects.tensor_names import NAMES, FreshNames, set_tensor_name, tensor_name
from nnefopt.errors import NNEFError
from nnefopt.passes import register_pass
from nnefopt.passes.rewriting import (
    Weights,
    attribute,
    erase_if_dead,
    is_graph_output,
    is_one_value,
    is_op,
    known_value,
    op_named,
    replace_value,
    static_shape,
    take_place,
)
from nnefopt.traits import AxesReduction, ChannelLastCapable, ElementWise, SlidingWindow

_PENDING = "nnef.layout.pending"  # marks the pass's own transposes while it runs

# Which operations the patterns treat how is their traits': ChannelLastCapable ones get
# the tag (their first operand is `input`, their one result `output`), ElementWise ones
# and AxesReduction ones (argmax_reduce's index depends on the order of the axes, so it
# has not that trait) let the transposes through.


# ---- permutations -----------------------------------------------------------------------


def to_last(rank: int) -> list[int]:
    """transpose axes taking [N, C, spatial...] to [N, spatial..., C]"""
    return [0, *range(2, rank), 1]


def to_first(rank: int) -> list[int]:
    """transpose axes taking [N, spatial..., C] to [N, C, spatial...]"""
    return [0, rank - 1, *range(1, rank - 1)]


def inverse(perm: list[int]) -> list[int]:
    result = [0] * len(perm)
    for i, axis in enumerate(perm):
        result[axis] = i
    return result


def _permuted(shape, perm: list[int]) -> list:
    """The shape of transpose(x, axes = perm) for x of `shape`."""
    return [shape[a] for a in perm]


def transpose_axes(op: Operation) -> list[int] | None:
    """A transpose's permutation over all axes of its input (NNEF keeps unnamed trailing axes)."""
    shape = op.operands[0].type.get_shape() if isinstance(op.operands[0].type, TensorType) else None
    if shape is None:
        return None
    axes = list(attribute(op, "axes"))
    return axes + list(range(len(axes), len(shape)))


# ---- what the patterns share ------------------------------------------------------------------


class _Rewrites:
    """State of one pass run: the direction, names in use, new weights."""

    def __init__(self, module: ModuleOp, to: str):
        self.to = to
        self.fresh = FreshNames.of_module(module)
        self.weights = Weights(module)
        self.permuted: dict[tuple[SSAValue, tuple[int, ...]], SSAValue] = {}

    def sinking(self, rank: int) -> list[int]:
        """The permutation the patterns move down: back to the layout the rest of the
        graph expects (channel-first for to=nhwc, channel-last for to=nchw)."""
        return to_first(rank) if self.to == "nhwc" else to_last(rank)

    def transpose(self, value: SSAValue, perm: list[int], like: Operation, marked: bool = True) -> Operation:
        type_, quant = value.type, quantization_of(value)
        # the same values, so the same graph.quant entry
        result = with_quantization(TensorType(type_.element_type, _permuted(type_.get_shape(), perm)), quant)
        op = OPERATIONS["transpose"](operands=[value], properties={"axes": to_attribute(list(perm))},
                                     result_types=[result])
        op.location = like.location
        if marked:
            op.attributes[_PENDING] = UnitAttr()
        if quant is not None and tensor_name(value):  # a quantized tensor has a name in graph.quant
            set_tensor_name(op.results[0], self.fresh(_derived(tensor_name(value), _suffix(perm))))
        return op

    def take_name(self, new: SSAValue, old: SSAValue, suffix: str) -> SSAValue:
        """`new` computes what `old` did, in another layout: it takes the tensor name and its
        graph.quant entry, unless the name is a graph output's, which the value that
        replaces `old` keeps; then `new` gets a name of its own."""
        name = tensor_name(old)
        if name is not None and is_graph_output(old):
            name = self.fresh(_derived(name, suffix))
        return take_place(old, new, name)

    def rebuild(self, op: Operation, operands: list[SSAValue], result_type: Attribute,
                properties: dict[str, Attribute] | None = None, tag: bool | None = None) -> Operation:
        """`op` with other operands, result type and properties; names and quantization
        entries are left to take_name."""
        attributes = {k: v for k, v in op.attributes.items() if k not in (NAMES, "nnef.dims")}
        new = type(op).create(operands=operands, result_types=[result_type],
                              properties={**op.properties, **(properties or {})}, attributes=attributes)
        if tag is not None:
            set_channel_last(new, tag)
        new.location = op.location
        return new

    def sink(self, rewriter: PatternRewriter, op: Operation, operands: list[SSAValue], perm: list[int],
             properties: dict[str, Attribute] | None = None, tag: bool | None = None,
             before: list[Operation] = ()) -> None:
        """Replace `op` by transpose(op'(operands), perm): op' computes op's result in the
        layout that `perm` takes back to op's."""
        old = op.results[0]
        inner = TensorType(old.type.element_type, _permuted(old.type.get_shape(), inverse(perm)))
        new = self.rebuild(op, operands, inner, properties, tag)
        after = self.transpose(self.take_name(new.results[0], old, _suffix(inverse(perm))), perm, like=op)
        rewriter.insert([*before, new, after], InsertPoint.before(op))
        if not is_graph_output(old):
            set_tensor_name(old, None)  # `new` has the name now; replace_value would give it to `after` too
        replace_value(rewriter, old, after.results[0])  # a fresh value: it always takes the uses
        consumed = list(op.operands)
        rewriter.erase(op)
        _erase_unused(rewriter, consumed)

    def permute_known(self, rewriter: PatternRewriter, value: SSAValue, perm: list[int], rank: int) -> SSAValue:
        """The known tensor `value` (of rank `rank` or less), which broadcasts against
        transpose(x, perm), as the tensor that broadcasts against x the same way."""
        key = (value, tuple(perm))
        cached = self.permuted.get(key)
        if cached is not None and cached.owner.parent is not None:
            return cached
        array = known_value(value)
        # The trailing singleton axes NNEF's broadcasting adds, the permuted tensor may
        # leave out again.
        array = np.transpose(aligned(array, rank), inverse(perm))
        while array.ndim > 1 and array.shape[-1] == 1:
            array = array.reshape(array.shape[:-1])
        suffix = _suffix(inverse(perm))
        owner = value.owner
        if is_op(owner, "constant"):
            flat = array.reshape(-1)
            # one value broadcast is known so from its strides: no comparison of 2^31 items
            uniform = flat.size and (is_one_value(flat) or np.all(flat == flat[0]))
            values = [flat[0].item()] if uniform else flat.tolist()
            new = OPERATIONS["constant"](properties={"shape": to_attribute(list(array.shape)),
                                                    "value": to_attribute(values)},
                                         result_types=[TensorType(value.type.element_type, list(array.shape))])
            new.location = owner.location
            if "nnef.explicit" in owner.attributes:
                new.attributes["nnef.explicit"] = owner.attributes["nnef.explicit"]
        else:
            label = self.weights.source_label(value)
            new = self.weights.new(array, _derived(label, suffix), like=owner)
        if tensor_name(value):
            set_tensor_name(new.results[0], self.fresh(_derived(tensor_name(value), suffix)))
        rewriter.insert(new, InsertPoint.after(owner))  # before every use of the original
        self.permuted[key] = new.results[0]
        return new.results[0]


def _derived(name: str, suffix: str) -> str:
    """The name of a tensor's permutation: `x` → `x_nhwc`, and `x_nhwc` back to `x`."""
    for ending in ("_nhwc", "_nchw"):
        if name.endswith(ending) and ending != f"_{suffix}" and len(name) > len(ending):
            return name[:-len(ending)]
    return f"{name}_{suffix}"


def _suffix(perm: list[int]) -> str:
    if perm == to_last(len(perm)):
        return "nhwc"
    if perm == to_first(len(perm)):
        return "nchw"
    return "t"


def _erase_unused(rewriter: PatternRewriter, values) -> None:
    """Transposes and weights the rewrite stopped using (the model's own ones included)."""
    for value in values:
        erase_if_dead(rewriter, value)


def _static(value: SSAValue) -> bool:
    return static_shape(value) is not None


def _spatial_window(op: Operation, rank: int) -> bool:
    """A pooling that leaves batch and channel alone: window 1, stride 1, no padding."""
    ones = [1, 1]
    size, stride, dilation = (list(attribute(op, name)) for name in ("size", "stride", "dilation"))
    padding = [tuple(p) for p in attribute(op, "padding")]
    return (len(size) == rank and size[:2] == ones and (not stride or stride[:2] == ones)
            and (not dilation or dilation[:2] == ones) and (not padding or padding[:2] == [(0, 0), (0, 0)]))


def eligible(op: Operation) -> bool:
    """Whether `layout{to=nhwc}` tags the operation."""
    if not op.has_trait(ChannelLastCapable) or is_channel_last(op) or len(op.results) != 1:
        return False
    shape = static_shape(op.operands[0])
    if shape is None or len(shape) < 3 or not _static(op.results[0]):
        return False
    return not op.has_trait(SlidingWindow) or _spatial_window(op, len(shape))


# ---- patterns -----------------------------------------------------------------------------------


class Wrap(RewritePattern):
    """op(x) → transpose(op'(transpose(x))): for to=nhwc an eligible op becomes tagged,
    for to=nchw a tagged op becomes the NNEF op again."""

    def __init__(self, state: _Rewrites):
        self.state = state

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        state = self.state
        if state.to == "nhwc":
            if not eligible(op):
                return
        elif not is_channel_last(op):
            return
        x = op.operands[0]
        rank = len(x.type.get_shape())
        into = to_last(rank) if state.to == "nhwc" else to_first(rank)
        entering = state.transpose(x, into, like=op)
        state.sink(rewriter, op, [entering.results[0], *op.operands[1:]], inverse(into), tag=state.to == "nhwc",
                   before=[entering])


class Compose(RewritePattern):
    """transpose(transpose(x, p), q) → transpose(x, p∘q), or x when that is no permutation."""

    def __init__(self, state: _Rewrites):
        self.state = state

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "transpose"):
            return
        inner = op_named(op.operands[0], "transpose")
        if inner is None or (_PENDING not in op.attributes and _PENDING not in inner.attributes):
            return
        first, second = transpose_axes(inner), transpose_axes(op)
        if first is None or second is None:
            return
        axes = [first[a] for a in second]
        x, old = inner.operands[0], op.results[0]
        if axes == list(range(len(axes))):
            if not replace_value(rewriter, old, x):
                # x is a graph input or output, and so is the result: a copy keeps both names
                copy = OPERATIONS["copy"](operands=[x], result_types=[old.type])
                copy.location = op.location
                rewriter.insert(copy, InsertPoint.before(op))
                replace_value(rewriter, old, copy.results[0])
        else:
            new = self.state.transpose(x, axes, like=op)
            rewriter.insert(new, InsertPoint.before(op))
            replace_value(rewriter, old, new.results[0])
        rewriter.erase(op)
        _erase_unused(rewriter, [inner.results[0]])


def _moving(state: _Rewrites, value: SSAValue, rank: int) -> Operation | None:
    """The transpose defining `value` when it has the permutation the patterns move."""
    op = op_named(value, "transpose")
    if op is None or rank < 3 or len(value.type.get_shape()) != rank or transpose_axes(op) != state.sinking(rank):
        return None
    return op


class SinkElementwise(RewritePattern):
    """f(transpose(x, p), c, s) → transpose(f(x, c', s), p), c a known tensor, c' its
    permutation, s of rank 0."""

    def __init__(self, state: _Rewrites):
        self.state = state

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not op.has_trait(ElementWise) or len(op.results) != 1 or not _static(op.results[0]):
            return
        state, rank = self.state, len(op.results[0].type.get_shape())
        if rank < 3:
            return
        moving = [_moving(state, v, rank) for v in op.operands]
        if not any(t is not None and _PENDING in t.attributes for t in moving):
            return
        for value, t in zip(op.operands, moving):
            if t is None and static_shape(value) != ():
                array = known_value(value)
                if array is None or array.ndim > rank:
                    return
        perm = state.sinking(rank)
        operands = [t.operands[0] if t is not None else value if static_shape(value) == ()
                    else state.permute_known(rewriter, value, perm, rank) for value, t in zip(op.operands, moving)]
        state.sink(rewriter, op, operands, perm)


class SinkReduce(RewritePattern):
    """reduce(transpose(x, p), axes) → transpose(reduce(x, p[axes]), p)."""

    def __init__(self, state: _Rewrites):
        self.state = state

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not op.has_trait(AxesReduction) or not _static(op.results[0]):
            return
        rank = len(op.results[0].type.get_shape())
        t = _moving(self.state, op.operands[0], rank)
        if t is None or _PENDING not in t.attributes:
            return
        perm = self.state.sinking(rank)
        axes = sorted(perm[a] for a in attribute(op, "axes"))
        self.state.sink(rewriter, op, [t.operands[0]], perm, {"axes": to_attribute(axes)})


class SinkConcat(RewritePattern):
    """concat([transpose(x_i, p)...], axis) → transpose(concat([x_i...], p[axis]), p)."""

    def __init__(self, state: _Rewrites):
        self.state = state

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "concat") or not _static(op.results[0]):
            return
        rank = len(op.results[0].type.get_shape())
        moving = [_moving(self.state, v, rank) for v in op.operands]
        if None in moving or not any(_PENDING in t.attributes for t in moving):
            return
        perm = self.state.sinking(rank)
        axis = perm[attribute(op, "axis")]
        self.state.sink(rewriter, op, [t.operands[0] for t in moving], perm, {"axis": to_attribute(axis)})


def _strip_marks(module: ModuleOp) -> None:
    for op in module.walk():
        op.attributes.pop(_PENDING, None)


def _check(to: str) -> None:
    if to not in ("nhwc", "nchw"):
        raise NNEFError(f"layout: 'to' must be nhwc or nchw, found '{to}'")


@register_pass
@dataclass(frozen=True)
class Layout(ModulePass):
    """channel-last convolution and pooling (to=nhwc), or channel-first again (to=nchw)"""

    name = "layout"
    to: str = "nhwc"

    def apply(self, ctx, op: ModuleOp) -> None:
        _check(self.to)
        if self.to == "nchw" and not any(is_channel_last(o) for o in op.walk()):
            return  # nothing to restore (the exporter runs this on every module)
        state = _Rewrites(op, self.to)
        patterns = [Wrap(state), Compose(state), SinkElementwise(state), SinkReduce(state), SinkConcat(state)]
        # dce off: the pass erases what it stops using, and nothing the model had unused
        PatternRewriteWalker(GreedyRewritePatternApplier(patterns, dce_enabled=False)).rewrite_module(op)
        _strip_marks(op)


def channel_first(module: ModuleOp) -> ModuleOp:
    """The module itself when no operation is tagged; otherwise a copy in which each
    tagged operation is its NNEF operation between two transposes (nothing else moves,
    so running the copy checks exactly what `layout` did)."""
    if not any(is_channel_last(op) for op in module.walk()):
        return module
    copy = module.clone()
    state = _Rewrites(copy, "nchw")
    PatternRewriteWalker(GreedyRewritePatternApplier([Wrap(state)], dce_enabled=False)).rewrite_module(copy)
    _strip_marks(copy)
    return copy


__all__ = ["Layout", "channel_first", "eligible", "is_channel_last", "to_first", "to_last"]
