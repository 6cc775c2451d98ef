"""The `nnef` dialect: one xDSL operation class per entry of the op table, generated.

An NNEF tensor parameter becomes an operand (a tensor array: a variadic operand; an
optional tensor: an optional operand, absent meaning the default), an attribute
parameter a property, a result a result. Around them:

- `nnef.graph` holds the graph body in one block, ending with `nnef.return`;
- `nnef.fragment` keeps a fragment the model defines (its NNEF text), and `nnef.call`
  invokes it; `nnef.op` carries an operation of a registry nnefopt does not know.

Weights stay out of the IR text: `nnef.variable` refers to its data by a
`dense_resource` handle, and the array itself (memory-mapped) lives in WEIGHTS.
"""

from __future__ import annotations

import itertools
import re
from typing import ClassVar

import numpy as np
import sympy
from sympy.parsing.sympy_parser import parse_expr
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    ArrayAttr,
    DenseResourceAttr,
    DictionaryAttr,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    NoneType,
    StringAttr,
    TensorType,
    f32,
    f64,
    i1,
    i32,
    i64,
)
from xdsl.ir import Attribute, Dialect
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.traits import IsTerminator, NoTerminator, Pure
from xdsl.utils.exceptions import VerifyException

from nnefopt.frontend import ast
from nnefopt.frontend.binder import coerce_value, is_absent
from nnefopt.frontend.evaluate import evaluate_constant
from nnefopt.ops import OpDef, op_table

# ---- types ---------------------------------------------------------------------------

ELEMENT_TYPES = {"scalar": f32, "integer": i32, "logical": i1}
_DTYPES = {f32: "scalar", i32: "integer", i1: "logical"}


def tensor_type(dtype: str, shape: tuple | None) -> TensorType:
    """NNEF dtype and shape as a tensor type; a symbolic dim is `?` (its expression is
    kept in the producing operation's `nnef.dims`)."""
    dims = [d if isinstance(d, int) else DYNAMIC_INDEX for d in (shape or ())]
    return TensorType(ELEMENT_TYPES.get(dtype, NoneType()), dims)


def dtype_of(type_: Attribute) -> str:
    element = type_.element_type if isinstance(type_, TensorType) else None
    return _DTYPES.get(element, "?")


# ---- attribute values ------------------------------------------------------------------


def to_attribute(value: object) -> Attribute:
    """An NNEF attribute value (the frontend's Python form) as an xDSL attribute."""
    if isinstance(value, bool):
        return IntegerAttr(int(value), i1)
    if isinstance(value, int):
        return IntegerAttr(value, i64)
    if isinstance(value, float):
        return FloatAttr(value, f64)
    if isinstance(value, str):
        return StringAttr(value)
    if isinstance(value, sympy.Expr):
        return DictionaryAttr({"dim": StringAttr(str(value))})
    if isinstance(value, (list, tuple)):
        return ArrayAttr([to_attribute(v) for v in value])
    raise TypeError(f"no attribute for {value!r}")


def from_attribute(attr: Attribute, type_: ast.Type | None = None) -> object:
    """The Python value of an attribute; the declared type tells tuples from arrays."""
    if isinstance(attr, IntegerAttr):
        value = attr.value.data
        return bool(value) if attr.type == i1 else value
    if isinstance(attr, FloatAttr):
        return float(attr.value.data)
    if isinstance(attr, StringAttr):
        return attr.data
    if isinstance(attr, DictionaryAttr) and "dim" in attr.data:
        return symbolic_dim(attr.data["dim"].data)
    if isinstance(attr, ArrayAttr):
        if isinstance(type_, ast.TupleType):
            return tuple(from_attribute(a, t) for a, t in zip(attr.data, type_.items))
        item = type_.item if isinstance(type_, ast.ArrayType) else None
        return [from_attribute(a, item) for a in attr.data]
    raise TypeError(f"not an NNEF attribute value: {attr}")


def dim_symbol(name: str) -> sympy.Symbol:
    """A named dimension (tract's `extension tract_symbol N`): a positive integer."""
    return sympy.Symbol(name, integer=True, positive=True)


def symbolic_dim(text: str) -> sympy.Expr:
    # Every name is a dimension symbol, never a sympy function of the same name (N, E, S...).
    names = {name: dim_symbol(name) for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text)}
    return parse_expr(text, local_dict=names, evaluate=True)


# ---- weights ---------------------------------------------------------------------------

WEIGHTS: dict[str, np.ndarray] = {}
_handles = itertools.count()


def weight_attribute(label: str, data: np.ndarray, type_: TensorType) -> DenseResourceAttr:
    handle = f"{label}.{next(_handles)}"
    WEIGHTS[handle] = data
    return DenseResourceAttr.from_params(handle, type_)


def weight_of(attr: DenseResourceAttr) -> np.ndarray | None:
    return WEIGHTS.get(attr.resource_handle.data)


# ---- operations from the op table -------------------------------------------------------


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) + "Op"


def field_name(name: str) -> str:
    """The Python attribute of a parameter or result: selu's `lambda` is a keyword."""
    return name + "_" if name == "lambda" else name


# Graph inputs must stay even when unused; `update` writes a variable.
_EFFECTFUL = {"external", "tract_core_external", "update"}


def _verify(op: IRDLOperation) -> None:
    """Attributes of their declared types, and results of the shapes the rule gives."""
    entry: OpDef = op.OP_DEF
    attribs = {}
    for param in entry.attribute_params:
        prop = op.properties.get(field_name(param.name))
        if prop is None:
            continue
        try:
            attribs[param.name] = coerce_value(from_attribute(prop, param.type), param.type)
        except TypeError:
            raise VerifyException(f"{op.name}: '{param.name}' must be of type {param.type}, found {prop}") from None
    rule = entry.shape_rule
    if rule is None or getattr(rule, "value_params", ()) or len(attribs) < len(
            [p for p in entry.attribute_params if p.default is None]):
        return
    shapes = []
    for param in entry.tensor_params:
        operand = getattr(op, field_name(param.name))
        if operand is None:
            if param.default is None or is_absent(param.default):
                shapes.append(None)
                continue
            shapes.append(())  # the literal default (bias = 0.0) is a rank-0 tensor
        elif isinstance(operand, tuple):
            shapes.append([_static_shape(v.type) for v in operand])
        else:
            shapes.append(_static_shape(operand.type))
    if any(s is _DYNAMIC or (isinstance(s, list) and _DYNAMIC in s) for s in shapes):
        return
    defaults = {p.name: evaluate_constant(p.default) for p in entry.attribute_params
                if p.name not in attribs and p.default is not None}
    try:
        expected = rule(*shapes, **defaults, **attribs)
    except (ValueError, TypeError, IndexError, ZeroDivisionError) as exc:
        raise VerifyException(f"{op.name}: {exc}") from None
    expected = [expected] if len(entry.results) == 1 and not isinstance(expected, list) else expected
    actual = [_static_shape(r.type) for r in op.results]
    flat = [tuple(int(d) if isinstance(d, int) else d for d in s) for s in _flatten_shapes(expected)]
    for got, want in zip(actual, flat):
        if got is not _DYNAMIC and all(isinstance(d, int) for d in want) and tuple(got) != want:
            raise VerifyException(f"{op.name}: result shape {list(got)} differs from {list(want)}, "
                                  f"which its operands and attributes give")


_DYNAMIC = object()


def _static_shape(type_: Attribute):
    if not isinstance(type_, TensorType):
        return _DYNAMIC
    shape = type_.get_shape()
    return _DYNAMIC if DYNAMIC_INDEX in shape else tuple(shape)


def _flatten_shapes(result) -> list:
    if isinstance(result, list):
        return list(result)
    if isinstance(result, tuple) and result and isinstance(result[0], tuple):
        return list(result)
    return [result]


def make_operation(entry: OpDef) -> type[IRDLOperation]:
    fields: dict[str, object] = {"name": f"nnef.{entry.name}", "OP_DEF": entry, "verify_": _verify,
                                 "__annotations__": {"OP_DEF": ClassVar[OpDef]}}
    optional_or_variadic = 0
    for param in entry.tensor_params:
        if isinstance(param.type, ast.ArrayType):
            fields[field_name(param.name)] = var_operand_def(TensorType)
            optional_or_variadic += 1
        elif param.default is not None:
            fields[field_name(param.name)] = opt_operand_def(TensorType)
            optional_or_variadic += 1
        else:
            fields[field_name(param.name)] = operand_def(TensorType)
    for param in entry.attribute_params:
        fields[field_name(param.name)] = (opt_prop_def if param.default is not None else prop_def)(Attribute)
    for result in entry.results:
        fields[field_name(result.name)] = (
            var_result_def(TensorType) if isinstance(result.type, ast.ArrayType) else result_def(TensorType)
        )
    if optional_or_variadic > 1:
        fields["irdl_options"] = (AttrSizedOperandSegments(as_property=True),)
    if entry.name not in _EFFECTFUL:
        fields["traits"] = traits_def(Pure())  # NNEF operations are functions of their inputs
    return irdl_op_definition(type(_class_name(entry.name), (IRDLOperation,), fields))


OPERATIONS: dict[str, type[IRDLOperation]] = {name: make_operation(e) for name, e in op_table().items()}


@irdl_op_definition
class GraphOp(IRDLOperation):
    """The graph: its name, inputs and outputs, and its body."""

    name = "nnef.graph"
    sym_name = prop_def(StringAttr)
    inputs = prop_def(ArrayAttr)
    outputs = prop_def(ArrayAttr)
    body = region_def("single_block")


@irdl_op_definition
class ReturnOp(IRDLOperation):
    name = "nnef.return"
    values = var_operand_def(TensorType)
    traits = traits_def(IsTerminator())


@irdl_op_definition
class FragmentOp(IRDLOperation):
    """A fragment the model defines or declares, kept as its NNEF text."""

    name = "nnef.fragment"
    sym_name = prop_def(StringAttr)
    text = prop_def(StringAttr)
    traits = traits_def(NoTerminator())


class _Invocation(IRDLOperation):
    """Arguments as given: tensors in order (named by operand_names), the rest by name."""

    operand_names = prop_def(ArrayAttr)
    args = prop_def(DictionaryAttr)
    arguments = var_operand_def(TensorType)
    outputs = var_result_def(TensorType)


@irdl_op_definition
class CallOp(_Invocation):
    """An invocation of a fragment the model defines."""

    name = "nnef.call"
    traits = traits_def(Pure())  # a fragment body is made of operations without effects
    callee = prop_def(StringAttr)


@irdl_op_definition
class OpaqueOp(_Invocation):
    """An operation of an unknown registry, kept unchanged."""

    name = "nnef.op"
    op_name = prop_def(StringAttr)


NNEF = Dialect("nnef", [*OPERATIONS.values(), GraphOp, ReturnOp, FragmentOp, CallOp, OpaqueOp], [])

__all__ = ["NNEF", "OPERATIONS", "GraphOp", "ReturnOp", "FragmentOp", "CallOp", "OpaqueOp",
           "tensor_type", "dtype_of", "to_attribute", "from_attribute", "weight_attribute", "weight_of",
           "field_name", "ELEMENT_TYPES"]
