"""lower-tract: tract's core operations in their standard NNEF spelling.

nnefopt writes specification-valid NNEF, so this pass runs before every NNEF export;
it is a pass of its own so that its effect can be seen and tested in the IR.

- tract_core_external(shape, datum_type) → external<type>(shape)
- tract_core_cast(x) → copy(x) when the target is a real type or comes from graph.quant
  (a quantized tensor's values are real numbers: graph.quant says how they are
  rounded), cast<type>(x) otherwise; a cast to f16 stays, as no standard operation
  rounds to half precision (a copy would lose that rounding); a cast dequantizing a
  quantized tensor for a float operation stays too: tract has no other spelling of it
- tract_core_erf(x) → erf(x), which nnefopt declares in what it writes; square(x) → sqr(x)
- tract_core_resize(x, scales = [1, 1, k, ...]) with the nearest interpolator and the
  'asymmetric' coordinates (floor) → nearest_upsample(x, factor = [k, ...])

An operation with no standard equivalent (another resize mode, say) stays, and the
exporter names it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import ArrayAttr, ModuleOp, StringAttr, TensorType, f32
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriter, PatternRewriteWalker, RewritePattern
from xdsl.rewriter import InsertPoint

from nnefopt.dialects.nnef import OPERATIONS, FragmentOp, OpaqueOp, ReturnOp, dtype_of, from_attribute, to_attribute
from nnefopt.dialects.quantization import quantization, quantization_of, with_quantization
from nnefopt.dialects.tensor_names import set_tensor_name, tensor_name
from nnefopt.export.from_ir import is_literal as _is_literal
from nnefopt.export.from_ir import fragment_of, module_extensions
from nnefopt.frontend import ast
from nnefopt.frontend.printer import format_fragment
from nnefopt.frontend.stdlib import is_tract_dialect
from nnefopt.passes import register_pass
from nnefopt.passes.rewriting import is_op, is_quantized, known_value
from nnefopt.traits import Biased

_REAL_TYPES = ("", "f32", "f64")
_ROUNDING_TYPES = ("f16",)  # real types narrower than an NNEF scalar


def _replace(rewriter: PatternRewriter, op: Operation, name: str, operands: list, properties: dict) -> None:
    new = OPERATIONS[name](operands=operands, properties=properties, result_types=[r.type for r in op.results])
    new.attributes.update(op.attributes)
    new.location = op.location
    for old, fresh in zip(op.results, new.results):
        set_tensor_name(fresh, tensor_name(old))
    rewriter.replace(op, new)


class LowerExternal(RewritePattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if is_op(op, "tract_core_external"):
            _replace(rewriter, op, "external", [], {"shape": op.properties["shape"]})


class LowerCast(RewritePattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "tract_core_cast"):
            return
        to = from_attribute(op.properties["to"]) if "to" in op.properties else ""
        source = op.operands[0]
        if to in _ROUNDING_TYPES:
            return
        if is_quantized(source) and not is_quantized(op.results[0]) \
                and any(not isinstance(use.operation, ReturnOp) for use in op.results[0].uses):
            return  # a float operation reads it dequantized: in tract a copy would stay quantized
        if to not in _REAL_TYPES and dtype_of(op.results[0].type) != "scalar":
            _replace(rewriter, op, "cast", [source], {})
        elif dtype_of(source.type) in ("scalar", "?"):
            _replace(rewriter, op, "copy", [source], {})  # real already, or settled by graph.quant
        elif _is_literal(source.owner):  # tract_core_cast(16, to = 'f32'): the literal 16.0
            value = float(from_attribute(source.owner.properties["value"])[0])
            literal = OPERATIONS["constant"](properties={"shape": to_attribute([]), "value": to_attribute([value])},
                                             result_types=[op.results[0].type.__class__(f32, [])])
            rewriter.insert(literal, InsertPoint.before(op))
            _replace(rewriter, op, "copy", [literal.results[0]], {})
        else:
            _replace(rewriter, op, "cast", [source], {})


class LowerErf(RewritePattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if is_op(op, "tract_core_erf"):
            _replace(rewriter, op, "erf", [op.operands[0]], {})
        elif is_op(op, "square"):
            _replace(rewriter, op, "sqr", [op.operands[0]], {})


class LowerNearestResize(RewritePattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "tract_core_resize"):
            return
        props = {k: from_attribute(v) for k, v in op.properties.items() if k != "operandSegmentSizes"}
        if props.get("interpolator") != "nearest" or props.get("coord_transformer") != "asymmetric" \
                or props.get("nearest_mode", "floor") != "floor":
            return
        scales = None if op.scales is None else known_value(op.scales)
        scales = None if scales is None else scales.reshape(-1)
        if scales is None or len(scales) < 3 or list(scales[:2]) != [1, 1] \
                or not all(float(s).is_integer() and s >= 1 for s in scales[2:]):
            return
        factor = [int(s) for s in scales[2:]]
        _replace(rewriter, op, "nearest_upsample", [op.input], {"factor": to_attribute(factor)})


class QuantizedAsReal(RewritePattern):
    """tract stores a quantized tensor as integers; in standard NNEF it is a real tensor
    whose values graph.quant rounds. An integer bias of a quantized convolution or
    linear gets the entry tract leaves implicit: the accumulator's scale."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        for result in op.results:
            quant = quantization_of(result)
            if quant is not None and dtype_of(result.type) == "integer":  # the new value keeps its place's name
                rewriter.replace_value_with_new_type(result, with_quantization(TensorType(f32, result.type.get_shape()), quant))
        if not op.has_trait(Biased) or op.bias is None:
            return
        bias, scales = op.bias, [_quant_scale(v) for v in (op.input, op.filter)]
        owner = bias.owner
        if dtype_of(bias.type) != "integer" or None in scales or not isinstance(owner, Operation) \
                or owner.name != "nnef.variable" or quantization_of(bias) is not None:
            return
        accumulator = np.float32(scales[0]) * np.asarray(scales[1], np.float32)  # per channel: one per channel
        quant = quantization("zero_point_linear_quantize", {
            "zero_point": 0, "scale": float(accumulator) if accumulator.ndim == 0 else [float(a) for a in accumulator],
            "bits": 32, "signed": True, "symmetric": False})
        rewriter.replace_value_with_new_type(bias, with_quantization(TensorType(f32, bias.type.get_shape()), quant))


def _quant_scale(value) -> float | None:
    quant = quantization_of(value)
    if quant is None or "scale" not in quant.arguments.data:
        return None
    return from_attribute(quant.arguments.data["scale"])


_BODY_RENAMES = {"tract_core_erf": "erf", "square": "sqr"}


def _lower_fragments(module: ModuleOp) -> None:
    """Fragment bodies call the same operations; tract's properties are metadata with no
    standard form (strings in a tensor position), so they go."""
    for op in list(module.ops):
        if not isinstance(op, FragmentOp):
            continue
        if op.sym_name.data == "tract_core_properties":
            module.body.block.erase_op(op)
            continue
        fragment = fragment_of(op)
        for node in ast.walk(fragment.body or []):
            if isinstance(node, ast.Invocation):
                node.name = _BODY_RENAMES.get(node.name, node.name)
        op.properties["text"] = StringAttr(format_fragment(fragment))


def _drop_unused_registries(module: ModuleOp) -> None:
    """`extension tract_registry R;` stays while an operation named R_... remains, and
    every registry stays while an operation of none of them does (a reader takes such an
    operation only from a document that declares a registry)."""
    items = module.attributes.get("nnef.extensions", ArrayAttr([])).data
    registries = [e.data.split(" ", 1)[1] for e in items if e.data.startswith("tract_registry ")]
    ops = list(module.walk())
    names = {o.op_name.data if isinstance(o, OpaqueOp) else o.name.removeprefix("nnef.") for o in ops}
    texts = [o.text.data for o in module.ops if isinstance(o, FragmentOp)]
    orphan = any(isinstance(o, OpaqueOp) and not any(o.op_name.data.startswith(r + "_") for r in registries)
                 for o in ops)

    def used(registry: str) -> bool:
        prefix = registry + "_"
        return orphan or any(n.startswith(prefix) for n in names) or any(prefix in t for t in texts)

    kept = [e for e in items if not (e.data.startswith("tract_registry ") and not used(e.data.split(" ", 1)[1]))]
    module.attributes["nnef.extensions"] = ArrayAttr(kept)


@register_pass
@dataclass(frozen=True)
class LowerTract(ModulePass):
    """tract's core operations as standard NNEF operations where one is equivalent."""

    name = "lower-tract"

    def apply(self, ctx, op: ModuleOp) -> None:
        if not is_tract_dialect(module_extensions(op)):
            # a quantized layer's int32 bias, standard NNEF as well: `variable<integer>` is no
            # conv/linear bias for the Khronos parser; tract reads the real one alike
            PatternRewriteWalker(QuantizedAsReal()).rewrite_module(op)
            return
        patterns = GreedyRewritePatternApplier(
            [LowerExternal(), LowerCast(), LowerErf(), LowerNearestResize(), QuantizedAsReal()],
            dce_enabled=False,  # lowering changes spellings, never which operations there are
        )
        PatternRewriteWalker(patterns).rewrite_module(op)
        _lower_fragments(op)
        _drop_unused_registries(op)
