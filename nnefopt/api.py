"""The Python API: load a model into the `nnef` dialect, print it, save it."""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import ParseError

from nnefopt.errors import Location, NNEFError
from nnefopt.export.folder import save_model
from nnefopt.export.from_ir import export_module
from nnefopt.frontend.loader import load_model
from nnefopt.importer import context, import_model


def load(path: str | Path, *, strict: bool = False) -> ModuleOp:
    """An NNEF folder, graph file or archive, or MLIR text (`.mlir`, or `-` for stdin)."""
    text_path = str(path)
    if text_path == "-" or text_path.endswith(".mlir"):
        text = sys.stdin.read() if text_path == "-" else _read(Path(path))
        return parse_mlir(text, "<stdin>" if text_path == "-" else text_path)
    return import_model(load_model(path, strict=strict))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NNEFError(str(exc), Location(str(path))) from None


def parse_mlir(text: str, name: str = "<string>") -> ModuleOp:
    try:
        module = Parser(context(), text, name).parse_module()
        module.verify()
    except ParseError as exc:
        # xDSL says "file:line:col", the source line, a caret, then the message.
        lines = [line.strip() for line in str(exc).strip().splitlines()]
        file, line, column = (lines[0].rsplit(":", 2) + ["0", "0"])[:3] if lines else (name, "0", "0")
        where = Location(file, int(line), int(column)) if line.isdigit() and column.isdigit() else Location(name)
        raise NNEFError(lines[-1] if lines else "cannot parse MLIR", where) from None
    except Exception as exc:  # xDSL's verifier raises its own exception types
        raise NNEFError(f"invalid module: {exc}", Location(name)) from None
    return module


def optimize(module: ModuleOp, pipeline: str, *, verify_each: bool = True, callback=None) -> ModuleOp:
    """Run an xDSL pass pipeline (`"cse,dce"`) on the module, in place; returns it."""
    from nnefopt.passes import parse_pipeline

    def between(previous, op, following):
        if verify_each and previous is not None:
            try:
                op.verify()
            except Exception as exc:
                raise NNEFError(f"the IR is invalid after pass '{previous.name}': {exc}") from None
        if callback is not None:
            callback(previous, op, following)

    parse_pipeline(pipeline, between).apply(context(), module)
    return module


def run(module: ModuleOp, inputs: dict[str, np.ndarray], *, record: bool = False) -> dict[str, np.ndarray]:
    """The module's outputs for `inputs` (by graph input name), by the reference interpreter;
    with `record`, every intermediate tensor too."""
    from nnefopt.interp.interpreter import run_model

    return run_model(export_module(module), inputs, record=record)


def to_mlir(module: ModuleOp) -> str:
    stream = io.StringIO()
    Printer(stream=stream, print_debuginfo=True).print_op(module)
    return stream.getvalue() + "\n"


def save(module: ModuleOp, path: str | Path, *, emit: str = "nnef") -> None:
    """NNEF folder or archive; or MLIR text (written atomically) when emit is 'mlir'."""
    if emit == "mlir":
        path = Path(path)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.resolve().parent)
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(to_mlir(module))
        os.replace(temporary, path)
        return
    save_model(standard_model(module), path)


def standard_model(module: ModuleOp):
    """The module as the model nnefopt writes: tract's operations in standard spelling.
    The caller's module is left as it is."""
    from nnefopt.passes.lower_tract import LowerTract

    standard = module.clone()
    LowerTract().apply(context(), standard)
    return export_module(standard)
