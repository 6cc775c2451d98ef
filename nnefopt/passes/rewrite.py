"""rewrite: apply a set of verified rewrite rules (nnefopt.rules) with an engine.

`rewrite{rules=PATH engine=greedy explain=true}`: the rules are read (a rule file, or
`standard`, `stdlib`, `registered`, joined with `+`), each rule that could fire on the
module (its operations occur in it, or in what another such rule or the engine makes:
rule_sets.rules_that_could_fire) is verified first, and an unsound one stops the
pass with its counterexample. With exact, only rules exact in float32 (within 1 ulp) are
used. With explain, what fired (rule, place, cost before and
after) goes to stderr.

With engine=eqsat (equality saturation, nnefopt.rules.eqsat), also:
- `extract=greedy|exact`: greedy-DAG extraction (the default), or an exhaustive branch
  and bound seeded with it (never worse; past its budget the greedy choice stays, noted
  under explain);
- `node-limit=50000`, `iteration-limit=30`, `time-limit=60` (seconds): saturation stops
  at the first reached (explain says which, and the e-graph's size).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from nnefopt.passes import register_pass


@register_pass
@dataclass(frozen=True)
class Rewrite(ModulePass):
    """apply verified rewrite rules (rules=standard|stdlib|registered|FILE, engine=greedy|eqsat)"""

    name = "rewrite"
    rules: str = "standard"
    engine: str = "greedy"
    explain: bool = False
    exact: bool = False  # use only the rules the verifier found exact (not those holding up to reassociation)
    extract: str = "greedy"  # eqsat: greedy (greedy-DAG) or exact
    node_limit: int = 50_000  # eqsat: e-nodes
    iteration_limit: int = 30  # eqsat: saturation iterations
    time_limit: int | float = 60  # eqsat: seconds of saturation (10 or 2.5)

    def apply(self, ctx, op: ModuleOp) -> None:
        from nnefopt.rules.engines import engine_products, run_engine
        from nnefopt.rules.greedy import explain, graph_cost
        from nnefopt.rules.rule_sets import load_rule_set, rules_that_could_fire
        from nnefopt.rules.verify import verified

        present = {o.name.removeprefix("nnef.") for o in op.walk()} | engine_products(self.engine)
        rules = verified(rules_that_could_fire(load_rule_set(self.rules), present))
        if self.exact:
            rules = [r for r in rules if r.exact]
        before = graph_cost(op)
        options = {}
        if self.engine == "eqsat":
            options = {"extract": self.extract, "node_limit": self.node_limit,
                       "iteration_limit": self.iteration_limit, "time_limit": self.time_limit}
        log = run_engine(self.engine, op, rules, **options)
        if self.explain:
            explain(log, before, graph_cost(op))
            stats = getattr(log, "stats", None)
            if stats is not None:
                print(stats, file=sys.stderr)
