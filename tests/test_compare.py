"""nnef-compare: a model against itself after -O passes; against a copy with one weight
changed it fails with exit 1 naming the output."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np

from nnefopt.compare import difference
from nnefopt.compare_cli import main as compare_main
from tests.models import SHARED

MODEL = SHARED / "resnet8"


def test_optimized_model_matches_the_original(tmp_path, capsys):
    subprocess.run([sys.executable, "-m", "nnefopt.cli", str(MODEL / "kt"), "-O", "-q", "-o", str(tmp_path / "opt")],
                   check=True)
    assert compare_main([str(tmp_path / "opt"), str(MODEL / "kt"), "--input", str(MODEL / "input.npy"),
                         "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["outputs"][0]["name"] == "output"
    assert report["outputs"][0]["cosine"] > 0.999999
    assert report["tensors"]  # intermediate tensors of the same name are compared too


def test_a_broken_weight_fails_naming_the_output(tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(MODEL / "kt", broken)
    weight = broken / "variable1.dat"  # the final linear layer's weights (header: 128 bytes)
    data = bytearray(weight.read_bytes())
    data[128:132] = np.float32(50.0).tobytes()
    weight.write_bytes(bytes(data))
    code = compare_main([str(broken), str(MODEL / "kt"), "--random-inputs", "3"])
    captured = capsys.readouterr()
    assert code == 1
    assert "FAIL: output" in captured.out and "output" in captured.err


def test_usage_errors_exit_2(tmp_path, capsys):
    assert compare_main([str(tmp_path / "none"), str(MODEL / "kt")]) == 2
    assert "no such file" in capsys.readouterr().err
    try:
        compare_main([str(MODEL / "kt"), str(MODEL / "kt"), "--tolerance", "x"])
    except SystemExit as exit_:
        assert exit_.code == 2
    else:
        raise AssertionError("a bad --tolerance is a usage error")


def test_onnxruntime_engine_compares_converted_onnx_with_itself():
    path = str(MODEL / "model.onnx")
    assert compare_main([path, path, "--engine", "onnxruntime", "--input", f"input={MODEL / 'input.npy'}"]) == 0


def test_tract_engine_runs_what_nnefopt_writes():
    assert compare_main([str(MODEL / "kt"), str(MODEL / "tract.nnef.tgz"), "--engine", "tract"]) == 0


def test_metrics():
    b = np.array([1.0, -2.0, 4.0], np.float32)
    same = difference("y", b, b, 0, 0)
    assert same.within and same.max_abs == 0 and same.sqnr_db == float("inf") and abs(same.cosine - 1) < 1e-12
    off = difference("y", b + np.float32([0, 0, 0.4]), b, 1e-3, 1e-3)
    assert not off.within and abs(off.max_abs - 0.4) < 1e-6 and abs(off.max_rel - 0.1) < 1e-6
    assert abs(off.sqnr_db - 10 * np.log10(21 / 0.16)) < 1e-3
    assert not difference("y", b[:2], b, 1, 1).within
