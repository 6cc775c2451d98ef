"""`--split-input-file`: MLIR text as independent cases, mlir-opt's convention.

Lines `// -----` separate the cases; each is parsed, run and printed alone, so one
file holds many small tests (one per `CHECK-LABEL`). A case keeps the line numbers it
has in the file: errors point into the file, not into the case.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from nnefopt.errors import Location, NNEFError

SEPARATOR = "// -----"
_SEPARATOR_LINE = re.compile(r"^[ \t]*// -----[ \t]*$")


def split_cases(text: str) -> list[str]:
    """The cases of `text`, each preceded by as many empty lines as the file has before it."""
    cases, start, current = [], 0, []
    for number, line in enumerate(text.splitlines(keepends=True)):
        if _SEPARATOR_LINE.match(line.rstrip("\r\n")):
            cases.append("\n" * start + "".join(current))
            start, current = number + 1, []
        else:
            current.append(line)
    cases.append("\n" * start + "".join(current))
    return cases


def read_source(source: str) -> str:
    """The text of a `.mlir` file, or of standard input for `-`."""
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NNEFError(str(exc), Location(source)) from None
