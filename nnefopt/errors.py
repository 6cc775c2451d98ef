"""Diagnostics: one error type that knows where it happened, and warnings alike.

Every problem with user input is reported as `NNEFError`; the CLI prints it as
`file:line:col: error: message` (or `file: error: field: message` for binary files)
and exits 1. Anything else escaping is a bug in nnefopt, not in the input.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple


class Location(NamedTuple):
    """A place in an input: a text position, or a field of a binary file.

    A tuple rather than a dataclass: every syntax node carries one, so it must be cheap."""

    file: str
    line: int = 0
    column: int = 0
    field: str | None = None  # binary inputs: the header field or tensor name

    def __str__(self) -> str:
        text = self.file
        if self.line:
            text += f":{self.line}:{self.column}"
        if self.field:
            text += f": {self.field}"
        return text


class _Located:
    """A message about a place in the input, printed as a compiler prints it."""

    severity = ""

    def __init__(self, message: str, location: Location | None = None):
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        if self.location is None:
            return f"{self.severity}: {self.message}"
        return f"{self.location}: {self.severity}: {self.message}"


class NNEFError(_Located, Exception):
    """Bad input, with the location that proves it."""

    severity = "error"


class NNEFWarning(_Located, UserWarning):
    """Input accepted leniently; the message says what was assumed."""

    severity = "warning"


def warn(message: str, location: Location | None = None) -> None:
    warnings.warn(NNEFWarning(message, location), stacklevel=2)
