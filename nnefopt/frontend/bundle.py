"""Where a model's files are: a folder, a single graph file, or a .tgz/.tar bundle.

An archive is unpacked into a private temporary folder, but only after every member
has been checked: absolute names, `..`, links, devices and oversized contents are
refused, so nothing is ever written outside that folder and the input is only read.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from nnefopt.errors import Location, NNEFError
from nnefopt.frontend.convert import is_convertible, open_converted

ARCHIVE_SUFFIXES = (".tgz", ".tar.gz", ".tar")
MAX_MEMBERS = 100_000
MAX_UNPACKED_BYTES = 16 * 2**30


MAX_FILE_NAME = 255  # bytes of one path component: NAME_MAX of Linux, macOS and Windows file systems


def label_problem(label: str) -> str | None:
    """Why a variable label cannot name its `.dat` file, or None: each of its folders and
    its file name (with `.dat`) must fit a file system's name limit. Messages show the
    label's start only: a label may be 10,000 characters. A label is a path inside the
    model folder: not empty or absolute, no `.` or `..` parts, no backslash or NUL."""
    shown = label if len(label) <= 60 else f"{label[:60]}..."
    parts = label.split("/")
    if {"", ".", ".."} & set(parts) or "\\" in label or "\0" in label:
        return f"variable label '{shown}' must name a file inside the model folder"
    parts[-1] += ".dat"
    longest = max(len(part.encode("utf-8", "surrogatepass")) for part in parts)
    if longest <= MAX_FILE_NAME:
        return None
    return (f"variable label '{shown}' ({len(label)} characters) makes a file name of {longest} bytes; "
            f"file systems allow at most {MAX_FILE_NAME}")


class ModelSource:
    """The model's files on disk; `close()` (or leaving the `with`) removes any unpacked copy."""

    def __init__(self, root: Path, graph_path: Path, display_name: str, unpacked: Path | None = None):
        self.root = root  # the folder holding graph.nnef
        self.graph_path = graph_path
        quant = root / "graph.quant"
        self.quant_path = quant if quant.is_file() and graph_path.name == "graph.nnef" else None
        self.display_name = display_name  # the model as the user named it
        self._unpacked = unpacked  # the temporary folder an archive went to

    def display(self, path: Path) -> str:
        """The name the user knows a file by: `model.tgz:graph.nnef` for archive members."""
        if self._unpacked is None:
            return str(path)
        return f"{self.display_name}:{path.relative_to(self._unpacked).as_posix()}"

    def tensor_path(self, label: str) -> Path:
        """The .dat file of a variable's label, which must stay inside the model folder."""
        problem = label_problem(label)
        if problem:
            raise NNEFError(problem, Location(self.display(self.graph_path)))
        *folders, name = label.split("/")
        return self.root.joinpath(*folders, name + ".dat")

    @property
    def lasting(self) -> bool:
        """Whether the files stay after loading (a folder), or go (an unpacked archive)."""
        return self._unpacked is None

    def close(self) -> None:
        if self._unpacked is not None:
            shutil.rmtree(self._unpacked, ignore_errors=True)
            self._unpacked = None

    def __enter__(self) -> ModelSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_model(path: str | Path, *, max_bytes: int = MAX_UNPACKED_BYTES,
               max_members: int = MAX_MEMBERS) -> ModelSource:
    """Open a model folder, graph file or archive; the limits bound what an archive may unpack to."""
    path = Path(path)
    if path.is_dir():
        graph = path / "graph.nnef"
        if not graph.is_file():
            raise NNEFError("folder has no graph.nnef", Location(str(path)))
        return ModelSource(path, graph, str(path))
    if not path.exists():
        raise NNEFError("no such file or folder", Location(str(path)))
    if is_convertible(path):  # ONNX, TFLite: converted by nnef-tools into a temporary folder
        return open_converted(path)
    if path.name.endswith(ARCHIVE_SUFFIXES):
        return _open_archive(path, max_bytes, max_members)
    return ModelSource(path.parent, path, str(path))


def _open_archive(path: Path, max_bytes: int, max_members: int) -> ModelSource:
    unpacked = Path(tempfile.mkdtemp(prefix="nnefopt-"))
    try:
        with tarfile.open(path, "r:*") as tar:
            members = _checked_members(tar, path, unpacked, max_bytes, max_members)
            # The 'data' filter is a second guard behind the checks; it also drops odd permissions.
            tar.extractall(unpacked, members=members, filter="data")
        root = _graph_folder(unpacked, path)
        return ModelSource(root, root / "graph.nnef", str(path), unpacked)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:  # corrupt or truncated
        shutil.rmtree(unpacked, ignore_errors=True)
        raise NNEFError(f"cannot read archive: {exc}", Location(str(path))) from None
    except BaseException:
        shutil.rmtree(unpacked, ignore_errors=True)
        raise


def _checked_members(tar: tarfile.TarFile, path: Path, unpacked: Path, max_bytes: int,
                     max_members: int) -> list[tarfile.TarInfo]:
    """Every member, refused before anything is written if one could escape `unpacked`
    or the whole would exceed the limits (a bomb)."""
    members, total, root = [], 0, os.path.realpath(unpacked)
    for member in tar:  # reads headers one by one: a bomb is stopped before its end
        problem = _member_problem(member, root)
        if problem:
            raise NNEFError(f"member '{member.name}' {problem}; refusing to unpack", Location(str(path)))
        members.append(member)
        total += member.size
        excess = (f"more than {max_members} members" if len(members) > max_members
                  else f"more than {max_bytes} bytes" if total > max_bytes else None)
        if excess:
            raise NNEFError(f"archive holds {excess} (at member '{member.name}'); refusing to unpack",
                            Location(str(path)))
    return members


def _member_problem(member: tarfile.TarInfo, root: str) -> str | None:
    name = PurePosixPath(member.name)
    if name.is_absolute():
        return "has an absolute name"
    if ".." in name.parts:
        return "points outside the archive with '..'"
    if member.issym() or member.islnk():
        return "is a link"
    if not (member.isfile() or member.isdir()):
        return "is a device or special file"
    if os.path.commonpath([os.path.realpath(os.path.join(root, *name.parts)), root]) != root:
        return "would land outside the unpacking folder"
    return None


def _graph_folder(unpacked: Path, path: Path) -> Path:
    """graph.nnef at the top of the archive, or inside its single top-level folder."""
    if (unpacked / "graph.nnef").is_file():
        return unpacked
    entries = list(unpacked.iterdir())
    if len(entries) == 1 and (entries[0] / "graph.nnef").is_file():
        return entries[0]
    raise NNEFError("archive has no graph.nnef at its top level or in a single top-level folder",
                    Location(str(path)))
