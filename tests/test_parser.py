"""The grammar: every construct of spec chapter 3 parses to the tree it means, and
printing gives text that parses back to the same tree."""

from __future__ import annotations

import pytest

from nnefopt.errors import NNEFError
from nnefopt.frontend import ast
from nnefopt.frontend.parser import MAX_NESTING, parse_document, parse_quant
from nnefopt.frontend.printer import format_document, format_expr
from nnefopt.frontend.stdlib import STANDARD, TRACT_CORE, library
from tests.models import all_graph_texts


def expression(text: str) -> ast.Expr:
    doc = parse_document(f"version 1.0; graph G( x ) -> ( y ) {{ y = {text}; }}")
    return doc.graph.body[0].rhs


def roundtrip(doc: ast.Document) -> None:
    text = format_document(doc)
    again = parse_document(text, require_graph=doc.graph is not None)
    assert again == doc
    assert format_document(again) == text


@pytest.mark.parametrize("name,text", all_graph_texts(), ids=lambda v: v if "/" in str(v) else None)
def test_every_shared_model_round_trips(name, text):
    roundtrip(parse_document(text, name))


@pytest.mark.parametrize("library_name", [STANDARD, TRACT_CORE])
def test_shipped_libraries_round_trip(library_name):
    fragments = list(library(library_name).values())
    assert fragments
    roundtrip(ast.Document((1, 0), [], fragments, None))


@pytest.mark.parametrize(
    "text,expected",
    [
        ("a + b * c", "a + b * c"),
        ("(a + b) * c", "(a + b) * c"),
        ("a - (b - c)", "a - (b - c)"),
        ("a - b - c", "a - b - c"),
        ("-x ^ 2", "-x ^ 2"),
        ("(-x) ^ 2", "(-x) ^ 2"),
        ("a < b && c >= d || !e", "a < b && c >= d || !e"),
        ("i in [1, 2]", "i in [1, 2]"),
        ("a if c else b", "a if c else b"),
        ("(a if c else b) + 1", "(a if c else b) + 1"),
        ("c ? a : b", "a if c else b"),
        ("c ? a : d ? b : e", "a if c else b if d else e"),
        ("x[1]", "x[1]"),
        ("x[1:]", "x[1:]"),
        ("x[:-1]", "x[:-1]"),
        ("x[:]", "x[:]"),
        ("[for i in range_of(x), j in y if i > 0 yield i * j]", "[for i in range_of(x), j in y if i > 0 yield i * j]"),
        ("(1, 'two', true)", "(1, 'two', true)"),
        ("[]", "[]"),
        ("-0.5", "-0.5"),
        ("1e-05", "1e-05"),
        ("shape_of(x)[0]", "shape_of(x)[0]"),
        ("reshape<integer>(x, shape = [-1])", "reshape<integer>(x, shape = [-1])"),
        ('i"a.b"', 'i"a.b"'),
        ("'it\\'s'", "'it\\'s'"),
    ],
)
def test_expression_text_round_trips(text, expected):
    expr = expression(text)
    assert format_expr(expr) == expected
    assert expression(format_expr(expr)) == expr


def test_precedence_builds_the_right_tree():
    expr = expression("a + b * c ^ d")
    assert isinstance(expr, ast.Binary) and expr.op == "+"
    assert expr.right.op == "*" and expr.right.right.op == "^"
    assert expression("a - b - c").left.op == "-"  # left-associative
    select = expression("a + 1 if c else b")
    assert isinstance(select, ast.Select) and select.then.op == "+"


def test_negative_numbers_are_literals():
    assert expression("-3") == ast.Literal(-3, "integer")
    assert expression("-2.5") == ast.Literal(-2.5, "scalar")
    assert expression("-x") == ast.Unary("-", ast.Identifier("x"))


def test_locations_are_recorded():
    doc = parse_document("version 1.0;\ngraph G( x ) -> ( y )\n{\n    y = relu(  x );\n}\n", "g.nnef")
    stmt = doc.graph.body[0]
    assert (stmt.loc.file, stmt.loc.line, stmt.loc.column) == ("g.nnef", 4, 5)
    assert (stmt.rhs.loc.line, stmt.rhs.loc.column) == (4, 9)
    assert (stmt.rhs.args[0].value.loc.line, stmt.rhs.args[0].value.loc.column) == (4, 16)


def test_fragments_generics_defaults_and_tuple_results():
    doc = parse_document(
        "version 1.0;\nextension KHR_enable_fragment_definitions, KHR_enable_operator_expressions;\n"
        "fragment f<? = scalar>( x: tensor<?>, s: (integer, scalar)[] = [(1, 2.0)], t: tensor<> ) "
        "-> ( a: tensor<?>, b: tensor<?>[] )\n{ a = x; b = [x, x]; }\n"
        "graph G( x ) -> ( y ) { y = x; }",
    )
    fragment = doc.fragments[0]
    assert fragment.generic and fragment.generic_default == ast.PrimitiveType("scalar")
    assert str(fragment.params[1].type) == "(integer, scalar)[]"
    assert str(fragment.params[2].type) == "tensor<>"
    assert str(fragment.results[1].type) == "tensor<?>[]"
    assert [e.name for e in doc.extensions] == ["KHR_enable_fragment_definitions", "KHR_enable_operator_expressions"]
    roundtrip(doc)


def test_tract_extension_lines_keep_their_words():
    doc = parse_document("version 1.0;\nextension tract_registry tract_core;\nextension tract_symbol N;\ngraph G( x ) -> ( x ) { x = external(shape = [1]); }")
    assert [(e.name, e.args) for e in doc.extensions] == [("tract_registry", "tract_core"), ("tract_symbol", "N")]
    roundtrip(doc)


def test_multiple_results_without_parentheses():
    doc = parse_document("version 1.0; graph G( x ) -> ( a ) { a, b = moments(x, axes = [0]); }")
    lhs = doc.graph.body[0].lhs
    assert isinstance(lhs, ast.TupleExpr) and [i.name for i in lhs.items] == ["a", "b"]
    roundtrip(doc)


@pytest.mark.parametrize("depth", [MAX_NESTING - 5])
def test_nesting_just_below_the_limit_parses(depth):
    expr = expression("(" * depth + "x" + ")" * depth)
    assert expr == ast.Identifier("x")


@pytest.mark.parametrize("text", ["(" * 100_000 + "x" + ")" * 100_000, "relu(" * 100_000 + "x" + ")" * 100_000,
                                  "-" * 100_000 + "x", "[" * 100_000 + "]" * 100_000])
def test_deep_nesting_is_an_error_not_a_crash(text):
    with pytest.raises(NNEFError, match="nested more than"):
        expression(text)


def test_long_flat_chains_are_fine():
    graph = "version 1.0; graph G( x0 ) -> ( x10000 ) { x0 = external(shape = [1]);\n"
    graph += "".join(f"x{i + 1} = relu(x{i});\n" for i in range(10_000)) + "}"
    doc = parse_document(graph)
    assert len(doc.graph.body) == 10_001


def test_quant_entries():
    entries = parse_quant("# comment\n\"a\": linear_quantize(min = -1.0, max = 1.0, bits = 8);\n'b': zero_point_linear_quantize(zero_point = 3, scale = 0.5, bits = 8, signed = false, symmetric = false);")
    assert [(e.tensor, e.algorithm) for e in entries] == [("a", "linear_quantize"), ("b", "zero_point_linear_quantize")]
    assert entries[0].attributes["min"] == ast.Literal(-1.0, "scalar")
    assert entries[1].loc.line == 3


@pytest.mark.parametrize(
    "text,message",
    [
        ("version 1.0; graph G( x ) -> ( y ) { y = relu(x) }", "expected ';'"),
        ("version 1.0; graph G( x ) -> ( y ) { y = ; }", "expected an expression"),
        ("version 1.0; graph G( x ) -> ( y ) { y = relu(x); } extra", "expected end of file"),
        ("version 1.0; fragment f( x tensor<scalar> ) -> ( y: tensor<scalar> );", "expected ':'"),
        ("version 1.0; fragment f( x: tensor<float> ) -> ( y: tensor<scalar> );", "expected a type name"),
        ("version 1.0; graph G( x ) -> ( y ) { 1 = relu(x); }", "expected an identifier"),
    ],
)
def test_syntax_errors_name_the_place(text, message):
    with pytest.raises(NNEFError, match=message) as info:
        parse_document(text, "g.nnef")
    assert str(info.value).startswith("g.nnef:1:")
