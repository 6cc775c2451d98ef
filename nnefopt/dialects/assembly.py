"""The custom assembly format of the generated operations."""

from __future__ import annotations

import dataclasses
import functools
import io

from xdsl.dialects.builtin import (
    ArrayAttr,
    DictionaryAttr,
    FloatAttr,
    IntegerAttr,
    UnitAttr,
    f64,
    i64,
)
from xdsl.ir import Attribute
from xdsl.irdl import (
    IRDLOperation,
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

from nnefopt.dialects.layout import LAYOUT
from nnefopt.dialects.names import field_name
from nnefopt.frontend import ast
from nnefopt.ops import OpDef
from nnefopt.traits import ChannelLastCapable

# ---- the custom assembly format -------------------------------------------------------
#
# Every operation reads and prints in a custom form besides xDSL's generic one:
#
#   %c = nnef.conv %x, %w, %b <{border = "constant", stride = [1, 1]}> {nnef.explicit = [...]}
#            : (tensor<1x4x8x8xf32>, tensor<4x4x3x3xf32>, tensor<4xf32>) -> tensor<1x4x8x8xf32>
#
# It is xDSL's declarative assembly format, one format string per operation made from
# its op-table entry (`assembly_format`), with one custom directive, `PropDict`: the
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
def prop_dict(count: int) -> type[CustomDirective]:
    """The `PropDict` directive of `count` properties (a custom directive's parameters
    are its dataclass fields)."""
    fields = {"__annotations__": {f"p{i}": AttributeVariable for i in range(count)}, "__module__": __name__,
              "__qualname__": "PropDict"}
    return irdl_custom_directive(type("PropDict", (_PropDict,), fields))


def _prop_directive(names: list[str]) -> str:
    return f"custom<PropDict>({', '.join('$' + n for n in names)})" if names else ""


def property_names(entry: OpDef) -> list[str]:
    """The operation's properties: its attribute parameters, then `layout` where it may
    be channel-last."""
    names = [field_name(p.name) for p in entry.attribute_params]
    return names + [LAYOUT] if entry.has_trait(ChannelLastCapable) else names


def format_of(entry: OpDef) -> str | None:
    """The declarative format of an op-table entry: operands in signature order (a tensor
    array in brackets), properties, attributes, types. None (the generic format only)
    for a signature it cannot tell apart."""
    params = entry.tensor_params
    kinds = ["array" if isinstance(p.type, ast.ArrayType) else "optional" if p.default is not None else "tensor"
             for p in params]
    names = ["$" + field_name(p.name) for p in params]
    props = _prop_directive(property_names(entry))
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


