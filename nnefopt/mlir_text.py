"""MLIR text as xDSL's parser reads it back: checks made before the parser sees the
text, and a printer whose string literals read back as strings.

xDSL lexes a string literal with a regular expression that backtracks exponentially
when the closing quote is missing: a long weights blob cut short keeps it busy for
minutes. Each literal is checked here first, in linear time (possessive quantifiers),
and an unclosed one is refused at its place."""

from __future__ import annotations

import re

from xdsl.dialects.builtin import (
    ArrayAttr,
    BytesAttr,
    DenseResourceAttr,
    DictionaryAttr,
    FileLineColLoc,
    IntegerAttr,
    StringAttr,
)
from xdsl.ir import ParametrizedAttribute
from xdsl.printer import Printer

from nnefopt.errors import Location, NNEFError

# A comment, a whole string literal (escapes as MLIR has them), a quote that opens no
# whole literal, or a run of anything else.
_PIECES = re.compile(r'//[^\n]*+|"(?:[^"\\\n\v\f]++|\\(?:["nt\\]|[0-9A-Fa-f]{2}))*+"|(")|[^"/]++|/')


def check_string_literals(text: str, name: str) -> None:
    for piece in _PIECES.finditer(text):
        if piece.group(1) is not None:
            start = piece.start()
            line = text.count("\n", 0, start) + 1
            column = start - (text.rfind("\n", 0, start) + 1) + 1
            raise NNEFError("string literal not closed on its line (or with an invalid escape)",
                            Location(name, line, column))


class TextPrinter(Printer):
    """xDSL's printer, its string literals read back as the same strings. xDSL writes each
    non-ASCII byte as an escape (`mod\\C3\\A8le`, as MLIR does), but its lexer takes a
    literal holding an escape and a non-ASCII byte for a bytes literal, which neither a
    location nor a string attribute accepts: a model loaded from /tmp/modèle/ printed
    locations nnefopt could not read. Printable characters are valid in an MLIR string
    literal as they are, so a string of printable characters is written as itself; one
    that needs an escape as well (a quote, a control character) stays escaped, and a
    location of that kind is refused on reading, at its place."""

    def print_string_literal(self, string: str):
        if string.isascii() or not _prints_back(string):
            super().print_string_literal(string)
        else:
            self.print_string(f'"{string}"')


def _prints_back(string: str) -> bool:
    """Whether TextPrinter writes `string` as a literal that reads back as a string."""
    return string.isascii() or all(c.isprintable() and c not in '"\\' for c in string)


def _strings(attr) -> bool:
    return isinstance(attr, ArrayAttr) and all(isinstance(a, StringAttr) for a in attr.data)


def _integers(count: int):
    return lambda attr: isinstance(attr, ArrayAttr) and len(attr.data) == count and \
        all(isinstance(a, IntegerAttr) for a in attr.data)


def _item_type(attr) -> bool:
    """A variable's [item type code, bits per item] is a pair a tensor file can hold."""
    from nnefopt.frontend.tensor_file import item_problem

    code, bits = (a.value.data for a in attr.data)
    return item_problem(code, bits) is None


# The dialect's discardable attributes and the form each must have: what the exporter and
# the passes read from them (text from elsewhere may hold anything).
_DIALECT_ATTRIBUTES = {
    "nnef.explicit": _strings,
    "nnef.names": _strings,
    "nnef.extensions": _strings,
    "nnef.item": lambda attr: _integers(2)(attr) and _item_type(attr),
    "nnef.version": _integers(2),
    "nnef.dims": lambda attr: isinstance(attr, DictionaryAttr),
    "nnef.data": lambda attr: isinstance(attr, DenseResourceAttr),
}


def _as_text(attr, strings: bool = True):
    """`attr` with each bytes literal that is UTF-8 read as a string: xDSL prints a
    string that is not ASCII as escaped bytes, and reads those back as bytes. The nnef
    dialect holds no bytes, so what it reads as bytes in its fields, arrays, dictionaries
    and attributes was written as a string (`strings`); a builtin attribute's own bytes
    (a dense literal's data) stay bytes."""
    if isinstance(attr, BytesAttr):
        if not strings:
            return attr
        try:
            return StringAttr(attr.data.decode("utf-8"))
        except UnicodeDecodeError:
            return attr
    if isinstance(attr, ArrayAttr):
        items = [_as_text(a) for a in attr.data]
        return attr if all(a is b for a, b in zip(items, attr.data)) else ArrayAttr(items)
    if isinstance(attr, DictionaryAttr):
        entries = {k: _as_text(a) for k, a in attr.data.items()}
        return attr if all(entries[k] is a for k, a in attr.data.items()) else DictionaryAttr(entries)
    if isinstance(attr, ParametrizedAttribute):
        ours = attr.name.startswith("nnef.")
        parameters = [_as_text(a, ours) for a in attr.parameters]
        if all(a is b for a, b in zip(parameters, attr.parameters)):
            return attr
        return type(attr).new(parameters)
    return attr


def strings_as_read(module) -> None:
    """Every string of the module (properties, attributes, types) as it was printed."""
    for op in module.walk():
        for fields in (op.properties, op.attributes):
            for key, attr in fields.items():
                fields[key] = _as_text(attr)
        for value in [*op.results, *(a for region in op.regions for block in region.blocks for a in block.args)]:
            typed = _as_text(value.type)
            if typed is not value.type:
                value.type = typed


def check_attributes(module, name: str) -> None:
    """Attributes that could be read but never written faithfully, or that the exporter
    would trip on: a non-ASCII attribute name, an `nnef.` attribute the dialect does not
    know, or one of another form, a location whose file name mixes non-ASCII characters
    with ones that need an escape (TextPrinter writes it as a bytes literal, which no
    location reads)."""
    for op in module.walk():
        for key in ("inputs", "outputs") if op.name == "nnef.graph" else ():
            if not _strings(op.properties.get(key)):
                raise NNEFError(f"the {key} of 'nnef.graph' must be an array of tensor names (strings)",
                                Location(name))
        if isinstance(op.location, FileLineColLoc) and not _prints_back(op.location.filename.data):
            raise NNEFError(f"the location file name {op.location.filename.data!r} of '{op.name}' holds "
                            "non-ASCII characters and control characters, quotes or backslashes: "
                            "MLIR cannot write it back", Location(name))
        for key, attr in op.attributes.items():
            if not key.isascii():
                raise NNEFError(f"attribute name {key!r} of '{op.name}' is not ASCII", Location(name))
            if not key.startswith("nnef."):
                continue
            check = _DIALECT_ATTRIBUTES.get(key)
            if check is None:
                raise NNEFError(f"'{op.name}' has attribute '{key}', which the nnef dialect does not know",
                                Location(name))
            if not check(attr):
                raise NNEFError(f"attribute '{key}' of '{op.name}' has the wrong form: {str(attr)[:80]}",
                                Location(name))


def check_registries(module, name: str) -> None:
    """A tract operation only in a module that declares a tract registry, as in NNEF text
    (`extension tract_registry tract_core;`): written without one, no reader takes it."""
    from nnefopt.export.from_ir import module_extensions
    from nnefopt.frontend.stdlib import is_tract_dialect, tract_operations

    if is_tract_dialect(module_extensions(module)):
        return
    tract = tract_operations()
    for op in module.walk():
        nnef_name = op.name.removeprefix("nnef.")
        if op.name.startswith("nnef.") and nnef_name in tract:
            raise NNEFError(f"'{op.name}' is a tract operation, but the module declares no tract registry "
                            "(nnef.extensions = [\"tract_registry tract_core\"])", Location(name))
