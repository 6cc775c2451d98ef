"""fold-constants: an operation whose tensor operands are all known (constants, variables
with data) is computed now, by the reference interpreter, and replaced by its value.

A value of rank 0 becomes a literal, one value broadcast a constant, anything else a
new variable, which the exporter writes as a `.dat` file of its own. What may be folded
is bounded (rewriting.affordable): an operand or result of more than `max-elements`
items stays, so does a result more than a few times larger than what its operands store
(a `tile`, `pad` or broadcast of a small tensor, a one-value constant declared with 2^31
items): folding it would trade one line of the graph for a large file and as much
memory. Quantized tensors are never folded: graph.quant rounds their values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriter, PatternRewriteWalker, RewritePattern
from xdsl.transforms.dead_code_elimination import is_trivially_dead

from nnefopt.dialects.nnef import dtype_of
from nnefopt.errors import NNEFError
from nnefopt.dialects.tensor_names import set_tensor_name, tensor_name
from nnefopt.export.from_ir import module_extensions
from nnefopt.frontend.fragments import NoMeaning
from nnefopt.frontend.stdlib import known_operations
from nnefopt.dtypes import NUMPY_TYPES
from nnefopt.interp.interpreter import ArrayDomain
from nnefopt.interp.ir_binding import bind_operation
from nnefopt.passes import register_pass
from nnefopt.passes.rewriting import (
    MAX_ELEMENTS,
    Weights,
    affordable,
    erase_with_dead_producers,
    is_known,
    is_one_value,
    is_quantized,
    known_value,
    replace_value,
    static_shape,
    stored,
)
from nnefopt.traits import ElementWise, NotFoldable


def evaluate(op: Operation, domain: ArrayDomain, operands: list[np.ndarray] | None = None) -> list[np.ndarray] | None:
    """The results of a table operation whose tensor operands are known (or the arrays
    `operands`); None when the interpreter cannot compute it (no kernel, or the kernel
    refuses the values). It is computed by the IR interpreter's binding of the
    operation, as a plan would run it."""
    if getattr(op, "OP_DEF", None) is None:
        return None
    slot_of = {v: i for i, v in enumerate([*op.operands, *op.results])}
    operands = [known_value(v) for v in op.operands] if operands is None else operands
    values = list(operands) + [None] * len(op.results)
    try:
        bind_operation(op, slot_of, domain)(values)
    except (NNEFError, NoMeaning):
        return None
    computed = values[len(op.operands):]
    return [np.asarray(a, NUMPY_TYPES.get(dtype_of(r.type), None)) for a, r in zip(computed, op.results)]


class FoldKnownOperation(RewritePattern):
    def __init__(self, weights: Weights, domain: ArrayDomain, max_elements: int):
        self.weights, self.domain, self.max_elements = weights, domain, max_elements

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if is_trivially_dead(op):  # what the sweep meets dead goes, and what only it read
            erase_with_dead_producers(rewriter, op)
            return
        entry = getattr(op, "OP_DEF", None)
        # inputs, weights and effects (NotFoldable) are what the graph is made of
        if entry is None or entry.has_trait(NotFoldable) or not op.operands or not op.results:
            return
        if any(is_quantized(r) for r in op.results):
            return
        if not all(is_known(v) for v in op.operands):
            return
        if entry.name == "copy":  # the value itself: no new file for the same numbers
            if replace_value(rewriter, op.results[0], op.operands[0]):
                rewriter.erase(op)
            return
        shapes = [static_shape(r) for r in op.results]
        if None in shapes:
            return
        if entry.has_trait(ElementWise) and all(is_one_value(known_value(v)) for v in op.operands):
            if sum(math.prod(s) for s in shapes) > self.max_elements:
                return
            values = self.evaluate_one_value(op, shapes)  # one value in, one value out, as a constant
        elif self.affordable(op, sum(math.prod(s) for s in shapes)):
            values = self.evaluate(op)
        else:
            return
        if values is None:
            return
        for result, value in zip(op.results, values):
            if value.shape != static_shape(result):
                return
        for result, value in zip(list(op.results), values):
            fresh = self.weights.insert(rewriter, value, self.label_hint(op), op)
            if tensor_name(result):  # the tensor keeps its name; its file says where it came from
                set_tensor_name(fresh, tensor_name(result))
            if not replace_value(rewriter, result, fresh):
                rewriter.erase(fresh.owner)
        if all(not r.uses for r in op.results):
            erase_with_dead_producers(rewriter, op)

    def affordable(self, op: Operation, elements: int) -> bool:
        # a kernel may copy an operand (a cast, a padded border): a declared-only
        # operand of 2^31 items stays unread however small the result
        operands = [static_shape(v) for v in op.operands]
        if any(s is None or math.prod(s) > self.max_elements for s in operands):
            return False
        return affordable(elements, op.operands, self.max_elements)

    def evaluate(self, op: Operation, operands: list[np.ndarray] | None = None) -> list[np.ndarray] | None:
        with np.errstate(all="ignore"):
            return evaluate(op, self.domain, operands)

    def evaluate_one_value(self, op: Operation, shapes: list[tuple[int, ...]]) -> list[np.ndarray] | None:
        """An element-wise operation of one-value operands, computed on the one value of
        each and broadcast to the result: a view, which becomes a one-value constant."""
        values = self.evaluate(op, [stored(known_value(v)).reshape(()) for v in op.operands])
        if values is None or any(v.size != 1 for v in values):
            return None
        return [np.broadcast_to(v.reshape(()), shape) for v, shape in zip(values, shapes)]

    def label_hint(self, op: Operation) -> str:
        """The label of the weight the value derives from, so the file keeps its origin."""
        for operand in op.operands:
            owner = operand.owner
            if isinstance(owner, Operation) and owner.name == "nnef.variable":
                return self.weights.origin(owner)
        return tensor_name(op.results[0]) or op.name.removeprefix("nnef.")


@register_pass
@dataclass(frozen=True)
class FoldConstants(ModulePass):
    """compute operations on constants and weights now, as new weights"""

    name = "fold-constants"
    max_elements: int = MAX_ELEMENTS

    def apply(self, ctx, op: ModuleOp) -> None:
        domain = ArrayDomain(known_operations(module_extensions(op)))
        pattern = FoldKnownOperation(Weights(op), domain, self.max_elements)
        # One sweep in program order is enough: an operation's operands come before it,
        # so each is folded, or known not to fold, by the time its users are looked at.
        # Sweeping again until nothing changes, as xDSL would, only re-reads the module.
        applier = GreedyRewritePatternApplier([pattern], dce_enabled=False)  # the pattern erases dead code
        PatternRewriteWalker(applier, apply_recursively=False).rewrite_module(op)
