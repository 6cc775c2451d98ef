"""Rewrite rules anyone can write, each verified before it is used.

- `pattern`: the one internal form (Rule, patterns, guards; matching and instantiation);
- `nnef_syntax`: rules as NNEF text (`rule name( x: tensor<scalar> ) { max(x, 0.0) => relu(x); }`);
- `python_api`: `@rule` functions and `Rule.from_functions`, `register_rule`, `rules()`;
- `stdlib_rules`: both directions of the specification's compound fragments;
- `verify`: both sides through the reference interpreter on hypothesis-drawn inputs;
- `greedy`: the rules as xDSL RewritePatterns; `engines.run_engine` picks an engine;
- `rule_sets`: `standard` (standard.nnef), `stdlib`, `registered` or a file.
"""

from nnefopt.rules.nnef_syntax import parse_rules, read_rules
from nnefopt.rules.pattern import Rule
from nnefopt.rules.python_api import Tensor, from_functions, ops, register_rule, rule, rules
from nnefopt.rules.rule_sets import load_rule_set
from nnefopt.rules.verify import UnsoundRule, Verdict, verified, verify

__all__ = ["Rule", "parse_rules", "read_rules", "Tensor", "from_functions", "ops", "register_rule", "rule",
           "rules", "load_rule_set", "UnsoundRule", "Verdict", "verified", "verify"]
