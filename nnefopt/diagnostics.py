"""Warnings as a person wants them: one line per kind, with how many and where the first was.

A model exported by one tool repeats the same liberty at every layer (four per batch
norm); ten lines about one thing hide the one line about another. Warnings are
collected while the command runs and printed grouped: a kind seen once prints as it
came; seen more, its first occurrence with the count. Verbose lists each as it comes.
A warning's kind is its message with the particulars (quoted names, numbers, lists)
taken out, so the same check about other tensors is the same kind.
"""

from __future__ import annotations

import re
import sys
import warnings
from contextlib import contextmanager
from typing import TextIO

from nnefopt.errors import NNEFWarning

# The particulars of a message: quoted names, bracketed lists, numbers.
_PARTICULARS = re.compile(r"'[^']*'|\[[^\]]*\]|\(?[-+]?\d[\w.+-]*\)?")


def warning_kind(message: str) -> str:
    return _PARTICULARS.sub("_", message)


class WarningReport:
    """Warnings in order of their kind's first occurrence, each kind counted."""

    def __init__(self, stream: TextIO | None = None, verbose: bool = False):
        self.stream = stream
        self.verbose = verbose
        self._kinds: dict[str, list[str]] = {}  # kind -> [first line, ...] (verbose keeps none)

    def add(self, text: str, message: str) -> None:
        if self.verbose:
            print(text, file=self._out())
            return
        seen = self._kinds.setdefault(warning_kind(message), [])
        seen.append(text)

    def lines(self) -> list[str]:
        lines = []
        for seen in self._kinds.values():
            extra = len(seen) - 1
            lines.append(seen[0] if not extra else
                         f"{seen[0]} (and {extra} more like it; -v lists each)")
        return lines

    def flush(self) -> None:
        """Print what was collected (before an error, and at the end) and start afresh."""
        for line in self.lines():
            print(line, file=self._out())
        self._kinds.clear()

    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr


@contextmanager
def reported_warnings(quiet: bool = False, verbose: bool = False, stream: TextIO | None = None):
    """Within it, NNEF warnings go to the report yielded (none with `quiet`), other
    warnings print at once as `warning: ...`; what is left prints when it ends."""
    report = WarningReport(stream, verbose)

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, NNEFWarning):
            report.add(str(message), getattr(message, "message", str(message)))
        else:
            print(f"warning: {message}", file=report._out())

    with warnings.catch_warnings():
        warnings.showwarning = show
        warnings.simplefilter("ignore" if quiet else "always", NNEFWarning)
        try:
            yield report
        finally:
            report.flush()
