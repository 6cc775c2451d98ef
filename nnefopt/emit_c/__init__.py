"""The C99 emitter: a model as a standalone, allocation-free C library.

`emit(module, prefix)` gives the files (name -> text or bytes) of a module that has
been through the c target's export pipeline; `write(module, folder, prefix)` writes
them all or none. The target `c` (nnefopt.targets) calls these.
"""

from __future__ import annotations

from pathlib import Path

from xdsl.dialects.builtin import ModuleOp

from nnefopt.errors import NNEFError


def check_prefix(prefix: str) -> str:
    if not prefix.isidentifier() or not prefix.isascii():
        raise NNEFError(f"--c-prefix '{prefix}' is not a C identifier")
    return prefix


def emit(module: ModuleOp, prefix: str = "model") -> dict[str, str | bytes]:
    from nnefopt.emit_c.lower import lower
    from nnefopt.emit_c.writer import files

    return files(lower(module), check_prefix(prefix))


def write(module: ModuleOp, folder: str | Path, prefix: str = "model") -> None:
    from nnefopt.emit_c.writer import write_folder

    write_folder(Path(folder), emit(module, prefix))  # everything made before anything is written
