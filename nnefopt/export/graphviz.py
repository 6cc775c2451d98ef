"""Dot text rendered by Graphviz's `dot` program, which nnefopt runs but does not ship."""

from __future__ import annotations

import shutil
import subprocess

from nnefopt.errors import NNEFError

DOT_PROGRAM = "dot"
TIMEOUT_SECONDS = 120.0  # a 10,000-operation graph lays out in well under this; a hang is a Graphviz bug
MISSING = ("rendering needs Graphviz's 'dot' program, which is not on PATH: install the Debian package "
           "graphviz (apt-get install graphviz), or write the dot text with --emit=dot")


def render(dot_text: str, fmt: str = "svg", timeout: float = TIMEOUT_SECONDS) -> str:
    """`dot_text` laid out and drawn by Graphviz in `fmt` (a text format: svg)."""
    program = shutil.which(DOT_PROGRAM)
    if program is None:
        raise NNEFError(MISSING)
    try:
        done = subprocess.run([program, f"-T{fmt}"], input=dot_text, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise NNEFError(f"Graphviz took more than {timeout:g} s to lay out the graph; --emit=dot writes it "
                        "without a layout") from None
    except OSError as exc:
        raise NNEFError(f"cannot run Graphviz's '{program}': {exc.strerror}") from None
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["no message"])[0]
        raise NNEFError(f"Graphviz failed to draw the graph: {first}")
    return done.stdout
