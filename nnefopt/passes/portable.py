"""portable-spelling: operations that NNEF engines read differently, spelled with ones they read alike.

The specification is the contract, but a model is written to be run, and the engines
that run NNEF do not all implement the whole of it. tract 0.23.9, the engine the tests
use as their oracle, has no `constant` (specification 4.1) or `split` (4.5.3) operation,
cannot expand its own `nearest_upsample` (the body calls `length_of`, which it lacks),
reads a unary minus only on a literal, and reads a `deconv` filter as
[C_out, C_in / groups, ...] where the specification (4.3) and the Khronos tools read
[C_in, C_out / groups, ...]: no deconv is right for both. The Khronos parser, for its
part, infers the shape of a `linear` only on an input of rank 2, the one the
specification defines it for, where torch-to-nnef writes batched ones ([B, T, C]) for
tract. So nnefopt writes these with
operations that mean the same in the specification and that the Khronos parser and
tract both read the same way. Saving runs this pass on a copy of the module
(`nnefopt.save(..., keep_spelling=True)` and `nnef-opt --keep-spelling` skip it); it is
a pass of its own so that its effect can be seen and tested in the IR.

- constant, named, of rank 0 → copy(literal): every engine reads a literal. An unnamed
  one *is* a literal and stays.
- constant of any other shape → variable, its values in a `.dat` file of its own; one
  value filling more than rewriting.SMALL_ELEMENTS items → tile(variable of that one
  item), not a file of as many copies (a constant declared with 2^31 items).
- deconv with a known filter (a weight, or a transpose of one), static shapes, not
  quantized:
  - kernel == stride, no padding, dilation 1 (the usual learned upsampling): a 1x1
    conv to C_out * prod(stride) channels, then reshape/transpose/reshape moves each
    run of prod(stride) channels into its stride-sized block (depth to space). Each
    output element takes exactly one tap of the deconv, so it is the same sum and it
    costs what the deconv costs. No value outside the input is read: any border.
  - otherwise, border 'constant' (or 'ignore', whose missing terms are zeros): the
    input with stride - 1 zeros after each element (unsqueeze, pad, reshape), then a
    conv with stride 1 and the deconv's dilation, with the filter's in and out
    channels swapped within each group and its spatial axes reversed. From the
    specification's output[i] = sum_j x[(i + p - j d) / s] w[j], with z the
    zero-inserted input: output[i] = sum_j z[i + p - j d] w[j]
    = sum_j' z[i + j' d - P] w[f - 1 - j'] with P = (f - 1) d - p, a correlation with
    front padding P; the back padding follows from the output extent (output_shape,
    or what the padding gives). A negative padding, which tract refuses, is a slice.
  A deconv with another border, a computed filter or symbolic shapes stays.
- nearest_upsample → reshape/tile/reshape (as torch-to-nnef writes it).
- split → one slice per part.
- linear on an input of rank > 2, static shapes, not quantized → its body,
  add(matmul(input, filter, transposeB = true), bias') (no bias: no add). The filter
  has the input's rank already (matmul wants equal ranks; a batch axis of 1
  broadcasts), and bias' gets it: NNEF's broadcasting aligns shapes from the first
  axis, so a [C] or [1, C] bias becomes [1, ..., 1, C] (a known one a new weight, a
  computed one an unsqueeze).
- in fragment bodies, a unary minus on a tensor expression → neg(...), the operation
  the specification maps it to (3.3.3, table 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import ArrayAttr, ModuleOp, StringAttr
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriter, PatternRewriteWalker, RewritePattern
from xdsl.rewriter import InsertPoint

from nnefopt.dialects.nnef import OPERATIONS, FragmentOp, from_attribute, to_attribute
from nnefopt.dialects.quantization import quantization_of, with_quantization
from nnefopt.dialects.tensor_names import NAMES, FreshNames, set_tensor_name, tensor_name
from nnefopt.export.from_ir import fragment_of, is_literal
from nnefopt.frontend import ast
from nnefopt.frontend.binder import is_tensor_type
from nnefopt.frontend.model import EXPLICIT_TYPE
from nnefopt.frontend.printer import format_fragment
from nnefopt.passes import register_pass
from nnefopt.passes.rewriting import (
    SMALL_ELEMENTS,
    Weights,
    attribute,
    constant_value,
    create,
    erase_if_dead,
    is_one_value,
    is_op,
    is_quantized,
    known_value,
    static_shape,
    stored,
    take_place,
)
from nnefopt.traits import DataMovement


class _Names(Weights):
    """New weights (labels no variable uses), and tensor names no result of the module has."""

    def __init__(self, module: ModuleOp):
        super().__init__(module)
        self.tensor = FreshNames.of_module(module)  # a tensor name no result has

    def variable(self, data: np.ndarray, base: str, like: Operation, named: bool = True) -> Operation:
        """A new weight labelled after `base`, written `variable<scalar>` as exporters write
        it; its tensor named after `base` too, or, not `named`, left for its user to name."""
        op = self.new(np.ascontiguousarray(data), base, like=like)  # a variable, even of one value
        op.attributes["nnef.explicit"] = to_attribute([EXPLICIT_TYPE])
        set_tensor_name(op.results[0], self.tensor(base) if named else None)
        return op




def _known_array(value: SSAValue | None) -> np.ndarray | None:
    """`known_value`, also through operations that only move a known array's items
    (DataMovement: the frontend writes tract's [C_out, C_in, ...] deconv filter as
    transpose(variable) in the specification's layout); None for anything computed."""
    shape = None if value is None else static_shape(value)
    if shape is None:
        return None
    owner = value.owner
    if not isinstance(owner, Operation) or not owner.has_trait(DataMovement):
        return known_value(value)
    source = _known_array(owner.operands[0])
    if source is None:
        return None
    if is_op(owner, "transpose"):
        axes = list(attribute(owner, "axes"))
        source = source.transpose(axes + list(range(len(axes), source.ndim)))
    return source.reshape(shape)


def _quantized(*values: SSAValue | None) -> bool:
    return any(v is not None and is_quantized(v) for v in values)


def _replace(rewriter: PatternRewriter, op: Operation, new_ops: list[Operation], values: list[SSAValue]) -> None:
    """`op`'s results replaced by `values` (made by `new_ops`, inserted before it), which
    take over the results' names and quantization and the op's attributes.
    Not xDSL's `replace`: that would name every unnamed new result after the op."""
    rewriter.insert(new_ops, InsertPoint.before(op))
    replacements = {}
    for old, new in zip(op.results, values):
        new.owner.attributes.update({k: v for k, v in op.attributes.items() if k not in ("nnef.explicit", NAMES)})
        replacements[old] = take_place(old, new)
    # Each user's operands set once: replacing result by result rewrites a user's whole
    # operand list per result, quadratic for a split into 10,000 graph outputs.
    users = dict.fromkeys(use.operation for old in replacements for use in old.uses)
    for user in users:
        user.operands = [replacements.get(operand, operand) for operand in user.operands]
        rewriter.notify_op_modified(user)
    rewriter.erase(op)


class ConstantAsVariable(RewritePattern):
    def __init__(self, names: _Names):
        self.names = names

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "constant") or is_literal(op) or op.parent_op() is None \
                or op.parent_op().name != "nnef.graph":
            return
        hint = tensor_name(op.results[0])
        data = constant_value(op)
        if data is None:
            return
        if data.shape == ():
            literal = OPERATIONS["constant"](properties=dict(op.properties), result_types=[op.results[0].type])
            literal.location = op.location
            new = OPERATIONS["copy"](operands=[literal.results[0]], result_types=[op.results[0].type])
            new_ops = [literal, new]
        elif is_one_value(data) and data.size > SMALL_ELEMENTS:
            # a file of 2^31 copies of one value is no spelling: one item, tiled
            item = self.names.variable(stored(data).reshape((1,) * data.ndim), hint or "constant", op, named=False)
            new = create("tile", [item.results[0]], {"repeats": list(data.shape)},
                         result_types=[op.results[0].type], like=op)
            new_ops = [item, new]
        else:
            new = self.names.variable(data, hint or "constant", op, named=False)
            new_ops = [new]
        new.location = op.location
        _replace(rewriter, op, new_ops, [new.results[0]])
        if EXPLICIT_TYPE in from_attribute(op.attributes.get("nnef.explicit", ArrayAttr([]))):
            new.attributes["nnef.explicit"] = to_attribute([EXPLICIT_TYPE])  # `<scalar>` as the source wrote it


@dataclass
class _Deconv:
    """A deconv's geometry, with the defaults and the automatic padding worked out."""

    groups: int
    stride: list[int]
    dilation: list[int]
    front: list[int]  # padding before, in the up-scaled (output) space
    extents: list[int]  # input spatial extents
    outputs: list[int]  # output spatial extents
    size: list[int]  # filter spatial extents


def _geometry(op: Operation, input_shape: tuple, filter_shape: tuple, output_shape: tuple) -> _Deconv:
    rank = len(input_shape) - 2
    extents, size, outputs = list(input_shape[2:]), list(filter_shape[2:]), list(output_shape[2:])
    stride = list(attribute(op, "stride") or [1] * rank)
    dilation = list(attribute(op, "dilation") or [1] * rank)
    padding = attribute(op, "padding") or []
    if padding:
        front = [p for p, _ in padding]
    else:  # total padding t = max((x - 1) s + f_d - X, 0), the smaller half in front
        front = [max((n - 1) * s + (k - 1) * d + 1 - m, 0) // 2
                 for n, k, s, d, m in zip(extents, size, stride, dilation, outputs)]
    groups = attribute(op, "groups") or input_shape[1]
    return _Deconv(groups, stride, dilation, front, extents, outputs, size)


class DeconvAsConv(RewritePattern):
    def __init__(self, names: _Names):
        self.names = names

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "deconv"):
            return
        x, result = op.input, op.results[0]
        shapes = [static_shape(x), static_shape(op.filter), static_shape(result)]
        weights = _known_array(op.filter)
        if None in shapes or weights is None or len(shapes[0]) < 3 or str(result.type.element_type) != "f32" \
                or _quantized(result, x, op.filter, op.bias):
            return
        border = attribute(op, "border")
        geometry = _geometry(op, *shapes)
        bias = op.bias
        bias_shape = None if bias is None else static_shape(bias)
        # a rank-0 bias (tract's `c_bias = 0.0;`) is one value for all channels too
        uniform = bias is None or is_literal(bias.owner) or (bias_shape is not None and math.prod(bias_shape) == 1)
        bias_values = None if uniform else _known_array(bias)  # one per channel, to repeat per tap
        if _is_depth_to_space(geometry) and (uniform or bias_values is not None):
            new_ops = self.depth_to_space(op, weights, bias_values, geometry)
        elif border in ("constant", "ignore"):  # 'ignore': the missing terms are zeros
            new_ops = self.zero_inserted(op, weights, geometry)
        else:
            return
        filter_, bias = op.filter, op.bias
        _replace(rewriter, op, new_ops, [new_ops[-1].results[0]])
        erase_if_dead(rewriter, filter_)
        erase_if_dead(rewriter, bias)

    def depth_to_space(self, op: Operation, weights: np.ndarray, bias_values: np.ndarray | None,
                       g: _Deconv) -> list[Operation]:
        name = tensor_name(op.results[0]) or "deconv"
        c_in, c_out_g = weights.shape[:2]
        blocks, rank, batch = math.prod(g.stride), len(g.stride), op.input.type.get_shape()[0]
        c_out = c_out_g * g.groups
        # conv filter [(group, o, a1, a2, ...), c]: an output channel per deconv output channel and tap
        filter_ = weights.reshape(g.groups, c_in // g.groups, c_out_g, blocks).transpose(0, 2, 3, 1)
        filter_ = filter_.reshape((c_out * blocks, c_in // g.groups) + (1,) * rank)
        new_ops = [self.names.variable(filter_, f"{name}_filter", op)]
        bias = op.bias
        if bias_values is not None:
            repeated = np.repeat(bias_values.reshape(-1), blocks).reshape(1, -1)
            new_ops.append(self.names.variable(repeated, f"{name}_bias", op))
            bias = new_ops[-1].results[0]
        attribs = {"padding": [(0, 0)] * rank, "stride": [1] * rank, "dilation": [1] * rank, "groups": g.groups}
        new_ops.append(create("conv", [op.input, new_ops[0].results[0], bias], attribs, like=op))
        if blocks == 1:
            return new_ops
        set_tensor_name(new_ops[-1].results[0], self.names.tensor(f"{name}_conv"))
        split = [batch, c_out, *g.stride, *g.extents]
        interleaved = [0, 1] + [a for i in range(rank) for a in (2 + rank + i, 2 + i)]
        merged = [batch, c_out] + [n * s for n, s in zip(g.extents, g.stride)]
        for kind, attribs in (("reshape", {"shape": split}), ("transpose", {"axes": interleaved}),
                              ("reshape", {"shape": merged})):
            new_ops.append(create(kind, [new_ops[-1].results[0]], attribs, like=op,
                                  name=self.names.tensor(f"{name}_{kind}")))
        return new_ops

    def zero_inserted(self, op: Operation, weights: np.ndarray, g: _Deconv) -> list[Operation]:
        name = tensor_name(op.results[0]) or "deconv"
        rank = len(g.stride)
        c_in, c_out_g = weights.shape[:2]
        # conv filter per group: [o, c] of the deconv's [c, o], spatial axes reversed
        filter_ = weights.reshape((g.groups, c_in // g.groups, c_out_g, *g.size)).swapaxes(1, 2)
        filter_ = filter_.reshape((g.groups * c_out_g, c_in // g.groups, *g.size))
        filter_ = filter_[(slice(None), slice(None)) + (slice(None, None, -1),) * rank]
        new_ops = [self.names.variable(filter_, f"{name}_filter", op)]
        value = op.input
        spread = [n * s for n, s in zip(g.extents, g.stride)]  # x[i] at i * s, then s - 1 zeros
        if any(s > 1 for s in g.stride):
            batch, channels = op.input.type.get_shape()[:2]
            steps = [
                ("unsqueeze", {"axes": [3 + 2 * i for i in range(rank)]}),
                ("pad", {"padding": [(0, 0)] * 2 + [q for s in g.stride for q in ((0, 0), (0, s - 1))]}),
                ("reshape", {"shape": [batch, channels, *spread]}),
            ]
            for kind, attribs in steps:
                new_ops.append(create(kind, [value], attribs, like=op, name=self.names.tensor(f"{name}_{kind}")))
                value = new_ops[-1].results[0]
        dilated = [(k - 1) * d + 1 for k, d in zip(g.size, g.dilation)]
        fronts = [f - 1 - p for f, p in zip(dilated, g.front)]
        backs = [m + p - z for m, p, z in zip(g.outputs, g.front, spread)]
        if any(p < 0 for p in fronts + backs):
            axes = [2 + i for i in range(rank)]
            begin = [max(-p, 0) for p in fronts]
            end = [z - max(-q, 0) for z, q in zip(spread, backs)]
            new_ops.append(create("slice", [value], {"axes": axes, "begin": begin, "end": end}, like=op,
                                  name=self.names.tensor(f"{name}_slice")))
            value = new_ops[-1].results[0]
        attribs = {"padding": [(max(p, 0), max(q, 0)) for p, q in zip(fronts, backs)], "stride": [1] * rank,
                   "dilation": list(g.dilation), "groups": g.groups}
        new_ops.append(create("conv", [value, new_ops[0].results[0], op.bias], attribs, like=op))
        return new_ops


def _is_depth_to_space(g: _Deconv) -> bool:
    return g.size == g.stride and not any(g.front) and all(d == 1 for d in g.dilation) \
        and g.outputs == [n * s for n, s in zip(g.extents, g.stride)]


class NearestUpsampleAsTile(RewritePattern):
    """[N, C, H, W] → reshape [N, C, H, 1, W, 1] → tile [1, 1, 1, a, 1, b] → reshape
    [N, C, H a, W b]: each element repeated a x b times, which is what nearest upsampling is."""

    def __init__(self, names: _Names):
        self.names = names

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        shape = static_shape(op.input) if is_op(op, "nearest_upsample") else None
        if shape is None or static_shape(op.results[0]) is None:
            return
        name = tensor_name(op.results[0]) or "upsample"
        factor = list(attribute(op, "factor"))
        spread = [*shape[:2], *(d for n in shape[2:] for d in (n, 1))]
        repeats = [1, 1, *(d for f in factor for d in (1, f))]
        new_ops, value = [], op.input
        for kind, attribs in (("reshape", {"shape": spread}), ("tile", {"repeats": repeats}),
                              ("reshape", {"shape": list(static_shape(op.results[0]))})):
            new_ops.append(_moving(create(kind, [value], attribs, like=op, name=self.names.tensor(f"{name}_{kind}"))))
            value = new_ops[-1].results[0]
        _replace(rewriter, op, new_ops, [value])


def _moving(op: Operation) -> Operation:
    """A new operation that only moves its operand's items, as an int8 engine moves codes:
    its result keeps the operand's quantization (none if the operand has none)."""
    quant = quantization_of(op.operands[0])
    if quant is None:
        return op
    moving = op.__class__(operands=list(op.operands), properties=dict(op.properties), attributes=dict(op.attributes),
                          result_types=[with_quantization(r.type, quant) for r in op.results])
    moving.location = op.location
    for old, new in zip(op.results, moving.results):
        set_tensor_name(new, tensor_name(old))
    return moving


class SplitAsSlices(RewritePattern):
    """split(x, axis, ratios) → one slice per part, over the extent its ratio gives."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        shape = static_shape(op.value) if is_op(op, "split") else None
        if shape is None:
            return
        axis, ratios = attribute(op, "axis"), list(attribute(op, "ratios"))
        unit = shape[axis] // sum(ratios)
        bounds = np.cumsum([0, *ratios]) * unit
        new_ops = [_moving(create("slice", [op.value], {"axes": [axis], "begin": [int(b)], "end": [int(e)]}, like=op))
                   for b, e in zip(bounds[:-1], bounds[1:])]
        _replace(rewriter, op, new_ops, [o.results[0] for o in new_ops])


class BatchedLinearAsMatmul(RewritePattern):
    """linear(input, filter, bias) on an input of rank > 2 → its body in the specification,
    add(matmul(input, filter, transposeB = true), bias'); no bias, no add. The filter has
    the input's rank already (linear's shape rule is its matmul's: equal ranks, batch axes
    of 1 broadcast, as in the Khronos parser). An add aligns shapes from the first axis
    (missing trailing axes are 1s), so bias' has the input's rank, its channels last."""

    def __init__(self, names: _Names):
        self.names = names

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        shape = static_shape(op.input) if is_op(op, "linear") else None
        if shape is None or len(shape) <= 2 or static_shape(op.results[0]) is None \
                or len(static_shape(op.filter) or ()) != len(shape) \
                or (op.bias is not None and static_shape(op.bias) is None) \
                or _quantized(op.results[0], op.input, op.filter, op.bias):
            return
        name = tensor_name(op.results[0]) or "linear"
        new_ops: list[Operation] = []
        bias = None if op.bias is None else self.aligned(op.bias, len(shape), f"{name}_bias", op, new_ops)
        new_ops.append(create("matmul", [op.input, op.filter], {"transposeB": True}, like=op))
        if bias is not None:
            set_tensor_name(new_ops[-1].results[0], self.names.tensor(f"{name}_matmul"))
            new_ops.append(create("add", [new_ops[-1].results[0], bias], like=op))
        old_bias = op.bias
        _replace(rewriter, op, new_ops, [new_ops[-1].results[0]])
        erase_if_dead(rewriter, old_bias)

    def aligned(self, bias: SSAValue, rank: int, base: str, like: Operation, new_ops: list[Operation]) -> SSAValue:
        """A per-channel bias as [1, ..., 1, C], of the given rank: a new weight if its values
        are known, else an unsqueeze (or a reshape, for more leading 1s than that rank)."""
        current = static_shape(bias)
        shape = (1,) * (rank - 1) + current[-1:]
        if current == shape or (len(current) <= rank and all(d == 1 for d in current)):  # one value broadcasts
            return bias
        data = _known_array(bias)
        if data is not None:
            new = self.names.variable(data.reshape(shape), base, like)
        elif len(current) < rank:
            new = create("unsqueeze", [bias], {"axes": list(range(rank - len(current)))}, like=like,
                         name=self.names.tensor(base))
        else:
            new = create("reshape", [bias], {"shape": list(shape)}, like=like, name=self.names.tensor(base))
        new_ops.append(new)
        return new.results[0]


# Functions of the syntax that give values, not tensors.
_VALUE_FUNCTIONS = {"shape_of", "length_of", "range_of", "scalar", "integer", "logical", "string"}


def _negate_tensors(fragment: ast.Fragment) -> bool:
    """`-e` → `neg(e)` where e is a tensor; True if anything changed."""
    tensors = {p.name for p in fragment.params if is_tensor_type(p.type)} | {r.name for r in fragment.results}

    def is_tensor(expr) -> bool:
        if isinstance(expr, ast.Invocation):
            return expr.name not in _VALUE_FUNCTIONS
        if isinstance(expr, ast.Identifier):
            return expr.name in tensors
        if isinstance(expr, ast.Comprehension):
            return False
        return any(is_tensor(v) for v in vars(expr).values() if hasattr(v, "__dataclass_fields__")) or any(
            is_tensor(item) for v in vars(expr).values() if isinstance(v, list) for item in v)

    for assignment in fragment.body or []:
        if is_tensor(assignment.rhs):
            tensors.update(n.name for n in ast.walk(assignment.lhs) if isinstance(n, ast.Identifier))

    def negated(value):
        if isinstance(value, ast.Unary) and value.op == "-" and is_tensor(value.operand):
            return ast.Invocation("neg", None, [ast.Argument(None, value.operand, value.loc)], value.loc)
        return value

    changed = False
    for node in list(ast.walk(fragment.body or [])):
        for field, value in vars(node).items():
            if isinstance(value, list):
                items = [negated(v) for v in value]
                if any(a is not b for a, b in zip(items, value)):
                    setattr(node, field, items)
                    changed = True
            elif negated(value) is not value:
                setattr(node, field, negated(value))
                changed = True
    return changed


def _portable_fragments(module: ModuleOp) -> None:
    for op in module.ops:
        if isinstance(op, FragmentOp):
            fragment = fragment_of(op)
            if _negate_tensors(fragment):
                op.properties["text"] = StringAttr(format_fragment(fragment))


def deconvs_as_convs(module: ModuleOp) -> None:
    """Only the deconv spelling: the quantize pass's portable profile quantizes the conv."""
    PatternRewriteWalker(DeconvAsConv(_Names(module))).rewrite_module(module)


@register_pass
@dataclass(frozen=True)
class PortableSpelling(ModulePass):
    """constant, deconv, split, nearest_upsample, batched linear and unary minus as every NNEF engine reads them."""

    name = "portable-spelling"

    def apply(self, ctx, op: ModuleOp) -> None:
        names = _Names(op)
        patterns = GreedyRewritePatternApplier(
            [ConstantAsVariable(names), DeconvAsConv(names), NearestUpsampleAsTile(names), SplitAsSlices(),
             BatchedLinearAsMatmul(names)],
            dce_enabled=False,  # a spelling changes, never which values the graph computes
        )
        PatternRewriteWalker(patterns).rewrite_module(op)
        _portable_fragments(op)
