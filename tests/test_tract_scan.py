"""tract's `tract_core_scan`: its tensors are operands in the IR, the passes keep them, it
runs as tract runs it, and a malformed one is an NNEFError at its line."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import nnefopt
from nnefopt.dialects.nnef import OpaqueOp
from nnefopt.errors import NNEFError, NNEFWarning
from nnefopt.frontend.tensor_file import write_tensor
from nnefopt.interp.kernels_tract import scan_chunk
from tests.tract_oracle import run_tract

CUMSUM = """version 1.0;

extension tract_registry tract_core;

fragment body( acc: tensor<scalar>, x_t: tensor<scalar> ) -> ( acc_out: tensor<scalar>, y_t: tensor<scalar> )
{
    acc_out = add(acc, x_t);
    y_t = mul(acc_out, 2.0);
}

graph network( x ) -> ( last, ys )
{
    x = external(shape = [4, 3]);
    init = constant<scalar>(shape = [1, 3], value = [0.5]);
    e = exp(x);
    last, ys = tract_core_scan(body = "body", scan = [("x_t", e, 0, 1)], full = [], state = [("acc", init, "acc_out")],
                               output = [("acc_out", "last", 0, 1), ("y_t", "full", 0, 1)], skip = 0);
}
"""

# Chunks of two rows, scanned from the back; a tensor read whole (`full`); an output
# gathered backward one row per iteration, another forward two rows per iteration.
CHUNKED = """version 1.0;

extension tract_registry tract_core;

fragment body( acc: tensor<scalar>, x_t: tensor<scalar>, k: tensor<scalar> )
    -> ( acc_out: tensor<scalar>, y_t: tensor<scalar>, z_t: tensor<scalar> )
{
    acc_out = add(acc, mul(k, sum_reduce(x_t, axes = [0])));
    y_t = mul(x_t, acc_out);
    z_t = sub(acc_out, 1.0);
}

graph network( x, k ) -> ( last, ys, zs )
{
    x = external(shape = [6, 3]);
    k = external(shape = [1, 3]);
    init = variable<scalar>(shape = [1, 3], label = 'init');
    last, ys, zs = tract_core_scan(body = "body", scan = [("x_t", x, 0, -2)], full = [("k", k)],
        state = [("acc", init, "acc_out")],
        output = [("acc_out", "last", 0, 1), ("y_t", "full", 0, 2), ("z_t", "full", 0, -1)],
        skip = 0, reset_every_turn = false, external_state = false);
}
"""


def _load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        return nnefopt.load(path)


def _write(folder, text: str, init: np.ndarray | None = None):
    folder.mkdir()
    (folder / "graph.nnef").write_text(text)
    if init is not None:  # the variable's data, as an NNEF tensor file
        write_tensor(folder / "init.dat", init)
    return folder


def _cumsum_expected(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    acc = 0.5 + np.cumsum(np.exp(x), axis=0)
    return acc[-1:], 2.0 * acc


def test_the_tensors_in_the_tuples_are_operands(tmp_path):
    module = _load(_write(tmp_path / "m", CUMSUM))
    (scan,) = [op for op in module.walk() if isinstance(op, OpaqueOp)]
    producers = [v.owner.name for v in scan.arguments]
    assert producers == ["nnef.exp", "nnef.constant"]
    text = nnefopt.to_mlir(module)
    assert '{tuple = ["x_t", {operand = 0}, 0, 1]}' in text
    assert '{tuple = ["acc", {operand = 1}, "acc_out"]}' in text
    again = nnefopt.parse_mlir(nnefopt.to_mlir(module, generic=True))
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    for m in (module, again):
        last, ys = nnefopt.run(m, {"x": x}).values()
        expected_last, expected_ys = _cumsum_expected(x)
        np.testing.assert_allclose(last, expected_last, rtol=1e-5)
        np.testing.assert_allclose(ys, expected_ys, rtol=1e-5)


@pytest.mark.parametrize("pipeline", ["fold-constants,dce", "canonicalize", "default", "lower-tract,cse,dce"])
def test_passes_keep_what_the_scan_reads(tmp_path, pipeline):
    module = nnefopt.optimize(_load(_write(tmp_path / "m", CUMSUM)), pipeline)
    names = [op.name for op in module.walk()]
    assert "nnef.exp" in names and "nnef.constant" in names and "nnef.fragment" in names
    x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    last, ys = nnefopt.run(module, {"x": x}).values()
    np.testing.assert_allclose(ys, _cumsum_expected(x)[1], rtol=1e-5)
    nnefopt.save(module, tmp_path / "out")
    text = (tmp_path / "out" / "graph.nnef").read_text()
    assert "scan = [('x_t', e, 0, 1)]" in text and "fragment body(" in text


def test_chunks_backward_full_inputs_and_outputs_run_as_tract_runs_them(tmp_path):
    rng = np.random.default_rng(2)
    init = rng.standard_normal((1, 3)).astype(np.float32)
    source = _write(tmp_path / "m", CHUNKED, init)
    inputs = {"x": rng.standard_normal((6, 3)).astype(np.float32), "k": rng.standard_normal((1, 3)).astype(np.float32)}
    expected = run_tract(source, list(inputs.values()))
    module = _load(source)
    nnefopt.save(module, tmp_path / "out")
    for outputs in (nnefopt.run(module, inputs), nnefopt.run(_load(tmp_path / "out"), inputs)):
        assert [a.shape for a in outputs.values()] == [e.shape for e in expected]
        for actual, reference in zip(outputs.values(), expected):
            np.testing.assert_allclose(actual, reference, rtol=1e-5, atol=1e-6)
    exported = run_tract(tmp_path / "out", list(inputs.values()))  # tract reads the export
    for actual, reference in zip(exported, expected):
        np.testing.assert_allclose(actual, reference, rtol=1e-5, atol=1e-6)


def test_a_partial_chunk_is_padded_where_tract_leaves_room():
    x = np.arange(5 * 2, dtype=np.float32).reshape(5, 2)
    np.testing.assert_array_equal(scan_chunk(x, 0, 2, 2), [[8, 9], [0, 0]])
    np.testing.assert_array_equal(scan_chunk(x, 0, 0, -2), [[6, 7], [8, 9]])
    np.testing.assert_array_equal(scan_chunk(x, 0, 2, -2), [[0, 0], [0, 1]])
    np.testing.assert_array_equal(scan_chunk(x, 1, 1, 1), [[1], [3], [5], [7], [9]])


_SCAN_LINE = 'last, ys = tract_core_scan(body = "body", scan = [("x_t", e, 0, 1)], full = [], state = [("acc", init, "acc_out")],'


@pytest.mark.parametrize("old,new,message", [
    ('scan = [("x_t", e, 0, 1)]', 'scan = [("x_t", e, 0)]', "`scan` of the scan takes tuples"),
    ('body = "body"', 'body = "nobody"', "'nobody' is not a fragment"),
    ('body = "body"', "body = 3", "body fragment's name"),
    ('("acc", init, "acc_out")', '("acc2", init, "acc_out")', "parameter 'acc' of the scan body"),
    ('("acc", init, "acc_out")', '("acc", init, "y_t2")', "1 state inputs and 0 state results"),
    ('("y_t", "full", 0, 1)', '("y_t", "every", 0, 1)', 'must be "full" or "last"'),
    ('("y_t", "full", 0, 1)', '("w_t", "full", 0, 1)', "'w_t' is not a result"),
    ('("x_t", e, 0, 1)', '("x_t", e, 0, 0)', "chunk of 0"),
    ('("x_t", e, 0, 1)', '("x_t", e, 5, 1)', "failed at run time"),
    ("skip = 0", "skip = 9", "every iteration"),
    ('output = [("acc_out", "last", 0, 1), ("y_t", "full", 0, 1)]', 'output = [("acc_out", "last", 0, 1)]',
     "1 outputs and 2 results"),
])
def test_a_malformed_scan_is_an_error_at_its_line(tmp_path, old, new, message):
    assert old in CUMSUM
    module = _load(_write(tmp_path / "m", CUMSUM.replace(old, new)))
    with pytest.raises(NNEFError, match="tract_core_scan|scan") as error:
        nnefopt.run(module, {"x": np.zeros((4, 3), np.float32)})
    assert message in str(error.value)
    line = CUMSUM.splitlines().index("    " + _SCAN_LINE.strip()) + 1
    assert f"graph.nnef:{line}:" in str(error.value)


def test_an_operand_index_out_of_range_is_an_error(tmp_path):
    text = nnefopt.to_mlir(_load(_write(tmp_path / "m", CUMSUM))).replace("{operand = 1}", "{operand = 7}")
    module = nnefopt.parse_mlir(text, "scan.mlir")
    with pytest.raises(NNEFError, match="argument 'state' of 'tract_core_scan'"):
        nnefopt.save(module, tmp_path / "out")
    with pytest.raises(NNEFError, match="argument 'state' of 'tract_core_scan'"):
        nnefopt.run(module, {"x": np.zeros((4, 3), np.float32)})
