"""The contract under bad input and failures: exit 1 with one error line and no
traceback; the input never modified; nothing written outside the output; no partial
output after any failure, a failure while writing and an interrupt (Ctrl-C) included."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import nnefopt.export.folder as folder_writer
import nnefopt.export.text_file as text_writer
from tests.test_errors import GOOD, assert_one_error, make_model, run_cli

ROOT = Path(__file__).resolve().parents[1]


def tree_hash(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def big_model(folder: Path, variables: int, size: int) -> Path:
    """A model whose writing takes a while: many weights of random (incompressible) data."""
    rng = np.random.default_rng(0)
    weights = {f"w{i}": rng.standard_normal((size,), dtype=np.float32) for i in range(variables)}
    lines = ["version 1.0;", "", "graph G( input ) -> ( output )", "{",
             f"    input = external<scalar>(shape = [{size}]);"]
    lines += [f"    w{i} = variable<scalar>(shape = [{size}], label = 'w{i}');" for i in range(variables)]
    lines += ["    s0 = add(input, w0);"] + [f"    s{i} = add(s{i - 1}, w{i});" for i in range(1, variables)]
    lines += [f"    output = copy(s{variables - 1});", "}", ""]
    return make_model(folder, "\n".join(lines), weights)


@pytest.mark.parametrize("output", ["out", "out.tgz", "out.mlir"])
def test_success_writes_the_output_only_and_leaves_the_input(tmp_path, output):
    model = make_model(tmp_path / "model", GOOD)
    before = tree_hash(model)
    status, stderr = run_cli([str(model), "-O", "-o", str(tmp_path / output)])
    assert status == 0, stderr
    assert tree_hash(model) == before
    assert entries(tmp_path) == sorted(["model", output])


@pytest.mark.parametrize("output", ["out", "out.tgz"])
def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch, output):
    """A weight file half-written, then the disk is full: one error, no output, no staging folder."""
    model = make_model(tmp_path / "model", GOOD)
    before = tree_hash(model)

    def half_then_full(path, array, **kwargs):
        Path(path).write_bytes(b"\x4e\xef" + bytes(40))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(folder_writer, "_copy_unchanged", lambda tensor, path: False)
    monkeypatch.setattr(folder_writer, "write_tensor", half_then_full)
    assert_one_error(*run_cli([str(model), "-o", str(tmp_path / output)]), output, "No space left on device")
    assert entries(tmp_path) == ["model"]
    assert tree_hash(model) == before


def test_failure_while_writing_text_leaves_nothing(tmp_path, monkeypatch):
    model = make_model(tmp_path / "model", GOOD)

    def no_rename(source, destination):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(text_writer.os, "replace", no_rename)
    assert_one_error(*run_cli([str(model), "-o", str(tmp_path / "out.mlir")]), "out.mlir", "Input/output error")
    assert entries(tmp_path) == ["model"]


def test_failed_rewrite_keeps_the_previous_output(tmp_path, monkeypatch):
    model = make_model(tmp_path / "model", GOOD)
    assert run_cli([str(model), "-o", str(tmp_path / "out")])[0] == 0
    previous = tree_hash(tmp_path / "out")
    monkeypatch.setattr(folder_writer, "_copy_unchanged", lambda tensor, path: False)
    monkeypatch.setattr(folder_writer, "write_tensor", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "full")))
    assert_one_error(*run_cli([str(model), "-o", str(tmp_path / "out")]), "out", "full")
    assert tree_hash(tmp_path / "out") == previous
    assert entries(tmp_path) == ["model", "out"]


@pytest.mark.parametrize("output", ["out", "out.mlir"])
def test_interrupt_while_writing_leaves_nothing(tmp_path, monkeypatch, output):
    """KeyboardInterrupt mid-write, in process: exit 130, one line, no output, no temporary."""
    model = make_model(tmp_path / "model", GOOD)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(folder_writer, "_copy_unchanged", interrupted)
    monkeypatch.setattr(text_writer.os, "replace", interrupted)
    status, stderr = run_cli([str(model), "-o", str(tmp_path / output)])
    assert status == 130 and "interrupted" in stderr and "Traceback" not in stderr
    assert entries(tmp_path) == ["model"]


@pytest.mark.parametrize("output", ["out", "out.tgz"])
def test_sigint_to_a_writing_process_leaves_nothing(tmp_path, output):
    """Ctrl-C sent to a real `nnef-opt ... -o out` once its staging folder holds files."""
    model = big_model(tmp_path / "model", variables=400, size=4096)
    before = tree_hash(model)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(scratch)}
    # The real CLI in a real process; each weight file's copy slowed down so that the
    # signal surely lands mid-write, whatever the machine's load.
    # A test run started in the background inherits SIGINT ignored (as shells do for
    # background jobs); the process restores what a terminal's Ctrl-C meets.
    slowly = ("import signal, sys, time\n"
              "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
              "import nnefopt.export.folder as f\n"
              "copy = f._copy_unchanged\n"
              "f._copy_unchanged = lambda tensor, path: (time.sleep(0.02), copy(tensor, path))[1]\n"
              "from nnefopt.cli import main\n"
              "sys.exit(main(sys.argv[1:]))\n")
    process = subprocess.Popen([sys.executable, "-c", slowly, str(model), "-o", str(tmp_path / output)],
                               stderr=subprocess.PIPE, text=True, env=env)
    seen = False
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        staging = [p for p in tmp_path.iterdir() if p.name.startswith(f".{output}.")]
        try:
            written = len(os.listdir(staging[0] / "model")) if staging else 0
        except OSError:  # the staging folder just went: the writer is done
            written = 0
        if 20 < written < 300:  # of 401 files: surely mid-write
            process.send_signal(signal.SIGINT)
            seen = True
            break
        time.sleep(0.005)
    _, stderr = process.communicate(timeout=120)
    assert seen, "the writer finished before it could be interrupted"
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip().count("\n") == 0, stderr
    assert entries(tmp_path) == ["model", "tmp"]
    assert entries(scratch) == []
    assert tree_hash(model) == before


def test_broken_archive_writes_nothing_in_the_temporary_folder(tmp_path):
    """An archive is unpacked in a private temporary folder: removed after a failure too."""
    import tarfile

    archive = tmp_path / "model.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("graph.nnef")
        data = GOOD.encode()  # its weight file missing
        info.size = len(data)
        import io

        tar.addfile(info, io.BytesIO(data))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    result = subprocess.run([sys.executable, "-m", "nnefopt.cli", str(archive), "-o", str(tmp_path / "out")],
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT),
                                                                 "TMPDIR": str(scratch)})
    assert result.returncode == 1 and "w.dat' of variable 'w' not found" in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert entries(scratch) == []
    assert entries(tmp_path) == ["model.tgz", "tmp"]
