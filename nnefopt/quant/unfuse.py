"""Split fused `<base>_<activation>` operations (made by `fuse`) back into the two.

A quantized conv and its relu each carry the same entry; inside a fused fragment the
conv's output would have none, and an engine expanding the fragment (tract) meets a
convolution whose output is not quantized. Quantization wants the two operations.
"""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.rewriter import InsertPoint, Rewriter

from nnefopt.dialects.layout import is_channel_last, set_channel_last
from nnefopt.dialects.quantization import unquantized
from nnefopt.dialects.tensor_names import fresh_name, set_tensor_name, tensor_name
from nnefopt.export.from_ir import graph_of, tensor_names
from nnefopt.frontend.binder import is_tensor_type
from nnefopt.ops import entry_of
from nnefopt.passes.rewriting import Weights, attribute, create, take_place
from nnefopt.traits import ChannelLastCapable, Fused


def unfuse(module: ModuleOp) -> int:
    """Split every fused operation of the graph; returns how many."""
    graph = graph_of(module)
    fused = [op for op in graph.body.block.ops if op.has_trait(Fused)]
    if not fused:
        return 0
    taken = set(tensor_names(module).values())
    weights = Weights(module)
    for op in fused:
        _split(op, weights, taken)
    return len(fused)


def _split(op: Operation, weights: Weights, taken: set[str]) -> None:
    base_name, act_name = op.OP_DEF.slot("fused")
    base_entry, act_entry = entry_of(base_name), entry_of(act_name)
    result = op.results[0]
    base_attribs = {p.name: attribute(op, p.name) for p in base_entry.attribute_params}
    operands = [getattr(op, p.name) for p in base_entry.tensor_params]
    base = create(base_name, operands, base_attribs, result_types=[unquantized(result.type)], like=op)
    _keep_layout(base, op)
    name = tensor_name(result) or base_name
    set_tensor_name(base.results[0], fresh_name(f"{name}_{base_name}", taken))
    new_ops: list[Operation] = [base]
    act_operands = [base.results[0]]
    act_attribs = {}
    for param in act_entry.signature.params[1:]:
        if is_tensor_type(param.type):  # clamp's bounds: literals again
            literal = weights.new(np.float32(attribute(op, param.name)), param.name, like=op)
            new_ops.append(literal)
            act_operands.append(literal.results[0])
        else:
            act_attribs[param.name] = attribute(op, param.name)
    act = create(act_name, act_operands, act_attribs, result_types=[result.type], like=op)
    _keep_layout(act, op)
    new_ops.append(act)
    for new in new_ops:
        Rewriter.insert_op(new, InsertPoint.before(op))
    value = take_place(result, act.results[0])
    result.replace_all_uses_with(value)
    Rewriter.erase_op(op)


def _keep_layout(new: Operation, fused: Operation) -> None:
    """The fused operation's layout on a part that has one (an element-wise activation
    is the same in any layout, and has no layout property)."""
    if new.has_trait(ChannelLastCapable):
        set_channel_last(new, is_channel_last(fused))
