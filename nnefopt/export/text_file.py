"""Writing a text output (MLIR, and the text forms to come), all or nothing.

The text goes to a fresh temporary sibling of the destination, renamed into place once
complete: a failed run leaves the previous file, or none, never half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from nnefopt.errors import Location, NNEFError


def write_text(destination: str | Path, text: str) -> None:
    destination = Path(destination)
    try:
        parent = destination.resolve().parent
        parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", dir=parent)
    except OSError as exc:
        raise NNEFError(f"cannot write the output: {exc.strerror}", Location(str(destination))) from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, destination)
    except OSError as exc:
        raise NNEFError(f"cannot write the output: {exc.strerror}", Location(str(destination))) from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
