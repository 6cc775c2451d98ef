"""Checks of MLIR text made before xDSL's parser sees it.

xDSL lexes a string literal with a regular expression that backtracks exponentially
when the closing quote is missing: a long weights blob cut short keeps it busy for
minutes. Each literal is checked here first, in linear time (possessive quantifiers),
and an unclosed one is refused at its place."""

from __future__ import annotations

import re

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


def check_attribute_names(module, name: str) -> None:
    """xDSL prints a non-ASCII attribute name as escaped bytes, which its parser does not
    read back as a name: such a module could be read but never written faithfully."""
    for op in module.walk():
        for key in op.attributes:
            if not key.isascii():
                raise NNEFError(f"attribute name {key!r} of '{op.name}' is not ASCII", Location(name))
