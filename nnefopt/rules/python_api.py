"""Rules in Python, for researchers who would rather write code than NNEF text.

    from nnefopt.rules import ops, rule, register_rule

    @rule(guards=["a >= 0.0 && a <= 1.0"])
    def fold_leaky_relu(x, a: float):
        return ops.max(x, x * a), ops.leaky_relu(x, alpha=a)

    register_rule(fold_leaky_relu)

A rule function takes the pattern variables (unannotated or `Tensor`: a tensor; `float`,
`int`, `bool`, `str`, `list[int]`, ...: an attribute) and returns the two sides, built
with `ops.<operation>(...)` and Python's operators, which mean what NNEF's do. Guards are
NNEF expressions (strings) or Python callables taking a `pattern.Env`. Everything ends up
as the NNEF syntax tree the rule files give, converted by the same code.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from nnefopt.errors import Location
from nnefopt.frontend import ast
from nnefopt.frontend.parser import Parser
from nnefopt.rules.nnef_syntax import build_rule
from nnefopt.rules.pattern import Guard, Rule, VarType


class Tensor:
    """The annotation of a tensor variable (the default)."""


_ANNOTATIONS = {float: VarType("scalar"), int: VarType("integer"), bool: VarType("logical"),
                str: VarType("string"), list[int]: VarType("integer", True), list[float]: VarType("scalar", True),
                list[bool]: VarType("logical", True)}

_BY_TEXT = {"float": float, "int": int, "bool": bool, "str": str, "list[int]": list[int], "list[float]": list[float],
            "list[bool]": list[bool]}


class Term:
    """An NNEF expression under construction."""

    def __init__(self, expr: ast.Expr):
        self.expr = expr

    def _binary(self, op: str, other: object, reverse: bool = False) -> "Term":
        left, right = (to_expr(other), self.expr) if reverse else (self.expr, to_expr(other))
        return Term(ast.Binary(op, left, right))

    def __add__(self, other): return self._binary("+", other)  # noqa: E704
    def __radd__(self, other): return self._binary("+", other, True)  # noqa: E704
    def __sub__(self, other): return self._binary("-", other)  # noqa: E704
    def __rsub__(self, other): return self._binary("-", other, True)  # noqa: E704
    def __mul__(self, other): return self._binary("*", other)  # noqa: E704
    def __rmul__(self, other): return self._binary("*", other, True)  # noqa: E704
    def __truediv__(self, other): return self._binary("/", other)  # noqa: E704
    def __rtruediv__(self, other): return self._binary("/", other, True)  # noqa: E704
    def __pow__(self, other): return self._binary("^", other)  # noqa: E704
    def __neg__(self): return Term(ast.Unary("-", self.expr))  # noqa: E704


def to_expr(value: object) -> ast.Expr:
    if isinstance(value, Term):
        return value.expr
    if isinstance(value, bool):
        return ast.Literal(value, "logical")
    if isinstance(value, int):
        return ast.Literal(value, "integer")
    if isinstance(value, float):
        return ast.Literal(value, "scalar")
    if isinstance(value, str):
        return ast.Literal(value, "string")
    if isinstance(value, list):
        return ast.ArrayExpr([to_expr(v) for v in value])
    if isinstance(value, tuple):
        return ast.TupleExpr([to_expr(v) for v in value])
    raise TypeError(f"cannot use {value!r} in a rule")


class _Operations:
    """`ops.relu(x)`, `ops.conv(x, w, stride=[2, 2])`: invocations of op-table operations."""

    def __getattr__(self, name: str) -> Callable[..., Term]:
        if name.startswith("_"):
            raise AttributeError(name)

        def invoke(*args, **kwargs) -> Term:
            arguments = [ast.Argument(None, to_expr(a)) for a in args]
            arguments += [ast.Argument(k, to_expr(v)) for k, v in kwargs.items()]
            return Term(ast.Invocation(name, None, arguments))

        return invoke


ops = _Operations()


def _variables(function: Callable) -> dict[str, VarType]:
    variables = {}
    for name, param in inspect.signature(function).parameters.items():
        annotation = param.annotation
        if isinstance(annotation, str):  # `from __future__ import annotations`: the annotation's text
            annotation = _BY_TEXT.get(annotation.replace(" ", ""), annotation)
        if annotation in (inspect.Parameter.empty, Tensor, "Tensor"):
            variables[name] = VarType("tensor")
        elif annotation in _ANNOTATIONS:
            variables[name] = _ANNOTATIONS[annotation]
        else:
            raise TypeError(f"parameter '{name}': annotate a tensor as Tensor (or not at all), an attribute as "
                            "float, int, bool, str or list[...]")
    return variables


def _guard(guard: str | Callable, file: str) -> ast.Expr | Guard:
    if callable(guard):
        return Guard(getattr(guard, "__name__", "<python guard>"), guard)
    parser = Parser(guard, file)
    expr = parser.expression()
    if parser.token.kind != "end":
        raise parser.error(f"unexpected '{parser.token.text}' after the guard")
    return expr


def _location(function: Callable) -> Location:
    try:
        return Location(inspect.getsourcefile(function) or "<python>", inspect.getsourcelines(function)[1], 1)
    except (OSError, TypeError):
        return Location("<python>")


def from_functions(lhs: Callable, rhs: Callable, *, name: str | None = None,
                   guards: tuple = ()) -> Rule:
    """A rule from two functions of the same pattern variables: one builds the pattern,
    the other its replacement."""
    variables = _variables(lhs)
    if list(_variables(rhs)) != list(variables):
        raise TypeError("the two functions of a rule take the same variables")
    args = [Term(ast.Identifier(v)) for v in variables]
    return _make(name or lhs.__name__, variables, lhs(*args), rhs(*args), guards, _location(lhs))


def rule(function: Callable | None = None, *, name: str | None = None, guards: tuple = ()):
    """Decorator: a function returning (pattern, replacement) becomes a Rule."""

    def make(fn: Callable) -> Rule:
        variables = _variables(fn)
        sides = fn(*[Term(ast.Identifier(v)) for v in variables])
        if not (isinstance(sides, tuple) and len(sides) == 2):
            raise TypeError(f"rule function '{fn.__name__}' returns (pattern, replacement)")
        return _make(name or fn.__name__, variables, sides[0], sides[1], guards, _location(fn))

    return make(function) if function is not None else make


def _make(name: str, variables: dict, lhs, rhs, guards: tuple, loc: Location) -> Rule:
    parsed = [_guard(g, loc.file) for g in guards]
    expressions = [g for g in parsed if not isinstance(g, Guard)]
    built = build_rule(name, variables, to_expr(lhs), to_expr(rhs), expressions, loc=loc, origin="python")
    own = tuple(g for g in parsed if isinstance(g, Guard))
    if own:
        from dataclasses import replace

        built = replace(built, guards=built.guards + own)
    return built


# ---- the registry -------------------------------------------------------------------------

_REGISTERED: dict[str, Rule] = {}


def register_rule(rule_: Rule) -> Rule:
    """Make a rule part of the `registered` rule set (the rewrite pass's rules=registered);
    usable on the result of @rule. A later rule of the same name replaces the earlier."""
    _REGISTERED[rule_.name] = rule_
    return rule_


def rules() -> list[Rule]:
    """The registered rules, in registration order."""
    return list(_REGISTERED.values())
