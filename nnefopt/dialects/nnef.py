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

import dataclasses
import functools
import io
import itertools
import re
from pathlib import Path
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
    SymbolNameConstraint,
    TensorType,
    UnitAttr,
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
from xdsl.irdl.declarative_assembly_format import (
    AttributeVariable,
    CustomDirective,
    ParsingState,
    PrintingState,
    irdl_custom_directive,
)
from xdsl.parser import Parser
from xdsl.printer import Printer
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
    return _tensor_type(dtype, tuple(d if isinstance(d, int) else DYNAMIC_INDEX for d in (shape or ())))


@functools.lru_cache(maxsize=4096)
def _tensor_type(dtype: str, dims: tuple[int, ...]) -> TensorType:
    # Attributes are immutable, and xDSL verifies each one it builds: build each once.
    return TensorType(ELEMENT_TYPES.get(dtype, NoneType()), list(dims))


def dtype_of(type_: Attribute) -> str:
    element = type_.element_type if isinstance(type_, TensorType) else None
    return _DTYPES.get(element, "?")


# ---- attribute values ------------------------------------------------------------------


def to_attribute(value: object) -> Attribute:
    """An NNEF attribute value (the frontend's Python form) as an xDSL attribute."""
    if isinstance(value, (bool, int, float, str)):
        return _scalar_attribute(type(value), value)
    if isinstance(value, sympy.Expr):
        return DictionaryAttr({"dim": StringAttr(str(value))})
    if isinstance(value, (list, tuple)):
        key = _key(value)
        return _array_attribute(key) if key is not None else ArrayAttr([to_attribute(v) for v in value])
    raise TypeError(f"no attribute for {value!r}")


def _key(value: object) -> tuple | None:
    """A hashable key telling apart what to_attribute tells apart (True, 1 and 1.0 are
    equal in Python, not as attributes); None for what is not worth a key."""
    if isinstance(value, (list, tuple)):
        items = [_key(v) for v in value]
        return None if None in items else (list, tuple(items))
    if isinstance(value, (bool, int, float, str)):
        return (type(value), value)
    return None


@functools.lru_cache(maxsize=65536)
def _array_attribute(key: tuple) -> ArrayAttr:
    # Shapes, strides, paddings and argument lists repeat across a model's operations:
    # one immutable attribute each, built (and verified) once, shared by all.
    return ArrayAttr([_array_attribute(k) if k[0] is list else _scalar_attribute(*k) for k in key[1]])


@functools.lru_cache(maxsize=4096)
def _scalar_attribute(kind: type, value: object) -> Attribute:
    # The kind is part of the key: True and 1 are equal keys, not equal attributes.
    if kind is bool:
        return IntegerAttr(int(value), i1)
    if kind is int:
        return IntegerAttr(value, i64)
    if kind is float:
        return FloatAttr(value, f64)
    return StringAttr(value)


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
# The tensor file a weight was read from, while no pass has changed it: export copies it.
ORIGINS: dict[str, Path] = {}
_handles = itertools.count()


def weight_attribute(label: str, data: np.ndarray, type_: TensorType, origin: Path | None = None) -> DenseResourceAttr:
    handle = f"{label}.{next(_handles)}"
    WEIGHTS[handle] = data
    if origin is not None:
        ORIGINS[handle] = origin
    return DenseResourceAttr.from_params(handle, type_)


def weight_of(attr: DenseResourceAttr) -> np.ndarray | None:
    return WEIGHTS.get(attr.resource_handle.data)


def origin_of(attr: DenseResourceAttr) -> Path | None:
    return ORIGINS.get(attr.resource_handle.data)


# ---- operations from the op table -------------------------------------------------------


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) + "Op"


# Names a parameter or result cannot take as a Python attribute of an operation: a
# keyword (selu's `lambda`), or what xDSL's Operation already means by it (tract's
# `tract_core_properties` returns `properties`).
_TAKEN_NAMES = {"lambda", "properties", "attributes", "operands", "results", "regions", "name", "parent"}


def field_name(name: str) -> str:
    """The Python attribute of a parameter or result."""
    return name + "_" if name in _TAKEN_NAMES else name


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
    # `nnef.layout = "nhwc"` (the layout pass): input and results are stored channel-last
    channel_last = op.attributes.get("nnef.layout") == StringAttr("nhwc")
    if channel_last:
        if not shapes or not isinstance(shapes[0], tuple) or len(shapes[0]) < 3:
            raise VerifyException(f"{op.name}: 'nnef.layout' needs an input of rank 3 or more")
        shapes[0] = _channel_first(shapes[0])
    defaults = {p.name: evaluate_constant(p.default) for p in entry.attribute_params
                if p.name not in attribs and p.default is not None}
    try:
        expected = rule(*shapes, **defaults, **attribs)
    except (ValueError, TypeError, IndexError, ZeroDivisionError) as exc:
        raise VerifyException(f"{op.name}: {exc}") from None
    expected = [expected] if len(entry.results) == 1 and not isinstance(expected, list) else expected
    actual = [_static_shape(r.type) for r in op.results]
    if channel_last:
        actual = [s if s is _DYNAMIC else _channel_first(s) for s in actual]
    flat = [tuple(int(d) if isinstance(d, int) else d for d in s) for s in _flatten_shapes(expected)]
    for got, want in zip(actual, flat):
        if got is not _DYNAMIC and all(isinstance(d, int) for d in want) and tuple(got) != want:
            raise VerifyException(f"{op.name}: result shape {list(got)} differs from {list(want)}, "
                                  f"which its operands and attributes give")


_DYNAMIC = object()


def _channel_first(shape: tuple) -> tuple:
    return (shape[0], shape[-1], *shape[1:-1])


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


# ---- the custom assembly format -------------------------------------------------------
#
# Every operation reads and prints in a custom form besides xDSL's generic one:
#
#   %c = nnef.conv %x, %w, %b <{border = "constant", stride = [1, 1]}> {nnef.explicit = [...]}
#            : (tensor<1x4x8x8xf32>, tensor<4x4x3x3xf32>, tensor<4xf32>) -> tensor<1x4x8x8xf32>
#
# It is xDSL's declarative assembly format, one format string per operation made from
# its op-table entry (`_assembly_format`), with one custom directive, `PropDict`: the
# properties in MLIR's `<{...}>` (xDSL's format language has no `prop-dict`), their
# integers and floats without the `: i64` / `: f64` that bare literals read back as.


def _print_value(printer: Printer, attr: Attribute) -> None:
    """An attribute value as `print_attribute` prints it, less the types that a bare
    literal reads back as: `[1, 1]` for `[1 : i64, 1 : i64]`, `1.000000e-05` for
    `1.000000e-05 : f64` (a float printed in hex keeps its type)."""
    if isinstance(attr, IntegerAttr) and attr.type == i64:
        printer.print_string(str(attr.value.data))
    elif isinstance(attr, FloatAttr) and attr.type == f64:
        scratch = io.StringIO()
        Printer(stream=scratch).print_float(attr.value.data, f64)
        text = scratch.getvalue()
        if "x" in text:  # NaN, infinities and the like print as hex: an integer without its type
            printer.print_attribute(attr)
        else:
            printer.print_string(text)
    elif isinstance(attr, ArrayAttr):
        with printer.in_square_brackets():
            printer.print_list(attr.data, lambda item: _print_value(printer, item))
    elif isinstance(attr, DictionaryAttr):
        with printer.in_braces():
            printer.print_list(attr.data.items(), lambda entry: _print_entry(printer, *entry))
    else:
        printer.print_attribute(attr)


def _print_entry(printer: Printer, name: str, value: Attribute) -> None:
    printer.print_identifier_or_string_literal(name)
    if not isinstance(value, UnitAttr):
        printer.print_string(" = ")
        _print_value(printer, value)


class _PropDict(CustomDirective):
    """`<{name = value, ...}>`: the properties given as its parameters, those present,
    in the order of the parameters; nothing when none is present."""

    def _variables(self) -> list[AttributeVariable]:
        return [getattr(self, f.name) for f in dataclasses.fields(self)]

    def parse(self, parser: Parser, state: ParsingState) -> None:
        if parser.parse_optional_punctuation("<") is None:
            return
        variables = {v.name: v for v in self._variables()}
        seen: set[str] = set()

        def entry() -> None:
            start = parser.pos
            name = parser.parse_optional_identifier_or_str_literal()
            if name is None:
                parser.raise_error("property name expected")
            if name not in variables:
                known = ", ".join(variables) or "none"
                parser.raise_error(f"'{state.op_type.name}' has no property '{name}' (it has: {known})",
                                   start, parser.pos)
            if name in seen:
                parser.raise_error(f"property '{name}' given twice", start, parser.pos)
            seen.add(name)
            parser.parse_punctuation("=", f" after property '{name}'")
            variables[name].set(state, parser.parse_attribute())

        parser.parse_comma_separated_list(Parser.Delimiter.BRACES, entry, " in the properties")
        parser.parse_punctuation(">", " to end the properties")

    def print(self, printer: Printer, state: PrintingState, op: IRDLOperation) -> None:
        present = [(v.name, op.properties[v.name]) for v in self._variables() if v.name in op.properties]
        if not present:
            return
        state.print_whitespace(printer)
        printer.print_string("<{")
        printer.print_list(present, lambda entry: _print_entry(printer, *entry))
        printer.print_string("}>")


@functools.cache
def _prop_dict(count: int) -> type[CustomDirective]:
    """The `PropDict` directive of `count` properties (a custom directive's parameters
    are its dataclass fields)."""
    fields = {"__annotations__": {f"p{i}": AttributeVariable for i in range(count)}, "__module__": __name__,
              "__qualname__": "PropDict"}
    return irdl_custom_directive(type("PropDict", (_PropDict,), fields))


def _prop_directive(names: list[str]) -> str:
    return f"custom<PropDict>({', '.join('$' + n for n in names)})" if names else ""


def _assembly_format(entry: OpDef) -> str | None:
    """The declarative format of an op-table entry: operands in signature order (a tensor
    array in brackets), properties, attributes, types. None (the generic format only)
    for a signature it cannot tell apart."""
    params = entry.tensor_params
    kinds = ["array" if isinstance(p.type, ast.ArrayType) else "optional" if p.default is not None else "tensor"
             for p in params]
    names = ["$" + field_name(p.name) for p in params]
    props = _prop_directive([field_name(p.name) for p in entry.attribute_params])
    results_variadic = any(isinstance(r.type, ast.ArrayType) for r in entry.results)
    if not params:
        types = "(`:` type(results)^)?" if results_variadic else "`:` type(results)"
        return " ".join(part for part in (props, "attr-dict", types) if part)
    tail = "attr-dict `:` functional-type(operands, results)"
    flexible = [i for i, k in enumerate(kinds) if k != "tensor"]
    if not flexible or (len(flexible) == 1 and (kinds[flexible[0]] == "array" or flexible[0] == len(kinds) - 1)):
        # `%a, %b, [%c, %d]`; a trailing optional tensor after a comma, when present.
        parts = []
        for i, (kind, name) in enumerate(zip(kinds, names)):
            if kind == "optional" and i:
                parts.append(f"(`,` {name}^)?")
                continue
            if i:
                parts.append("`,`")
            # `[` first: the space after the operation's name is to be asked for
            parts.append(f"{'' if i else '` ` '}`[` {name} `]`" if kind == "array" else name)
        return " ".join(part for part in (*parts, props, tail) if part)
    if "array" in kinds or not any(k == "tensor" for k in kinds):
        return None
    # Several optional tensors: each by its name, with its type: `%x scales(%s : tensor<4xf32>)`.
    parts, required = [], []
    for kind, name, param in zip(kinds, names, params):
        if kind == "optional":
            parts.append(f"(`{param.name}` `(` {name}^ `:` type({name}) `)`)?")
            continue
        if required:
            parts.append("`,`")
        parts.append(name)
        required.append(f"type({name})")
    operand_types = required[0] if len(required) == 1 else f"`(` {' `,` '.join(required)} `)`"
    return " ".join(part for part in (*parts, props, f"attr-dict `:` {operand_types} `->` type(results)") if part)


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
    assembly_format = _assembly_format(entry)
    if assembly_format is not None:
        fields["assembly_format"] = assembly_format
        fields["custom_directives"] = (_prop_dict(len(entry.attribute_params)),)
    return irdl_op_definition(type(_class_name(entry.name), (IRDLOperation,), fields))


OPERATIONS: dict[str, type[IRDLOperation]] = {name: make_operation(e) for name, e in op_table().items()}


@irdl_op_definition
class GraphOp(IRDLOperation):
    """The graph: its name, inputs and outputs, and its body."""

    name = "nnef.graph"
    sym_name = prop_def(SymbolNameConstraint())
    inputs = prop_def(ArrayAttr)
    outputs = prop_def(ArrayAttr)
    body = region_def("single_block")

    assembly_format = "$sym_name `inputs` $inputs `outputs` $outputs attr-dict-with-keyword $body"


@irdl_op_definition
class ReturnOp(IRDLOperation):
    name = "nnef.return"
    values = var_operand_def(TensorType)
    traits = traits_def(IsTerminator())

    assembly_format = "attr-dict ($values^ `:` type($values))?"


@irdl_op_definition
class FragmentOp(IRDLOperation):
    """A fragment the model defines or declares, kept as its NNEF text."""

    name = "nnef.fragment"
    sym_name = prop_def(SymbolNameConstraint())
    text = prop_def(StringAttr)
    traits = traits_def(NoTerminator())

    assembly_format = "$sym_name $text attr-dict"


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
    callee = prop_def(SymbolNameConstraint())

    custom_directives = (_prop_dict(2),)
    assembly_format = ("$callee `(` $arguments `)` custom<PropDict>($operand_names, $args) attr-dict "
                       "`:` functional-type($arguments, $outputs)")


@irdl_op_definition
class OpaqueOp(_Invocation):
    """An operation of an unknown registry, kept unchanged."""

    name = "nnef.op"
    op_name = prop_def(StringAttr)

    custom_directives = (_prop_dict(2),)
    assembly_format = ("$op_name `(` $arguments `)` custom<PropDict>($operand_names, $args) attr-dict "
                       "`:` functional-type($arguments, $outputs)")


def _errors_at_the_operation(cls: type[IRDLOperation]) -> None:
    """The declarative format checks the types it has read (a tensor where a tensor is
    due) once the whole operation is read, raising VerifyException, which has no place
    in the text: make it a ParseError spanning the operation."""
    read = cls.__dict__["parse"].__func__

    def parse(op_type: type[IRDLOperation], parser: Parser) -> IRDLOperation:
        start = parser.pos
        try:
            return read(op_type, parser)
        except VerifyException as exc:
            end = min(parser.pos, parser.lexer.input.get_end_of_line(start))
            parser.raise_error(str(exc), start, max(start, end))

    cls.parse = classmethod(parse)


_OPERATIONS = [*OPERATIONS.values(), GraphOp, ReturnOp, FragmentOp, CallOp, OpaqueOp]
for _cls in _OPERATIONS:
    if _cls.assembly_format is not None:
        _errors_at_the_operation(_cls)
del _cls

NNEF = Dialect("nnef", _OPERATIONS, [])

__all__ = ["NNEF", "OPERATIONS", "GraphOp", "ReturnOp", "FragmentOp", "CallOp", "OpaqueOp",
           "tensor_type", "dtype_of", "to_attribute", "from_attribute", "weight_attribute", "weight_of",
           "field_name", "ELEMENT_TYPES"]
