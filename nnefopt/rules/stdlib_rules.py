"""Rules for free: the specification's compound fragments, read as equalities.

`relu(x) = max(x, 0.0)`, `linear = matmul + bias`, ...: every fragment of stdlib.nnef
whose body computes its one result from other operations gives two rules, `fold_<op>`
(the body becomes the operation) and `expand_<op>` (the operation becomes its body).
Fragments whose body computes attributes (`nearest_downsample`'s `[1] * dims`) or has
several results give no fold rule; those the rule form cannot state at all are listed,
with the reason, by `derive_stdlib_rules`.

A fold rule holds only where the operation it makes is defined: each carries the guard
that the op table's shape rule accepts the matched shapes and attributes (the body
`select(x < 0.0, alpha * x, x)` broadcasts an alpha that `prelu` refuses). Where the op
table is wider than the specification (a `[C]` bias for `linear`, which the body's
left-aligned broadcast adds along the wrong axis), a written guard keeps both directions
to where the body and the operation agree.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache

from nnefopt.errors import NNEFError
from nnefopt.frontend import ast
from nnefopt.frontend.stdlib import standard_operations
from nnefopt.frontend.parser import Parser
from nnefopt.rules.nnef_syntax import build_rule, var_type
from nnefopt.rules.pattern import Env, Guard, OpPattern, Rule, Var, value_of

# Guards (NNEF expressions) for both directions of a fragment's rules, where the body and
# the operation agree only on part of what the op table accepts.
GUARDS = {
    # a bias of the output's rank ([1, C], [1, 1, C]) or one value: linear adds it per
    # channel, the body's `+` aligns it from the left; a [C] bias differs
    "linear": ["rank(bias) == rank(input) || rank(bias) == 0"],
}

# Fragments whose rules stay out of the set, and why.
LEFT_OUT = {
    # a depth-wise filter [C, 1, h, w] and a point-wise [O, C, 1, 1] that fit the input:
    # the verifier's random shapes almost never meet all of it, so it cannot vouch for them
    "separable_conv": "the verifier finds too few shapes on which it applies",
    "separable_deconv": "the verifier finds too few shapes on which it applies",
}


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
        guards = [_expression(text) for text in GUARDS.get(name, ())]
        for rule_name, lhs, rhs in ((f"fold_{name}", body, call), (f"expand_{name}", call, body)):
            if name in LEFT_OUT:
                skipped.append((rule_name, LEFT_OUT[name]))
                continue
            try:
                rule = build_rule(rule_name, variables, lhs, rhs, guards, _names(fragment), fragment.loc,
                                  origin="stdlib")
            except NNEFError as error:
                skipped.append((rule_name, error.message))
                continue
            rules.append(_defined_where_made(rule) if rule_name.startswith("fold_") else rule)
    return tuple(rules), tuple(skipped)


def _expression(text: str) -> ast.Expr:
    return Parser(text, "<nnefopt>/rules/stdlib_rules.py").expression()


def _defined_where_made(rule: Rule) -> Rule:
    """`rule` with the guard that its right-hand side's operation accepts the matched
    shapes and attributes (its shape rule, as when the operation is built)."""
    from nnefopt.ops import entry_of
    from nnefopt.shapes import unary

    made = rule.rhs
    assert isinstance(made, OpPattern) and all(isinstance(p, Var) or p is None for _, p in made.operands)
    shape_rule = entry_of(made.op).shape_rule
    if shape_rule is None or shape_rule is unary:  # the unary rule accepts every shape
        return rule

    def accepts(env: Env) -> bool:
        shapes = [None if p is None else env.shape(p.name) for _, p in made.operands]
        shape_rule(*shapes, **{name: value_of(p, env) for name, p in made.attributes})
        return True  # a refusal raises ValueError: the guard does not hold

    return replace(rule, guards=(*rule.guards, Guard(f"{made.op} accepts the shapes", accepts)))


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
