"""The engines that apply a rule set to a module, by name (the rewrite pass's `engine=`).

`run_engine` is the one entry point: the equality-saturation engine joins here."""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp

from nnefopt.errors import NNEFError
from nnefopt.rules.greedy import Firing, apply_greedy
from nnefopt.rules.pattern import Rule

ENGINES = ("greedy",)


def run_engine(engine: str, module: ModuleOp, rules: list[Rule]) -> list[Firing]:
    """Rewrite `module` with verified `rules` by `engine`; what fired, in order."""
    if engine == "greedy":
        return apply_greedy(module, rules)
    raise NNEFError(f"unknown rewrite engine '{engine}' (engines: {', '.join(ENGINES)})")
