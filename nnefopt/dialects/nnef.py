"""The `nnef` dialect: one xDSL operation class per entry of the op table, generated.

An NNEF tensor parameter becomes an operand (a tensor array: a variadic operand; an
optional tensor: an optional operand, absent meaning the default), an attribute
parameter a property, a result a result. Around them:

- `nnef.graph` holds the graph body in one block, ending with `nnef.return`;
- `nnef.fragment` keeps a fragment the model defines (its NNEF text), and `nnef.call`
  invokes it; `nnef.op` carries an operation of a registry nnefopt does not know.

Weights stay out of the IR text: `nnef.variable` refers to its data by a
`dense_resource` attribute, which holds the array (memory-mapped) too: see weights.py.
"""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import (
    ArrayAttr,
    DictionaryAttr,
    StringAttr,
    SymbolNameConstraint,
    TensorType,
)
from xdsl.ir import Attribute, Dialect, Operation
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
from xdsl.parser import Parser
from xdsl.traits import IsTerminator, NoTerminator, Pure
from xdsl.utils.exceptions import VerifyException

from nnefopt.dialects.assembly import format_of, prop_dict, property_names

# Re-exported (see __all__): what the dialect's users import with it, from the modules
# that own each concern.
from nnefopt.dialects.attributes import dim_symbol, from_attribute, symbolic_dim, to_attribute
from nnefopt.dialects.layout import LAYOUT, is_channel_last
from nnefopt.dialects.names import field_name
from nnefopt.dialects.quantization import QuantAttr
from nnefopt.dialects.types import ELEMENT_TYPES, dtype_of, tensor_type
from nnefopt.dialects.verifier import verify_operation
from nnefopt.dialects.weights import origin_of, weight_attribute, weight_of
from nnefopt.frontend import ast
from nnefopt.ops import OpDef, on_register, op_table
from nnefopt.traits import ChannelLastCapable, Effectful

# ---- operations from the op table -------------------------------------------------------


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) + "Op"


def make_operation(entry: OpDef) -> type[IRDLOperation]:
    fields: dict[str, object] = {"name": f"nnef.{entry.name}", "OP_DEF": entry, "verify_": verify_operation,
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
    if entry.has_trait(ChannelLastCapable):
        fields[LAYOUT] = opt_prop_def(StringAttr)  # "nhwc": input and result stored channel-last
    for result in entry.results:
        fields[field_name(result.name)] = (
            var_result_def(TensorType) if isinstance(result.type, ast.ArrayType) else result_def(TensorType)
        )
    if optional_or_variadic > 1:
        fields["irdl_options"] = (AttrSizedOperandSegments(as_property=True),)
    # NNEF operations are functions of their inputs, but for graph inputs and updates
    pure = () if entry.has_trait(Effectful) else (Pure(),)
    fields["traits"] = traits_def(*pure, *entry.traits)
    assembly_format = format_of(entry)
    if assembly_format is not None:
        fields["assembly_format"] = assembly_format
        fields["custom_directives"] = (prop_dict(len(property_names(entry))),)
    cls = irdl_op_definition(type(_class_name(entry.name), (IRDLOperation,), fields))
    if cls.assembly_format is not None:
        _errors_at_the_operation(cls)
    return cls


OPERATIONS: dict[str, type[IRDLOperation]] = {}


@irdl_op_definition
class GraphOp(IRDLOperation):
    """The graph: its name, inputs and outputs, and its body."""

    name = "nnef.graph"
    sym_name = prop_def(SymbolNameConstraint())
    inputs = prop_def(ArrayAttr)
    outputs = prop_def(ArrayAttr)
    body = region_def("single_block")

    assembly_format = "$sym_name `inputs` $inputs `outputs` $outputs attr-dict-with-keyword $body"

    def verify_(self) -> None:
        # xDSL resolves forward references and checks no dominance; NNEF text cannot use
        # a value before the statement that assigns it, so neither may the graph.
        block, earlier = self.body.block, set()
        for op in block.ops:
            for operand in op.operands:
                owner = operand.owner
                if not isinstance(owner, Operation) or owner.parent is not block:
                    raise VerifyException(f"'{op.name}' uses %{operand.name_hint or '?'}, which is defined "
                                          "outside the graph")
                if owner not in earlier:
                    raise VerifyException(f"'{op.name}' uses %{operand.name_hint or '?'} before the operation "
                                          "that defines it")
            earlier.add(op)


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

    custom_directives = (prop_dict(2),)
    assembly_format = ("$callee `(` $arguments `)` custom<PropDict>($operand_names, $args) attr-dict "
                       "`:` functional-type($arguments, $outputs)")


@irdl_op_definition
class OpaqueOp(_Invocation):
    """An operation of an unknown registry, kept unchanged."""

    name = "nnef.op"
    op_name = prop_def(StringAttr)

    custom_directives = (prop_dict(2),)
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


_STRUCTURE = [GraphOp, ReturnOp, FragmentOp, CallOp, OpaqueOp]
for _cls in _STRUCTURE:
    if _cls.assembly_format is not None:
        _errors_at_the_operation(_cls)
del _cls


def _add_operations(entries: list[OpDef]) -> None:
    OPERATIONS.update((e.name, make_operation(e)) for e in entries)


_add_operations(list(op_table().values()))
on_register(_add_operations)  # operations registered later get their classes too


def nnef_dialect() -> Dialect:
    """The dialect with every operation of the op table, those registered since import too."""
    return Dialect("nnef", [*OPERATIONS.values(), *_STRUCTURE], [QuantAttr])


NNEF = nnef_dialect()  # as imported; xDSL contexts take nnef_dialect(), registered operations too

__all__ = ["NNEF", "OPERATIONS", "GraphOp", "ReturnOp", "FragmentOp", "CallOp", "OpaqueOp",
           "tensor_type", "dtype_of", "to_attribute", "from_attribute", "dim_symbol", "symbolic_dim",
           "weight_attribute", "weight_of", "origin_of", "field_name", "ELEMENT_TYPES",
           "nnef_dialect", "is_channel_last", "LAYOUT"]
