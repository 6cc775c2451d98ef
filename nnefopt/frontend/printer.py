"""AST → canonical NNEF text. parse(print(parse(x))) == parse(x) for every document."""

from __future__ import annotations

import math

import sympy

from nnefopt.frontend import ast
from nnefopt.frontend.parser import _PRECEDENCE

_UNARY_PRECEDENCE = _PRECEDENCE["^"] - 1  # binds tighter than `*`, looser than `^`
_ATOM = 100


def format_literal(value: object) -> str:
    """A Python value as an NNEF literal (numbers keep their kind: 1 vs 1.0)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)  # shortest text that reads back to the same double
        return text if ("." in text or "e" in text or "n" in text) else text + ".0"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, sympy.Expr):  # a symbolic dimension such as tract's N, or 2*N
        return str(value)
    if isinstance(value, (list, tuple)):
        inner = ", ".join(format_literal(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    raise TypeError(f"not an NNEF literal: {value!r}")


def format_identifier(name: str) -> str:
    if name.isidentifier() and name.isascii():
        return name
    return 'i"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_expr(expr: ast.Expr) -> str:
    return _format(expr)[0]


def _format(expr: ast.Expr) -> tuple[str, int]:
    """Text and precedence of `expr`, so the caller knows when to parenthesize."""
    if isinstance(expr, ast.Literal):
        text = format_literal(expr.value)
        return text, (_UNARY_PRECEDENCE if text.startswith("-") else _ATOM)
    if isinstance(expr, ast.Identifier):
        return format_identifier(expr.name), _ATOM
    if isinstance(expr, ast.ArrayExpr):
        return "[" + ", ".join(map(format_expr, expr.items)) + "]", _ATOM
    if isinstance(expr, ast.TupleExpr):
        return "(" + ", ".join(map(format_expr, expr.items)) + ")", _ATOM
    if isinstance(expr, ast.Unary):
        return expr.op + _operand(expr.operand, _UNARY_PRECEDENCE + 1), _UNARY_PRECEDENCE
    if isinstance(expr, ast.Binary):
        precedence = _PRECEDENCE[expr.op]
        # Left-associative: the right operand needs parentheses at equal precedence.
        left = _operand(expr.left, precedence)
        right = _operand(expr.right, precedence + 1)
        return f"{left} {expr.op} {right}", precedence
    if isinstance(expr, ast.Select):
        then = _operand(expr.then, 1)
        return f"{then} if {format_expr(expr.condition)} else {format_expr(expr.otherwise)}", 0
    if isinstance(expr, ast.Subscript):
        base = _operand(expr.base, _ATOM)
        begin = format_expr(expr.begin) if expr.begin is not None else ""
        if not expr.is_range:
            return f"{base}[{begin}]", _ATOM
        end = format_expr(expr.end) if expr.end is not None else ""
        return f"{base}[{begin}:{end}]", _ATOM
    if isinstance(expr, ast.Invocation):
        return format_invocation(expr), _ATOM
    if isinstance(expr, ast.Comprehension):
        loops = ", ".join(f"{format_identifier(n)} in {_operand(e, 1)}" for n, e in expr.iterators)
        condition = f" if {format_expr(expr.condition)}" if expr.condition is not None else ""
        return f"[for {loops}{condition} yield {format_expr(expr.body)}]", _ATOM
    raise TypeError(f"not an expression: {expr!r}")


def _operand(expr: ast.Expr, min_precedence: int) -> str:
    text, precedence = _format(expr)
    return f"({text})" if precedence < min_precedence else text


def format_invocation(call: ast.Invocation) -> str:
    type_arg = f"<{call.type_arg}>" if call.type_arg else ""
    args = ", ".join(
        (f"{arg.name} = " if arg.name else "") + format_expr(arg.value) for arg in call.args
    )
    return f"{format_identifier(call.name)}{type_arg}({args})"


def format_assignment(stmt: ast.Assignment) -> str:
    lhs = stmt.lhs
    if isinstance(lhs, ast.TupleExpr):  # `a, b = ...` reads better than `(a, b) = ...`
        left = ", ".join(map(format_expr, lhs.items))
    else:
        left = format_expr(lhs)
    return f"{left} = {format_expr(stmt.rhs)};"


def format_fragment(fragment: ast.Fragment) -> str:
    generic = ""
    if fragment.generic:
        generic = f"<? = {fragment.generic_default}>" if fragment.generic_default else "<?>"
    params = [
        f"{format_identifier(p.name)}: {p.type}" + (f" = {format_expr(p.default)}" if p.default else "")
        for p in fragment.params
    ]
    results = ", ".join(f"{format_identifier(r.name)}: {r.type}" for r in fragment.results)
    head = f"fragment {format_identifier(fragment.name)}{generic}( {', '.join(params)} ) -> ( {results} )"
    if len(head) > 100:  # long signatures: one parameter a line
        params_text = ",\n".join("    " + p for p in params)
        head = f"fragment {format_identifier(fragment.name)}{generic}(\n{params_text}\n) -> ( {results} )"
    if fragment.body is None:
        return head + ";"
    body = "".join(f"    {format_assignment(s)}\n" for s in fragment.body)
    return f"{head}\n{{\n{body}}}"


def format_graph(graph: ast.Graph) -> str:
    inputs = ", ".join(map(format_identifier, graph.inputs))
    outputs = ", ".join(map(format_identifier, graph.outputs))
    body = "".join(f"    {format_assignment(s)}\n" for s in graph.body)
    return f"graph {format_identifier(graph.name)}( {inputs} ) -> ( {outputs} )\n{{\n{body}}}\n"


def format_extension(ext: ast.Extension) -> str:
    return f"extension {ext.name}{' ' + ext.args if ext.args else ''};"


def format_document(doc: ast.Document) -> str:
    parts = [f"version {doc.version[0]}.{doc.version[1]};\n"]
    if doc.extensions:
        parts.append("\n".join(map(format_extension, doc.extensions)) + "\n")
    parts.extend(format_fragment(f) + "\n" for f in doc.fragments)
    if doc.graph is not None:
        parts.append(format_graph(doc.graph))
    return "\n".join(parts)

