"""Where a model's files are: a folder, a single graph file, or a .tgz/.tar bundle.

An archive is unpacked into a private temporary folder, but only after every member
has been checked: absolute names, `..`, links, devices and oversized contents are
refused, so nothing is ever written outside that folder.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from nnefopt.errors import Location, NNEFError

ARCHIVE_SUFFIXES = (".tgz", ".tar.gz", ".tar")
MAX_MEMBERS = 100_000
MAX_UNPACKED_BYTES = 16 * 2**30


class ModelSource:
    def __init__(self, root: Path, graph_path: Path, display_prefix: str | None = None,
                 temporary: Path | None = None):
        self.root = root
        self.graph_path = graph_path
        quant = root / "graph.quant"
        self.quant_path = quant if quant.is_file() and graph_path.name == "graph.nnef" else None
        self._prefix = display_prefix  # archive name, for messages about its members
        self._temporary = temporary

    def display(self, path: Path) -> str:
        """The name the user knows a file by: `model.tgz:graph.nnef` for archive members."""
        if self._prefix is None:
            return str(path)
        return f"{self._prefix}:{path.relative_to(self.root).as_posix()}"

    def tensor_path(self, label: str) -> Path:
        parts = PurePosixPath(label).parts
        if not label or label.startswith("/") or ".." in parts or "\\" in label:
            raise NNEFError(f"variable label '{label}' must name a file inside the model folder",
                            Location(self.display(self.graph_path)))
        return self.root.joinpath(*parts).with_name(parts[-1] + ".dat")

    def close(self) -> None:
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None

    def __enter__(self) -> "ModelSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_model(path: str | Path) -> ModelSource:
    path = Path(path)
    if path.is_dir():
        graph = path / "graph.nnef"
        if not graph.is_file():
            raise NNEFError("folder has no graph.nnef", Location(str(path)))
        return ModelSource(path, graph)
    if not path.exists():
        raise NNEFError("no such file or folder", Location(str(path)))
    if path.name.endswith(ARCHIVE_SUFFIXES):
        return _open_archive(path)
    return ModelSource(path.parent, path)


def _open_archive(path: Path) -> ModelSource:
    where = Location(str(path))
    temporary = Path(tempfile.mkdtemp(prefix="nnefopt-"))
    try:
        with tarfile.open(path, "r:*") as tar:
            members = _checked_members(tar, path)
            tar.extractall(temporary, members=members, filter="data")
        root = _graph_folder(temporary, path)
        return ModelSource(root, root / "graph.nnef", str(path), temporary)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        shutil.rmtree(temporary, ignore_errors=True)
        raise NNEFError(f"cannot read archive: {exc}", where) from None
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def _checked_members(tar: tarfile.TarFile, path: Path) -> list[tarfile.TarInfo]:
    members, total = [], 0
    for member in tar:
        name = member.name
        refuse = None
        if name.startswith("/") or PurePosixPath(name).is_absolute():
            refuse = "has an absolute name"
        elif ".." in PurePosixPath(name).parts:
            refuse = "points outside the archive with '..'"
        elif member.issym() or member.islnk():
            refuse = "is a link"
        elif not (member.isfile() or member.isdir()):
            refuse = "is a device or special file"
        if refuse:
            raise NNEFError(f"member '{name}' {refuse}; refusing to unpack", Location(str(path)))
        members.append(member)
        total += member.size
        if len(members) > MAX_MEMBERS or total > MAX_UNPACKED_BYTES:
            raise NNEFError(f"archive unpacks to more than {MAX_MEMBERS} files or "
                            f"{MAX_UNPACKED_BYTES >> 30} GiB; refusing", Location(str(path)))
    return members


def _graph_folder(unpacked: Path, path: Path) -> Path:
    if (unpacked / "graph.nnef").is_file():
        return unpacked
    entries = list(unpacked.iterdir())
    if len(entries) == 1 and (entries[0] / "graph.nnef").is_file():
        return entries[0]
    raise NNEFError("archive has no graph.nnef at its top level", Location(str(path)))
