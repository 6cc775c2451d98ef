"""The registry of output forms: --emit, -o's suffix and api.save find a target there,
a registered target is used by all three, and its export pipeline runs on a copy."""

from __future__ import annotations

from pathlib import Path

import pytest

import nnefopt
from nnefopt import targets
from nnefopt.cli import main
from nnefopt.errors import NNEFError
from nnefopt.export.text_file import write_text
from nnefopt.passes import PIPELINES
from nnefopt.targets import EmitOptions, Target, register_target, target_for
from tests.test_driver import GRAPH, run


def usage_error(args, capsys) -> tuple[int, str]:
    """argparse's exit status and message for a command line it refuses."""
    with pytest.raises(SystemExit) as exit:
        main(args)
    return exit.value.code, capsys.readouterr().err


@pytest.fixture
def graph(tmp_path):
    path = tmp_path / "g.nnef"
    path.write_text(GRAPH)
    return str(path)


def _operation_names(module) -> list[str]:
    return [op.name for op in module.walk()
            if op.name.startswith("nnef.") and op.name not in ("nnef.graph", "nnef.return")]


def _toy_text(module, options: EmitOptions) -> str:
    return "toy " + " ".join(_operation_names(module)) + "\n"


def _write_toy(module, path: Path, options: EmitOptions) -> None:
    write_text(path, _toy_text(module, options))


@pytest.fixture
def toy(monkeypatch):
    """A target of the test's own, registered into copies of the registries."""
    monkeypatch.setattr(targets, "TARGETS", dict(targets.TARGETS))
    monkeypatch.setitem(PIPELINES, "export-toy", "")  # restored (removed) after the test
    return register_target(Target("toy", "operation names on one line", _write_toy,
                                  suffixes=(".toy",), export_pipeline="cse,dce", text=_toy_text))


def test_registered_target_is_an_emit_choice_and_its_pipeline_is_named(toy, graph):
    status, out, err = run([graph, "--emit", "toy"])
    assert status == 0, err
    # The export pipeline ran: cse merged the relus, dce dropped exp.
    assert out.split() == ["toy", "nnef.external", "nnef.relu", "nnef.add"]
    assert PIPELINES["export-toy"] == "cse,dce"
    listed = run(["--list-targets"])[1].split("\n")
    assert any(line.split()[:1] == ["toy"] for line in listed)
    assert run(["--list-passes"])[1].count("export-toy") == 1


def test_output_suffix_selects_the_registered_target(toy, graph, tmp_path):
    out = tmp_path / "out.toy"
    status, _, err = run([graph, "-o", str(out)])
    assert status == 0, err
    assert out.read_text().split() == ["toy", "nnef.external", "nnef.relu", "nnef.add"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_save_uses_the_registered_target_on_a_copy(toy, graph, tmp_path):
    module = nnefopt.load(graph)
    before = _operation_names(module)
    nnefopt.save(module, tmp_path / "named.txt", emit="toy")
    nnefopt.save(module, tmp_path / "inferred.toy", emit=None)
    assert (tmp_path / "named.txt").read_text() == (tmp_path / "inferred.toy").read_text()
    assert (tmp_path / "named.txt").read_text().split()[1:] == ["nnef.external", "nnef.relu", "nnef.add"]
    assert _operation_names(module) == before  # the caller's module keeps its exp and both relus


def test_unknown_emit_is_a_usage_error_listing_the_targets(graph, capsys):
    status, err = usage_error([graph, "--emit", "nope"], capsys)
    assert status == 2
    assert "nope" in err and "'nnef'" in err and "'mlir'" in err
    with pytest.raises(NNEFError, match=r"unknown output form 'nope' \(registered: nnef, mlir"):
        nnefopt.save(nnefopt.load(graph), "x", emit="nope")


def test_suffixes_choose_the_form():
    assert target_for().name == "mlir"  # standard output
    assert target_for(path="a/m.mlir").name == "mlir"
    for name in ("m.tgz", "m.tar.gz", "m.tar", "folder", "folder.d"):
        assert target_for(path=name).name == "nnef", name
    assert target_for("mlir", "m.tgz").name == "mlir"  # a name wins over the suffix


def test_longest_suffix_wins(toy, monkeypatch):
    register_target(Target("archive-toy", "", _write_toy, suffixes=(".toy.tar",)))
    assert target_for(path="m.toy.tar").name == "archive-toy"
    assert target_for(path="m.tar").name == "nnef"
    assert target_for(path="m.toy").name == "toy"


def test_cli_writes_each_builtin_form_by_suffix(graph, tmp_path):
    assert run([graph, "-o", str(tmp_path / "m.mlir")])[0] == 0
    assert "nnef.graph" in (tmp_path / "m.mlir").read_text()
    assert run([graph, "-o", str(tmp_path / "m.tgz")])[0] == 0
    assert (tmp_path / "m.tgz").read_bytes()[:2] == b"\x1f\x8b"  # gzip
    assert run([graph, "-o", str(tmp_path / "folder")])[0] == 0
    assert "relu" in (tmp_path / "folder" / "graph.nnef").read_text()


def test_keep_spelling_leaves_the_spelling_passes_out():
    nnef = target_for("nnef")
    assert nnef.pipeline(EmitOptions()) == nnef.export_pipeline
    assert PIPELINES[nnef.pipeline_name] == nnef.export_pipeline
    assert "portable-spelling" in nnef.export_pipeline
    kept = nnef.pipeline(EmitOptions(keep_spelling=True))
    assert "portable-spelling" not in kept and kept.startswith("lower-tract,layout")


def test_target_without_text_refuses_standard_output(toy, graph, monkeypatch):
    register_target(Target("file-only", "", _write_toy, suffixes=(".fo",)))
    status, out, err = run([graph, "--emit", "file-only"])
    assert status == 1 and out == ""
    assert "'file-only' form has no text for standard output" in err


def test_text_output_is_all_or_nothing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(NNEFError, match="cannot write the output"):
        write_text(blocker / "m.mlir", "text")  # its folder would be a file
    existing = tmp_path / "m.mlir"
    existing.write_text("old")
    write_text(existing, "new")
    assert existing.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "m.mlir"]
