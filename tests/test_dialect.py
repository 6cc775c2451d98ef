"""The `nnef` dialect: generated from the op table, every shared model imports into a
module that verifies, and the MLIR text of it, custom or generic, reads back to the same
text."""

from __future__ import annotations

import warnings

import pytest
from xdsl.dialects.builtin import DenseResourceAttr, ModuleOp
from xdsl.ir import Block, Region
from xdsl.parser import Parser

from nnefopt.api import parse_mlir, to_mlir
from nnefopt.dialects.nnef import (
    OPERATIONS,
    GraphOp,
    ReturnOp,
    field_name,
    from_attribute,
    tensor_type,
    to_attribute,
    weight_of,
)
from nnefopt.errors import NNEFError, NNEFWarning
from nnefopt.frontend import ast
from nnefopt.frontend.loader import load_model
from nnefopt.importer import context, import_model
from nnefopt.ops import op_table
from tests.models import SHARED, variants


def mlir(module, generic: bool = False) -> str:
    return to_mlir(module, generic=generic)


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
    for generic in (False, True):
        text = to_mlir(module, generic=generic, weights=True)
        again = parse_mlir(text, name)  # verifies
        assert to_mlir(again, generic=generic, weights=True) == text
        data = next(op for op in again.walk() if op.name == "nnef.variable").attributes["nnef.data"]
        assert weight_of(data) is not None  # the text carried the array, and reads back to it
    custom = mlir(module)
    assert '"nnef.' not in custom and "nnef.graph @" in custom
    assert mlir(module, True).startswith('"builtin.module"()')
    # The generic text reads back to the module the custom one prints.
    assert mlir(parse_mlir(mlir(module, True))) == custom


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
    assert "= nnef.constant <{shape = [], value = [0.000000e+00]}> : tensor<f32>" in text


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
    if words is None:
        parse_mlir(_graph(body)).verify()
        return
    with pytest.raises(NNEFError) as info:
        parse_mlir(_graph(body), "t.mlir")
    assert words in str(info.value) and str(info.value).startswith("t.mlir: error: invalid module")


def test_symbolic_dims_survive_the_ir(tmp_path):
    import sympy

    from nnefopt.export.from_ir import export_module

    source = tmp_path / "g.nnef"
    source.write_text("version 1.0;\nextension tract_registry tract_core;\nextension tract_symbol B;\n"
                      "graph G( x ) -> ( y ) { x = tract_core_external(shape = [B, 4], datum_type = 'f32');"
                      " y = reshape(x, shape = [2, -1]); }")
    module = parse_mlir(mlir(imported(source)))
    assert "tensor<2x?xf32>" in mlir(module)
    b = sympy.Symbol("B", integer=True, positive=True)
    assert export_module(module).tensors["y"].shape == (2, 2 * b)


# ---- the custom format ------------------------------------------------------------------


def _one_of_each(name: str, optional_present: bool) -> ModuleOp:
    """A graph holding one operation of the table entry `name`: its tensors graph inputs
    (two for a tensor array), every attribute set, two results for an array."""
    entry = op_table()[name]
    block = Block()

    def external():
        op = OPERATIONS["external"].build(properties={"shape": to_attribute([2])},
                                          result_types=[tensor_type("scalar", (2,))])
        block.add_op(op)
        return op.results[0]

    operands = []
    for param in entry.tensor_params:
        if isinstance(param.type, ast.ArrayType):
            operands.append([external(), external()])
        elif param.default is not None:
            operands.append([external()] if optional_present else [])
        else:
            operands.append(external())
    properties = {field_name(p.name): to_attribute([1, -2] if i % 2 else 0.5)
                  for i, p in enumerate(entry.attribute_params)}
    results = [[tensor_type("scalar", (3,))] * 2 if isinstance(r.type, ast.ArrayType) else tensor_type("integer", (3,))
               for r in entry.results]
    op = OPERATIONS[name].build(operands=operands, properties=properties, result_types=results,
                                attributes={"nnef.explicit": to_attribute(["x"])})
    block.add_op(op)
    block.add_op(ReturnOp(operands=[list(op.results)]))
    graph = GraphOp(properties={"sym_name": to_attribute("G"), "inputs": to_attribute([]),
                                "outputs": to_attribute([])}, regions=[Region(block)])
    return ModuleOp([graph])


@pytest.mark.parametrize("name", sorted(op_table()))
def test_every_operation_has_a_custom_format_that_reads_back(name):
    assert OPERATIONS[name].assembly_format is not None
    for optional_present in (True, False):
        module = _one_of_each(name, optional_present)
        text, generic = mlir(module), mlir(module, generic=True)
        assert f"nnef.{name} " in text and f'"nnef.{name}"' not in text, text
        # read without verifying: the attribute values are made up
        again = Parser(context(), text).parse_module()
        assert mlir(again) == text
        assert mlir(again, generic=True) == generic


def test_custom_format_spelling():
    module = _one_of_each("tract_core_resize", True)
    text = mlir(module)
    # several optional tensors: each by its name, with its type
    assert "nnef.tract_core_resize %0 scales(%1 : tensor<2xf32>) sizes(%2 : tensor<2xf32>) <{" in text
    assert ": tensor<2xf32> -> tensor<3xi32>" in text
    again = Parser(context(), text.replace(" scales(%1 : tensor<2xf32>)", "")).parse_module()
    resize = next(op for op in again.walk() if op.name == "nnef.tract_core_resize")
    assert resize.scales is None and resize.sizes is not None
    assert tuple(resize.properties["operandSegmentSizes"].get_values()) == (1, 0, 1)
    # properties: integers and floats without the types bare literals read back as
    text = mlir(_one_of_each("selu", True))
    assert 'nnef.selu %0 <{alpha = 5.000000e-01, lambda_ = [1, -2]}> {nnef.explicit = ["x"]}' in text
    assert "nnef.concat [%0, %1] <{axis = 5.000000e-01}>" in mlir(_one_of_each("concat", True))
    assert "nnef.conv %0, %1, %2 <{" in mlir(_one_of_each("conv", True))
    assert "nnef.conv %0, %1 <{" in mlir(_one_of_each("conv", False))


@pytest.mark.parametrize(
    "value,spelling",
    [(float("nan"), "0x7ff8000000000000 : f64"), (float("inf"), "0x7ff0000000000000 : f64"),
     (1e300, "1.000000e+300"), (0.1, "1.000000e-01"), (1 / 3, "0.33333333333333331"), (True, "true"),
     (-7, "-7"), ("N", '{dim = "N"}')],
    ids=["nan", "inf", "large", "tenth", "third", "true", "int", "dim"],
)
def test_property_values_read_back(value, spelling):
    from nnefopt.dialects.nnef import dim_symbol

    attribute = to_attribute(dim_symbol(value) if value == "N" else value)
    module = _one_of_each("elu", True)
    op = next(op for op in module.walk() if op.name == "nnef.elu")
    op.properties["alpha"] = attribute
    text = mlir(module)
    assert f"<{{alpha = {spelling}}}>" in text
    again = next(op for op in Parser(context(), text).parse_module().walk() if op.name == "nnef.elu")
    read = again.properties["alpha"]
    if isinstance(value, float) and value != value:
        assert read.value.data != read.value.data
    else:
        assert read == attribute


@pytest.mark.parametrize(
    "body,where,words",
    [
        ("%y = nnef.transpose %x <{axis = [1, 0]}> : (tensor<2x3xf32>) -> tensor<3x2xf32>", "4:30",
         "'nnef.transpose' has no property 'axis' (it has: axes)"),
        ("%y = nnef.transpose %x <{axes = [1, 0]} : (tensor<2x3xf32>) -> tensor<3x2xf32>", "4:45", "Expected '>'"),
        ("%y = nnef.transpose %x <{axes = [1, 0]}> : (i32) -> tensor<3x2xf32>", "4:25",
         "i32 should be of base attribute tensor"),
        ("%y = nnef.transpose %x, %x <{axes = [1, 0]}> : (tensor<2x3xf32>) -> tensor<3x2xf32>", "4:27",
         "Expected ':'"),
        ("%y = nnef.transpose %x <{axes = [1, 0]}> : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<3x2xf32>", "4:49",
         "Expected 1 operand type, but got 2"),
        ("%y = nnef.transpose %x <{axes = [1, 0], axes = [0, 1]}> : (tensor<2x3xf32>) -> tensor<3x2xf32>", "4:45",
         "property 'axes' given twice"),
        ("%y = nnef.concat [%x, %x <{axis = 0}> : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<4x3xf32>", "4:30",
         "Expected ']'"),
    ],
    ids=["unknown-property", "unclosed-properties", "not-a-tensor", "too-many-operands", "too-many-types",
         "property-twice", "unclosed-array"],
)
def test_malformed_custom_format(body, where, words):
    text = ('builtin.module {\n  nnef.graph @G inputs ["x"] outputs ["y"] {\n'
            "    %x = nnef.external <{shape = [2, 3]}> : tensor<2x3xf32>\n"
            f"    {body}\n    nnef.return %y : tensor<3x2xf32>\n  }}\n}}\n")
    with pytest.raises(NNEFError) as info:
        parse_mlir(text, "t.mlir")
    message = str(info.value)
    assert message.startswith(f"t.mlir:{where}: error: ") and words in message and "\n" not in message
