"""Evaluation of NNEF expressions: attribute arithmetic, comprehensions, builtins, and —
through a Domain — tensor operations inside fragment bodies.

The same walk serves several meanings of "tensor": shapes (shape inference), numpy
arrays (the interpreter) or names (graph building). A Domain says what a tensor value
is and how an operation is applied to such values; everything else is plain Python.
"""

from __future__ import annotations

import operator
from typing import Callable, Protocol

from nnefopt.errors import Location, NNEFError
from nnefopt.frontend import ast

# Operators on tensors are operations of the standard library.
TENSOR_BINARY = {
    "+": "add", "-": "sub", "*": "mul", "/": "div", "^": "pow",
    "<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne",
    "&&": "and", "||": "or",
}  # fmt: skip
TENSOR_UNARY = {"-": "neg", "!": "not", "+": "copy"}


def _divide(a, b):
    if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool):
        if b == 0:
            raise ZeroDivisionError
        return int(a / b)  # C-style: truncates toward zero, as the reference does
    return a / b


def _add(a, b):
    return a + b  # numbers, and concatenation of arrays and strings


def _multiply(a, b):
    return a * b  # numbers, and repetition of an array by an integer


_PLAIN_BINARY: dict[str, Callable] = {
    "+": _add, "-": operator.sub, "*": _multiply, "/": _divide, "^": operator.pow,
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
    "&&": lambda a, b: a and b, "||": lambda a, b: a or b,
    "in": lambda a, b: a in b,
}  # fmt: skip

_CASTS = {"integer": int, "scalar": float, "logical": bool, "string": str}


class Domain(Protocol):
    def is_tensor(self, value: object) -> bool: ...

    def shape_of(self, value: object) -> list: ...

    def invoke(self, call: ast.Invocation, evaluator: "Evaluator") -> object: ...

    def apply(self, op: str, inputs: list, loc: Location) -> object: ...


class Evaluator:
    """Evaluates expressions in an environment of named values."""

    def __init__(self, env: dict[str, object], domain: Domain | None = None):
        self.env = env
        self.domain = domain

    def is_tensor(self, value: object) -> bool:
        return self.domain is not None and self.domain.is_tensor(value)

    def eval(self, expr: ast.Expr) -> object:
        return getattr(self, "_" + type(expr).__name__)(expr)

    def _Literal(self, expr: ast.Literal):
        return expr.value

    def _Identifier(self, expr: ast.Identifier):
        if expr.name not in self.env:
            raise NNEFError(f"undefined identifier '{expr.name}'", expr.loc)
        return self.env[expr.name]

    def _ArrayExpr(self, expr: ast.ArrayExpr):
        return [self.eval(item) for item in expr.items]

    def _TupleExpr(self, expr: ast.TupleExpr):
        return tuple(self.eval(item) for item in expr.items)

    def _Unary(self, expr: ast.Unary):
        value = self.eval(expr.operand)
        if self.is_tensor(value):
            return self.domain.apply(TENSOR_UNARY[expr.op], [value], expr.loc)
        if expr.op == "!":
            return not value
        return _plain(lambda: -value if expr.op == "-" else +value, expr)

    def _Binary(self, expr: ast.Binary):
        if expr.op in ("&&", "||"):  # short-circuit, as conditions guard subscripts
            left = self.eval(expr.left)
            if not self.is_tensor(left) and (bool(left) == (expr.op == "||")):
                return left
            right = self.eval(expr.right)
        else:
            left, right = self.eval(expr.left), self.eval(expr.right)
        if self.is_tensor(left) or self.is_tensor(right):
            if expr.op not in TENSOR_BINARY:
                raise NNEFError(f"operator '{expr.op}' is not defined on tensors", expr.loc)
            return self.domain.apply(TENSOR_BINARY[expr.op], [left, right], expr.loc)
        return _plain(lambda: _PLAIN_BINARY[expr.op](left, right), expr)

    def _Select(self, expr: ast.Select):
        condition = self.eval(expr.condition)
        if self.is_tensor(condition):
            then, otherwise = self.eval(expr.then), self.eval(expr.otherwise)
            return self.domain.apply("select", [condition, then, otherwise], expr.loc)
        if not isinstance(condition, bool):
            raise NNEFError("condition must be a logical value", expr.condition.loc)
        return self.eval(expr.then if condition else expr.otherwise)

    def _Subscript(self, expr: ast.Subscript):
        base = self.eval(expr.base)
        begin = self.eval(expr.begin) if expr.begin is not None else None
        if not expr.is_range:
            return _plain(lambda: base[begin], expr)
        end = self.eval(expr.end) if expr.end is not None else None
        return _plain(lambda: base[begin:end], expr)

    def _Comprehension(self, expr: ast.Comprehension):
        iterables = [(name, self.eval(source)) for name, source in expr.iterators]
        lengths = {len(values) for _, values in iterables}
        if len(lengths) > 1:
            raise NNEFError("loop iterables of a comprehension differ in length", expr.loc)
        results = []
        saved = dict(self.env)
        try:
            for index in range(lengths.pop() if lengths else 0):
                for name, values in iterables:
                    self.env[name] = values[index]
                if expr.condition is None or self.eval(expr.condition):
                    results.append(self.eval(expr.body))
        finally:
            self.env.clear()
            self.env.update(saved)
        return results

    def _Invocation(self, call: ast.Invocation):
        if call.name in _BUILTINS and len(call.args) == 1 and call.args[0].name is None:
            value = self.eval(call.args[0].value)
            if call.name == "shape_of":  # a non-tensor value is a rank-0 tensor
                return list(self.domain.shape_of(value)) if self.is_tensor(value) else []
            return _plain(lambda: _BUILTINS[call.name](value), call)
        if self.domain is None:
            raise NNEFError(f"operation '{call.name}' cannot be evaluated here", call.loc)
        return self.domain.invoke(call, self)


_BUILTINS: dict[str, Callable] = {
    "length_of": len,
    "range_of": lambda value: list(range(len(value))),
    "shape_of": None,  # needs the domain: see _Invocation
    **_CASTS,
}


def _plain(compute: Callable[[], object], expr: ast.Expr) -> object:
    """Python's arithmetic on NNEF values; its failures are errors in the input."""
    try:
        return compute()
    except (ArithmeticError, TypeError, ValueError, IndexError) as exc:
        raise NNEFError(f"cannot evaluate expression: {_reason(exc)}", expr.loc) from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, ZeroDivisionError):
        return "division by zero"
    if isinstance(exc, IndexError):
        return "index out of range"
    return str(exc) or type(exc).__name__


def evaluate_constant(expr: ast.Expr, env: dict[str, object] | None = None) -> object:
    """The value of an expression that involves no tensors."""
    return Evaluator(dict(env or {})).eval(expr)
