"""The `nnef` dialect: generated from the op table, every shared model imports into a
module that verifies, and the MLIR text of it reads back to the same text."""

from __future__ import annotations

import io
import warnings

import pytest
from xdsl.dialects.builtin import DenseResourceAttr
from xdsl.parser import Parser
from xdsl.printer import Printer

from nnefopt.dialects.nnef import OPERATIONS, GraphOp, from_attribute, to_attribute, weight_of
from nnefopt.errors import NNEFWarning
from nnefopt.frontend.loader import load_model
from nnefopt.importer import context, import_model
from nnefopt.ops import op_table
from tests.models import SHARED, variants


def mlir(module) -> str:
    stream = io.StringIO()
    Printer(stream=stream, print_debuginfo=True).print_op(module)
    return stream.getvalue()


def imported(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        return import_model(load_model(path))


def test_one_operation_class_per_table_entry():
    assert set(OPERATIONS) == set(op_table())
    conv = OPERATIONS["conv"]
    definition = conv.get_irdl_definition()
    assert [name for name, _ in definition.operands] == ["input", "filter", "bias"]
    assert {name for name in definition.properties} >= {"border", "padding", "stride", "dilation", "groups"}
    assert [name for name, _ in definition.results] == ["output"]


@pytest.mark.parametrize("name,path", variants(), ids=[v[0] for v in variants()])
def test_models_import_verify_and_reprint(name, path):
    module = imported(path)
    module.verify()
    text = mlir(module)
    again = Parser(context(), text).parse_module()
    again.verify()
    assert mlir(again) == text


def test_values_carry_tensor_names_types_and_weights():
    module = imported(SHARED / "mlp_digits" / "kt")
    graph = next(op for op in module.ops if isinstance(op, GraphOp))
    ops = list(graph.body.block.ops)
    variable = next(op for op in ops if op.name == "nnef.variable")
    assert variable.results[0].name_hint == "variable1"
    assert str(variable.results[0].type) == "tensor<128x64xf32>"
    data = weight_of(variable.attributes["nnef.data"])
    assert isinstance(variable.attributes["nnef.data"], DenseResourceAttr)
    assert data.shape == (128, 64) and not data.flags.writeable  # the memory-mapped file itself
    linear = next(op for op in ops if op.name == "nnef.linear")
    assert [v.name_hint for v in linear.operands] == ["input", "variable1", "variable2"]
    assert linear.location.filename.data.endswith("mlp_digits/kt/graph.nnef")
    assert (linear.location.line.data, linear.location.column.data) == (12, 15)


def test_literals_become_rank_zero_constants():
    module = imported(SHARED / "mobilenetv2_035" / "t2n")
    text = mlir(module)
    assert '"nnef.constant"() <{shape = [], value = [0.000000e+00 : f64]}>' in text


@pytest.mark.parametrize("value", [1, -3, 2.5, True, "ignore", [1, 2], [(0, 1), (2, 3)], []])
def test_attribute_values_round_trip(value):
    from nnefopt.frontend import ast

    type_ = ast.ArrayType(ast.TupleType((ast.PrimitiveType("integer"),) * 2)) if value == [(0, 1), (2, 3)] else None
    assert from_attribute(to_attribute(value), type_) == value


def _graph(body: str) -> str:
    return ('builtin.module {\n  "nnef.graph"() <{sym_name = "G", inputs = ["x"], outputs = ["y"]}> ({\n'
            '    %x = "nnef.external"() <{shape = [2 : i64, 3 : i64]}> : () -> tensor<2x3xf32>\n'
            f'    {body}\n    "nnef.return"(%y) : (tensor<3x2xf32>) -> ()\n  }}) : () -> ()\n}}\n')


@pytest.mark.parametrize(
    "body,words",
    [
        ('%y = "nnef.transpose"(%x) <{axes = [1 : i64, 0 : i64]}> : (tensor<2x3xf32>) -> tensor<3x2xf32>', None),
        ('%y = "nnef.transpose"(%x) <{axes = [0 : i64, 1 : i64]}> : (tensor<2x3xf32>) -> tensor<3x2xf32>',
         "result shape [3, 2] differs from [2, 3]"),
        ('%y = "nnef.transpose"(%x) <{axes = "up"}> : (tensor<2x3xf32>) -> tensor<3x2xf32>',
         "'axes' must be of type integer[]"),
        ('%y = "nnef.transpose"(%x) <{axes = [0 : i64, 0 : i64]}> : (tensor<2x3xf32>) -> tensor<3x2xf32>',
         "not a permutation"),
        ('%y = "nnef.transpose"(%x) : (tensor<2x3xf32>) -> tensor<3x2xf32>', "axes"),
    ],
    ids=["valid", "wrong-result-shape", "wrong-attribute-type", "bad-attribute-value", "missing-attribute"],
)
def test_verifier(body, words):
    from nnefopt.api import parse_mlir
    from nnefopt.errors import NNEFError

    if words is None:
        parse_mlir(_graph(body)).verify()
        return
    with pytest.raises(NNEFError) as info:
        parse_mlir(_graph(body), "t.mlir")
    assert words in str(info.value) and str(info.value).startswith("t.mlir: error: invalid module")


def test_symbolic_dims_survive_the_ir(tmp_path):
    import sympy

    from nnefopt.api import parse_mlir
    from nnefopt.export.from_ir import export_module

    source = tmp_path / "g.nnef"
    source.write_text("version 1.0;\nextension tract_registry tract_core;\nextension tract_symbol B;\n"
                      "graph G( x ) -> ( y ) { x = tract_core_external(shape = [B, 4], datum_type = 'f32');"
                      " y = reshape(x, shape = [2, -1]); }")
    module = parse_mlir(mlir(imported(source)))
    assert "tensor<2x?xf32>" in mlir(module)
    b = sympy.Symbol("B", integer=True, positive=True)
    assert export_module(module).tensors["y"].shape == (2, 2 * b)
