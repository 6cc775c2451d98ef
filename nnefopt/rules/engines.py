"""The engines that apply a rule set to a module, by name (the rewrite pass's `engine=`).

`run_engine` is the one entry point:
- `greedy`: each rule a RewritePattern under PatternRewriteWalker (greedy.py);
- `eqsat`: equality saturation and extraction (eqsat.py); its options (`extract`,
  `node_limit`, `iteration_limit`, `time_limit`) go through `options`, and the list it
  returns carries the run's stats (`log.stats`: e-graph size, stop reason, costs)."""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp

from nnefopt.errors import NNEFError
from nnefopt.rules.greedy import Firing, apply_greedy
from nnefopt.rules.pattern import Rule

ENGINES = ("greedy", "eqsat")


def engine_products(engine: str) -> frozenset[str]:
    """The operations `engine` may make of its own, beyond its rules' replacements
    (eqsat's merges: a split, a concat), for rules_that_could_fire."""
    if engine == "eqsat":
        from nnefopt.rules.merge_rules import MERGE_PRODUCTS

        return MERGE_PRODUCTS
    return frozenset()


def run_engine(engine: str, module: ModuleOp, rules: list[Rule], **options) -> list[Firing]:
    """Rewrite `module` with verified `rules` by `engine`; what fired, in order."""
    if engine == "greedy":
        return apply_greedy(module, rules)
    if engine == "eqsat":
        from nnefopt.rules.eqsat import apply_eqsat

        return apply_eqsat(module, rules, **options)
    raise NNEFError(f"unknown rewrite engine '{engine}' (engines: {', '.join(ENGINES)})")
