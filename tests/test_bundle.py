"""Opening models: folders, graph files and archives. A hostile archive is refused
before anything is written, nothing lands outside a private temporary folder, and
close() removes that folder."""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path

import pytest

from nnefopt.errors import NNEFError
from nnefopt.frontend.bundle import open_model
from nnefopt.frontend.tensor_file import read_tensor
from tests.models import SHARED

GRAPH = b"version 1.0;\ngraph G( input ) -> ( output ) { input = external(shape = [1]); output = copy(input); }\n"


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """The system temporary folder, redirected so a test sees every folder made there."""
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def add(tar: tarfile.TarFile, name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def archive(path: Path, *members: tuple, mode: str = "w:gz") -> Path:
    """An archive of (name, data) or (name, data, kind, link) members."""
    with tarfile.open(path, mode) as tar:
        for member in members:
            add(tar, *member)
    return path


def everything_under(folder: Path) -> set[str]:
    return {str(p) for p in folder.rglob("*")}


# ---- what opens ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", sorted(p.parent.name for p in SHARED.glob("*/tract.nnef.tgz")))
def test_shared_tract_archives_open(private_tmp, model):
    path = SHARED / model / "tract.nnef.tgz"
    with open_model(path) as source:
        names = {p.name for p in source.root.iterdir()}
        assert "graph.nnef" in names and any(n.endswith(".dat") for n in names)
        assert source.root.is_relative_to(private_tmp)
        assert source.graph_path == source.root / "graph.nnef"
        assert source.display(source.graph_path) == f"{path}:graph.nnef"
        assert source.display_name == str(path)
        assert (source.quant_path is not None) == (model == "cnn_digits_q8")
        label = sorted(n for n in names if n.endswith(".dat"))[0][: -len(".dat")]
        assert read_tensor(source.tensor_path(label)).size > 0
    assert not any(private_tmp.iterdir())  # close() removed the unpacked copy


def test_folder_and_graph_file(tmp_path):
    (tmp_path / "graph.nnef").write_bytes(GRAPH)
    (tmp_path / "graph.quant").write_text("")
    for given in (tmp_path, tmp_path / "graph.nnef"):
        with open_model(given) as source:
            assert source.root == tmp_path and source.graph_path == tmp_path / "graph.nnef"
            assert source.quant_path == tmp_path / "graph.quant"
            assert source.display(source.graph_path) == str(tmp_path / "graph.nnef")
            assert source.tensor_path("sub/w") == tmp_path / "sub" / "w.dat"
    assert (tmp_path / "graph.nnef").read_bytes() == GRAPH  # a folder is used in place, never removed


@pytest.mark.parametrize("suffix,mode", [(".tgz", "w:gz"), (".tar.gz", "w:gz"), (".tar", "w")])
def test_graph_in_a_single_top_level_folder(private_tmp, tmp_path, suffix, mode):
    path = archive(tmp_path / f"model{suffix}", ("model/", b"", tarfile.DIRTYPE), ("model/graph.nnef", GRAPH),
                   ("model/w.dat", b"x"), mode=mode)
    with open_model(path) as source:
        assert source.graph_path.read_bytes() == GRAPH
        assert source.display(source.tensor_path("w")) == f"{path}:model/w.dat"
    assert not any(private_tmp.iterdir())


@pytest.mark.parametrize("label", ["../w", "a/../../w", "/etc/passwd", "", ".", "a\\..\\w", "w\0"])
def test_labels_must_stay_inside_the_model(tmp_path, label):
    (tmp_path / "graph.nnef").write_bytes(GRAPH)
    with open_model(tmp_path) as source, pytest.raises(NNEFError) as info:
        source.tensor_path(label)
    assert f"label '{label}'" in str(info.value)
    assert str(info.value).startswith(str(tmp_path / "graph.nnef"))


# ---- what is refused ------------------------------------------------------------------------

HOSTILE = [
    ("dotdot", ("../x", b"evil"), "'../x' points outside"),
    ("dotdot-inside", ("a/../../x", b"evil"), "'a/../../x' points outside"),
    ("absolute", ("/tmp/nnefopt-test-evil", b"evil"), "'/tmp/nnefopt-test-evil'"),
    ("symlink", ("w.dat", b"", tarfile.SYMTYPE, "/etc/passwd"), "'w.dat' is a link"),
    ("hardlink", ("w.dat", b"", tarfile.LNKTYPE, "graph.nnef"), "'w.dat' is a link"),
    ("char-device", ("dev", b"", tarfile.CHRTYPE), "'dev' is a device"),
    ("block-device", ("blk", b"", tarfile.BLKTYPE), "'blk' is a device"),
    ("fifo", ("pipe", b"", tarfile.FIFOTYPE), "'pipe' is a device"),
]


def assert_refused(path: Path, words: str, **limits) -> None:
    with pytest.raises(NNEFError) as info:
        open_model(path, **limits)
    assert str(info.value).startswith(f"{path}: error: "), str(info.value)
    assert words in str(info.value)


@pytest.mark.parametrize("member,words", [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_members_are_refused_before_writing(private_tmp, tmp_path, member, words):
    work = tmp_path / "work"
    work.mkdir()
    path = archive(work / "model.tgz", ("graph.nnef", GRAPH), member)
    before = everything_under(tmp_path.parent)
    assert_refused(path, words)
    assert everything_under(tmp_path.parent) == before
    assert not (tmp_path / "x").exists() and not Path("/tmp/nnefopt-test-evil").exists()
    assert not any(private_tmp.iterdir())  # the temporary folder is gone too


def test_truncated_and_corrupt_archives(private_tmp, tmp_path):
    path = archive(tmp_path / "model.tgz", ("graph.nnef", GRAPH), ("w.dat", bytes(range(256)) * 400))
    whole = path.read_bytes()
    for damaged in (whole[: len(whole) // 2], whole[:-40], whole[:10] + b"\xff" * 50 + whole[60:], b"not gzip"):
        path.write_bytes(damaged)
        assert_refused(path, "cannot read archive")
    assert not any(private_tmp.iterdir())


def test_archive_without_graph(private_tmp, tmp_path):
    assert_refused(archive(tmp_path / "model.tgz", ("w.dat", b"x")), "no graph.nnef")
    two = archive(tmp_path / "two.tgz", ("a/graph.nnef", GRAPH), ("b/graph.nnef", GRAPH))
    assert_refused(two, "no graph.nnef")  # which of the two folders? refuse to guess
    assert not any(private_tmp.iterdir())


def test_bombs_are_stopped_by_the_limits(private_tmp, tmp_path):
    path = archive(tmp_path / "model.tgz", ("graph.nnef", GRAPH), *[(f"w{i}.dat", bytes(1000)) for i in range(5)])
    assert_refused(path, "more than 4 members", max_members=4)
    assert_refused(path, "more than 3000 bytes", max_bytes=3000)
    with open_model(path, max_members=6, max_bytes=len(GRAPH) + 5000):
        pass
    assert not any(private_tmp.iterdir())


def test_missing_inputs(tmp_path):
    with pytest.raises(NNEFError, match="no such file"):
        open_model(tmp_path / "nowhere.tgz")
    with pytest.raises(NNEFError, match="folder has no graph.nnef"):
        open_model(tmp_path)
