"""Rules for free: the specification's compound fragments, read as equalities.

`relu(x) = max(x, 0.0)`, `linear = matmul + bias`, ...: every fragment of stdlib.nnef
whose body computes its one result from other operations gives two rules, `fold_<op>`
(the body becomes the operation) and `expand_<op>` (the operation becomes its body).
Fragments whose body computes attributes (`nearest_downsample`'s `[1] * dims`) or has
several results give no fold rule; those the rule form cannot state at all are listed,
with the reason, by `derive_stdlib_rules`.
"""

from __future__ import annotations

from functools import cache

from nnefopt.errors import NNEFError
from nnefopt.frontend import ast
from nnefopt.frontend.stdlib import standard_operations
from nnefopt.rules.nnef_syntax import build_rule, var_type
from nnefopt.rules.pattern import Rule


@cache
def derive_stdlib_rules() -> tuple[tuple[Rule, ...], tuple[tuple[str, str], ...]]:
    """(rules, skipped): both directions of each compound fragment that can be stated,
    and (rule name, reason) for each that cannot. Not yet verified."""
    rules, skipped = [], []
    for name, fragment in standard_operations().items():
        if fragment.body is None:
            continue
        try:
            body = _result_expression(fragment)
            variables = {p.name: var_type(p.type) for p in fragment.params}
        except NNEFError as error:
            skipped.append((name, error.message))
            continue
        call = ast.Invocation(name, None, [ast.Argument(p.name, ast.Identifier(p.name, p.loc)) for p in fragment.params],
                              fragment.loc)
        for rule_name, lhs, rhs in ((f"fold_{name}", body, call), (f"expand_{name}", call, body)):
            try:
                rules.append(build_rule(rule_name, variables, lhs, rhs, [], _names(fragment), fragment.loc,
                                        origin="stdlib"))
            except NNEFError as error:
                skipped.append((rule_name, error.message))
    return tuple(rules), tuple(skipped)


def _result_expression(fragment: ast.Fragment) -> ast.Expr:
    if len(fragment.results) != 1:
        raise NNEFError("a fragment of several results")
    result = fragment.results[0].name
    names = _names(fragment)
    if result not in names:
        raise NNEFError("its result is not assigned as one name")
    return names[result]


def _names(fragment: ast.Fragment) -> dict[str, ast.Expr]:
    names = {}
    for stmt in fragment.body or ():
        if not isinstance(stmt.lhs, ast.Identifier):
            raise NNEFError("its body assigns a tuple of results")
        names[stmt.lhs.name] = stmt.rhs
    return names
