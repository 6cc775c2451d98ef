"""Writing a model as an NNEF folder or archive, all or nothing.

Everything is written into a fresh temporary sibling of the destination, which is
renamed into place only once complete: a failed run leaves no partial output, and
the destination never aliases the input.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from nnefopt.dialects.weights import missing_weight
from nnefopt.errors import Location, NNEFError
from nnefopt.export.nnef_text import format_model, format_quantization
from nnefopt.frontend.bundle import ARCHIVE_SUFFIXES, label_problem
from nnefopt.frontend.model import Model
from nnefopt.frontend.tensor_file import write_tensor



def save_model(model: Model, destination: str | Path) -> None:
    _require_weights(model)
    destination = Path(destination)
    parent = destination.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NNEFError(f"cannot create the output's folder: {exc.strerror}", Location(str(destination))) from None
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=parent))
    except OSError as exc:
        raise NNEFError(f"cannot write the output: {exc.strerror}", Location(str(destination))) from None
    try:
        folder = staging / "model"
        folder.mkdir()
        _write_folder(model, folder)
        if destination.name.endswith(ARCHIVE_SUFFIXES):
            archive = staging / destination.name
            mode = "w" if destination.name.endswith(".tar") else "w:gz"
            with tarfile.open(archive, mode) as tar:
                for path in sorted(folder.rglob("*")):
                    tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
            os.replace(archive, destination)
        else:
            _replace_folder(folder, destination)
    except OSError as exc:  # a full disk, a file that cannot be created: an error, not a traceback
        raise NNEFError(f"cannot write the output: {exc.strerror or exc}", Location(str(destination))) from None
    finally:  # on any failure, an interrupt (Ctrl-C) too: the staging folder goes, nothing is left
        shutil.rmtree(staging, ignore_errors=True)


def _require_weights(model: Model) -> None:
    """Before anything is written: a variable without data would be a graph.nnef naming a
    file that is not there; a label that cannot name a file in the folder (too long, or
    leaving it: absolute, `..`) would fail midway or write outside it."""
    for op in model.operations:
        if op.name != "variable":
            continue
        label = op.attribs["label"]
        problem = label_problem(label)
        if problem:
            raise NNEFError(problem, op.loc)
        if model.tensors[op.outputs["output"]].data is None:
            raise missing_weight(label, op.loc)


def _write_folder(model: Model, folder: Path) -> None:
    (folder / "graph.nnef").write_text(format_model(model), encoding="utf-8")
    quant = format_quantization(model)
    if quant:
        (folder / "graph.quant").write_text(quant, encoding="utf-8")
    written: set[str] = set()
    for op in model.operations:
        if op.name != "variable":
            continue
        label = op.attribs["label"]
        tensor = model.tensors[op.outputs["output"]]
        if label in written:
            continue
        written.add(label)
        path = folder / f"{label}.dat"
        path.parent.mkdir(parents=True, exist_ok=True)
        header = tensor.header
        if _copy_unchanged(tensor, path):
            continue
        if header is not None and header.dtype == tensor.data.dtype:  # as read: same item type and width
            write_tensor(path, tensor.data, bits=header.bits_per_item, quantized=header.is_quantized)
        else:
            write_tensor(path, tensor.data)


def _copy_unchanged(tensor, path: Path) -> bool:
    """A weight no pass changed is its file, byte for byte: copied, not re-encoded.
    Only while that file still is what was read (its size says the header still fits)."""
    origin, header = tensor.origin, tensor.header
    if origin is None or header is None or tuple(header.shape) != tuple(tensor.data.shape):
        return False
    try:
        if origin.stat().st_size != header.data_offset + header.data_length:
            return False
        shutil.copyfile(origin, path)
    except OSError:
        return False
    return True


def _replace_folder(folder: Path, destination: Path) -> None:
    if destination.exists() and not destination.is_dir():
        raise NNEFError("output exists and is not a folder", Location(str(destination)))
    if not destination.exists():
        os.rename(folder, destination)
        return
    # Swap in two renames so a reader never sees a half-written folder.
    retired = folder.parent / "previous"
    os.rename(destination, retired)
    try:
        os.rename(folder, destination)
    except BaseException:  # the previous output back in place, not removed with the staging folder
        os.rename(retired, destination)
        raise
