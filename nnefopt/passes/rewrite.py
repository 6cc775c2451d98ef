"""rewrite: apply a set of verified rewrite rules (nnefopt.rules) with an engine.

`rewrite{rules=PATH engine=greedy explain=true}`: the rules are read (a rule file, or
`standard`, `stdlib`, `registered`, joined with `+`), each rule that could fire on the
module (its root operation occurs in it) is verified first, and an unsound one stops the
pass with its counterexample. With exact, only rules exact in float32 (within 1 ulp) are
used. With explain, what fired (rule, place, cost before and
after) goes to stderr.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from nnefopt.passes import register_pass


@register_pass
@dataclass(frozen=True)
class Rewrite(ModulePass):
    """apply verified rewrite rules (rules=standard|stdlib|registered|FILE, engine=greedy)"""

    name = "rewrite"
    rules: str = "standard"
    engine: str = "greedy"
    explain: bool = False
    exact: bool = False  # use only the rules the verifier found exact (not those holding up to reassociation)

    def apply(self, ctx, op: ModuleOp) -> None:
        from nnefopt.rules.engines import run_engine
        from nnefopt.rules.greedy import explain, graph_cost
        from nnefopt.rules.rule_sets import load_rule_set
        from nnefopt.rules.verify import verified

        present = {o.name.removeprefix("nnef.") for o in op.walk()}
        rules = verified([r for r in load_rule_set(self.rules) if r.lhs.op in present])
        if self.exact:
            rules = [r for r in rules if r.exact]
        before = graph_cost(op)
        log = run_engine(self.engine, op, rules)
        if self.explain:
            explain(log, before, graph_cost(op))
