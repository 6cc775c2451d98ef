"""What tract's NNEF writer emits, nnefopt reads, runs equal to onnxruntime, writes back
and reads again (tests/tract_writer_corpus.py makes the corpus in the test run)."""

from __future__ import annotations

import warnings

import numpy as np
import onnxruntime
import pytest

import nnefopt
from nnefopt.errors import NNEFWarning
from tests.tract_writer_corpus import build_corpus, shared_cases, small_cases
from tests.tract_oracle import run_tract

# tract 0.23.9 has no NNEF form for these (it says "No serializer found"): nothing to read.
TRACT_CANNOT_WRITE = {"shared_tiny_vit"}  # its exact gelu (GeluExact)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    written, refused = build_corpus(tmp_path_factory.mktemp("tract_corpus"))
    return {case.name: case for case in written}, refused


def _names() -> list[str]:
    names = [c.name for c in small_cases() + shared_cases() if c.name not in TRACT_CANNOT_WRITE]
    return names + [f"{n}@nnef" for n in names]


def _expected(case) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(str(case.onnx_path), providers=["CPUExecutionProvider"])
    return session.run(None, case.inputs)


def _load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)  # tract's forms are read with warnings
        return nnefopt.load(path)


def _assert_equal(outputs: dict, expected: list, tolerance: float) -> None:
    assert len(outputs) == len(expected)
    for actual, reference in zip(outputs.values(), expected):
        assert actual.shape == reference.shape
        np.testing.assert_allclose(np.asarray(actual, np.float64), reference.astype(np.float64),
                                   rtol=1e-4, atol=tolerance)


def test_tract_writes_the_corpus(corpus):
    written, refused = corpus
    assert set(refused) == TRACT_CANNOT_WRITE
    assert all("No serializer found" in message for message in refused.values())
    assert set(written) == set(_names())


@pytest.mark.parametrize("name", _names())
def test_read_run_equal_and_written_back(corpus, tmp_path, name):
    case = corpus[0][name]
    module = _load(case.path)
    out = tmp_path / "out"
    nnefopt.save(module, out)
    again = _load(out)
    expected = _expected(case)
    _assert_equal(nnefopt.run(module, case.inputs), expected, case.tolerance)
    _assert_equal(nnefopt.run(again, case.inputs), expected, case.tolerance)


def test_cast_to_f16_keeps_its_rounding(corpus, tmp_path):
    """f32 → f16 → f32 must round: the values are not all f16 values."""
    case = corpus[0]["cast_f16"]
    x = case.inputs["x"]
    assert not np.array_equal(x.astype(np.float16).astype(np.float32), x)
    nnefopt.save(_load(case.path), tmp_path / "out")
    assert "tract_core_cast" in (tmp_path / "out" / "graph.nnef").read_text()
    (y,) = nnefopt.run(_load(tmp_path / "out"), case.inputs).values()
    np.testing.assert_array_equal(np.asarray(y, np.float32), x.astype(np.float16).astype(np.float32))


@pytest.mark.parametrize("name,symbol,axis", [("symbolic_batch", "N", 0), ("streaming_symbol", "S", 2)])
def test_symbols_bind_at_run_time_and_stay_in_the_export(corpus, tmp_path, name, symbol, axis):
    case = corpus[0][name]
    nnefopt.save(_load(case.path), tmp_path / "out")
    assert f"extension tract_symbol {symbol};" in (tmp_path / "out" / "graph.nnef").read_text()
    again = _load(tmp_path / "out")
    x = case.inputs["x"]
    for length in (x.shape[axis], x.shape[axis] + 3):  # each input binds the symbol anew
        inputs = {"x": np.resize(x, x.shape[:axis] + (length,) + x.shape[axis + 1:]).astype(np.float32)}
        session = onnxruntime.InferenceSession(str(case.onnx_path), providers=["CPUExecutionProvider"])
        _assert_equal(nnefopt.run(again, inputs), session.run(None, inputs), case.tolerance)


@pytest.mark.parametrize("name", ["conv", "shared_cnn_digits", "pad", "cast_f16", "slice", "layernorm", "scan_cumsum",
                                  "scan_recurrence"])
def test_tract_runs_the_export(corpus, tmp_path, name):
    case = corpus[0][name]
    nnefopt.save(_load(case.path), tmp_path / "out")
    outputs = run_tract(tmp_path / "out", list(case.inputs.values()))
    expected = _expected(case)
    assert len(outputs) == len(expected)
    for actual, reference in zip(outputs, expected):
        np.testing.assert_allclose(np.asarray(actual, np.float64), reference, rtol=1e-4, atol=case.tolerance)


OPAQUE = """version 1.0;
extension tract_registry tract_core;
graph G( x ) -> ( y )
{
    x = external(shape = [2]);
    y = tract_core_unknown(x, pairs = [('a', 1), ('b', 2)], flat = [1, 2]);
}
"""


def test_tuples_of_an_undeclared_operation_stay_tuples(tmp_path):
    """No declaration gives their types: the attribute itself must keep tuples apart."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "graph.nnef").write_text(OPAQUE)
    module = nnefopt.parse_mlir(nnefopt.to_mlir(_load(tmp_path / "in")))
    nnefopt.save(module, tmp_path / "out")
    text = (tmp_path / "out" / "graph.nnef").read_text()
    assert "pairs = [('a', 1), ('b', 2)]" in text
    assert "flat = [1, 2]" in text
    nnefopt.save(_load(tmp_path / "out"), tmp_path / "again")
    assert (tmp_path / "again" / "graph.nnef").read_text() == text
