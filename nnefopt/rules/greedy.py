"""The greedy engine: each rule an xDSL RewritePattern, applied by PatternRewriteWalker.

A match fires when its right-hand side is cheaper than what it replaces: the matched
operations whose values nothing outside the match reads (the rest stay), against the new
ones, by FLOPs plus bytes moved (the op table's cost rules), then by operation count.
Every firing lowers that measure, so the walk ends even on a rule set that holds both
directions of an equality (relu => max(x, 0.0) and back); the order of the rules and of
the walk decides which of two overlapping rewrites wins: greedy, as it says.
Operations are visited in program order, rules in the order given: the same module and
rules give the same result every run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
)
from xdsl.rewriter import InsertPoint

from nnefopt.costs import Cost
from nnefopt.dialects.nnef import OPERATIONS
from nnefopt.dialects.tensor_names import tensor_name
from nnefopt.export.from_ir import location_of
from nnefopt.info import operation_cost
from nnefopt.passes.rewriting import erase_with_dead_producers, is_quantized, replace_value
from nnefopt.rules.pattern import CannotBuild, Rule, instantiate, match
from nnefopt.traits import TensorSource


@dataclass(frozen=True)
class Firing:
    """One rewrite: which rule, where, and the matched region's cost before and after."""

    rule: str
    place: str
    ops_before: int
    ops_after: int
    cost_before: object  # FLOPs + bytes moved
    cost_after: object

    def __str__(self) -> str:
        return (f"rewrite: {self.rule} at {self.place}: {self.ops_before} ops -> {self.ops_after}, "
                f"cost (FLOPs + bytes) {self.cost_before} -> {self.cost_after}")


def cost_measure(cost: Cost) -> object:
    """The one measure both engines minimize: an operation's FLOPs plus bytes moved."""
    return cost.flops + cost.bytes_read + cost.bytes_written


def _cost(ops: list[Operation]) -> object:
    total = 0
    for op in ops:
        total += cost_measure(operation_cost(op))
    return total


def _cheaper(after: tuple, before: tuple) -> bool:
    try:
        return (float(after[0]), after[1]) < (float(before[0]), before[1])
    except TypeError:  # symbolic dims: the counts are expressions; compare operation counts
        return after[1] < before[1]


def _replaced(found_ops: list[Operation]) -> list[Operation] | None:
    """The matched operations the rewrite removes: the root, and each other one whose
    results only matched operations read; None when an inner operation's value is read
    outside the match (it would stay, and the rewrite compute it twice)."""
    inside = set(found_ops)
    removed = [found_ops[0]]
    for op in dict.fromkeys(found_ops[1:]):
        uses = [use.operation for result in op.results for use in result.uses]
        if all(user in inside for user in uses):
            removed.append(op)
        elif not op.has_trait(TensorSource):  # a constant or weight read elsewhere too simply stays
            return None
    return removed


def place_of(op: Operation) -> str:
    name = tensor_name(op.results[0]) if op.results else None
    loc = location_of(op)
    where = f"{loc} " if loc.line else ""
    return f"{where}%{name or '?'} ({op.name})"


class RulePattern(RewritePattern):
    """One rule as an xDSL rewrite pattern."""

    def __init__(self, rule: Rule, log: list[Firing]):
        self.rule, self.log = rule, log
        self.root = OPERATIONS[rule.lhs.op]

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, self.root):
            return
        found = match(self.rule, op)
        if found is None:
            return
        removed = _replaced(found.ops)
        if removed is None or any(is_quantized(r) for o in removed for r in o.results):
            return  # graph.quant rounds a quantized value: the real-number rule does not say what it becomes
        old: SSAValue = op.results[0]
        try:
            new, new_ops = instantiate(self.rule.rhs, found, old.type.element_type)
        except CannotBuild:
            return
        before = (_cost(removed), len(removed))
        after = (_cost(new_ops), len(new_ops))
        if new.type != old.type or not _cheaper(after, before):
            _discard(new_ops)
            return
        place = place_of(op)
        for created in new_ops:
            created.location = op.location
            rewriter.insert(created, InsertPoint.before(op))
        if not replace_value(rewriter, old, new):
            for created in reversed(new_ops):
                rewriter.erase_op(created)
            return
        erase_with_dead_producers(rewriter, op)
        self.log.append(Firing(self.rule.name, place, before[1], after[1], before[0], after[0]))


def _discard(ops: list[Operation]) -> None:
    """New operations never inserted: drop the uses they hold of existing values."""
    for op in reversed(ops):
        op.drop_all_references()


def apply_greedy(module: ModuleOp, rules: list[Rule]) -> list[Firing]:
    """Rewrite `module` with `rules` to a fixed point; what fired, in order."""
    log: list[Firing] = []
    patterns = [RulePattern(rule, log) for rule in rules]
    if patterns:
        PatternRewriteWalker(GreedyRewritePatternApplier(patterns, dce_enabled=False), apply_recursively=True).rewrite_module(module)
    return log


def graph_cost(module: ModuleOp) -> tuple[int, object]:
    """(operations, FLOPs + bytes moved) of the module's graph."""
    ops = [op for op in module.walk() if hasattr(op, "OP_DEF")]
    return len(ops), _cost(ops)


def explain(log: list[Firing], before: tuple, after: tuple, out=None) -> None:
    out = out or sys.stderr
    for firing in log:
        print(firing, file=out)
    print(f"rewrite: {len(log)} rewrites; graph {before[0]} ops -> {after[0]}, "
          f"cost (FLOPs + bytes) {before[1]} -> {after[1]}", file=out)
