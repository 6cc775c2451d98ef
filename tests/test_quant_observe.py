"""Calibration statistics: streaming histograms equal to the histogram of all the data on
the final grid (re-binned exactly as the range grows), calibration over the IR
interpreter's listeners, and the calibration inputs (.npy, folder, seeded normal)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import nnefopt
from nnefopt.errors import NNEFError, NNEFWarning
from nnefopt.interp.ir_interpreter import Plan
from nnefopt.quant.observe import Statistics, calibrate, calibration_batches
from tests.models import SHARED

RNG = np.random.default_rng(7)
DIGITS = SHARED / "cnn_digits"

TWO_INPUTS = """version 1.0;
graph G( a, b ) -> ( y )
{
    a = external<scalar>(shape = [2, 3]);
    b = external<scalar>(shape = [2, 3]);
    y = add(a, b);
}
"""


def load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        return nnefopt.load(path)


def whole(data, stats):
    return np.histogram(data, stats.edges())[0]


def test_streaming_equals_the_histogram_of_all_data_as_the_range_grows():
    batches = [RNG.normal(0, 0.01, 500), RNG.normal(0, 1, 2000), RNG.laplace(0, 5, 2000), RNG.uniform(-80, 3, 100)]
    stats = Statistics(256)
    widths = []
    for batch in batches:
        stats.add(batch)
        widths.append(stats.width)
    data = np.concatenate(batches)
    assert widths == sorted(widths) and widths[-1] > widths[0]  # re-binned as the range grew
    assert stats.count == data.size and stats.counts.sum() == data.size
    assert stats.min == data.min() and stats.max == data.max()
    assert np.array_equal(stats.counts, whole(data, stats))
    assert len(stats.counts) == 256  # bounded, whatever the range
    assert stats.edges()[0] <= data.min() and stats.edges()[-1] > data.max()


def test_merge_equals_streaming_in_one():
    a, b = RNG.normal(3, 1, 1000), RNG.normal(-20, 4, 1000)
    left, right, both = Statistics(128), Statistics(128), Statistics(128)
    left.add(a)
    right.add(b)
    both.add(a)
    both.add(b)
    left.merge(right)
    assert (left.count, left.min, left.max, left.width) == (both.count, both.min, both.max, both.width)
    assert np.array_equal(left.counts, both.counts)


@pytest.mark.parametrize("data", [np.full(100, 3.5), np.zeros(50), np.array([-2.0]), np.array([1e30, 1e30])])
def test_degenerate_inputs(data):
    stats = Statistics(64)
    stats.add(data)
    stats.add(data[:1])
    assert stats.count == data.size + 1 and stats.counts.sum() == data.size + 1
    assert stats.min == stats.max == data[0]
    assert np.isfinite(stats.width) and stats.width > 0


def test_nonfinite_values_are_counted_apart():
    stats = Statistics(64)
    stats.add(np.array([1.0, np.nan, np.inf, -2.0]))
    assert (stats.count, stats.nonfinite, stats.min, stats.max) == (2, 2, -2.0, 1.0)
    stats.add(np.array([np.nan]))
    assert stats.count == 2 and stats.nonfinite == 3


def test_calibrate_observes_every_value_through_the_interpreter():
    module = load(DIGITS / "kt")
    calib = np.load(DIGITS / "calib.npy")
    stats = calibrate(module, calibration_batches(module, DIGITS / "calib.npy"), bins=512)
    plan = Plan(module)
    (input_name, _), = plan.inputs.items()
    by_name = {plan.names[v]: s for v, s in stats.items() if v in plan.names}
    assert by_name[input_name].count == calib.size
    assert by_name[input_name].min == calib.min() and by_name[input_name].max == calib.max()
    # The output's statistics are those of the outputs of every batch.
    (output_name, _), = plan.outputs
    outputs = np.concatenate([plan.run({input_name: calib[i:i + 1]})[output_name] for i in range(len(calib))])
    out = by_name[output_name]
    assert out.count == outputs.size and out.min == outputs.min() and out.max == outputs.max()
    assert np.array_equal(out.counts, whole(outputs, out))
    # A weight is the same in every batch: observed once.
    weights = [v for v in stats if v.owner.name == "nnef.variable"]
    assert weights and all(stats[v].count == np.prod(v.type.get_shape()) for v in weights)
    assert all(s.counts.size == 512 for s in stats.values())


def test_calibrate_needs_a_batch():
    module = load(DIGITS / "kt")
    with pytest.raises(NNEFError, match="at least one batch"):
        calibrate(module, [])


def test_npy_batches_follow_the_batch_size():
    module = load(DIGITS / "kt")
    calib = np.load(DIGITS / "calib.npy")
    batches = list(calibration_batches(module, DIGITS / "calib.npy"))
    assert len(batches) == len(calib)
    assert all(b["input"].shape == (1, 1, 8, 8) for b in batches)
    assert np.array_equal(batches[17]["input"], calib[17:18])
    assert len(list(calibration_batches(module, DIGITS / "calib.npy", samples=10))) == 10


def test_folder_of_npy_per_input(tmp_path):
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "graph.nnef").write_text(TWO_INPUTS)
    module = load(tmp_path / "g")
    data = tmp_path / "calib"
    data.mkdir()
    a, b = RNG.normal(size=(6, 3)).astype(np.float32), RNG.normal(size=(6, 3)).astype(np.float32)
    np.save(data / "a.npy", a)
    np.save(data / "b.npy", b)
    batches = list(calibration_batches(module, data))
    assert len(batches) == 3 and np.array_equal(batches[1]["a"], a[2:4]) and np.array_equal(batches[2]["b"], b[4:])
    stats = calibrate(module, iter(batches))
    assert max(s.max for s in stats.values()) == pytest.approx(max((a + b).max(), a.max(), b.max()))
    with pytest.raises(NNEFError, match="one NAME.npy per input"):
        calibration_batches(module, data / "a.npy")
    (data / "b.npy").unlink()
    with pytest.raises(NNEFError) as missing:
        calibration_batches(module, data)
    assert "b.npy" in str(missing.value) and "[N*2, 3]" in str(missing.value)


def test_bad_calibration_arrays(tmp_path):
    module = load(DIGITS / "kt")
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((10, 1, 8, 9), np.float32))
    with pytest.raises(NNEFError) as error:
        calibration_batches(module, wrong)
    assert "wrong.npy" in str(error.value) and "[10, 1, 8, 9]" in str(error.value) and "[N*1, 1, 8, 8]" in str(error.value)
    with pytest.raises(NNEFError, match="missing"):
        calibration_batches(module, tmp_path / "absent.npy")
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"not an array")
    with pytest.raises(NNEFError, match="garbage.npy"):
        calibration_batches(module, garbage)


def test_random_inputs_warn_once_and_are_seeded():
    module = load(DIGITS / "kt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = list(calibration_batches(module, samples=3, seed=5))
        second = list(calibration_batches(module, samples=3, seed=5))
    ours = [w for w in caught if issubclass(w.category, NNEFWarning)]
    assert len(ours) == 2 and "real" in str(ours[0].message)  # once per call, not per batch
    assert len(first) == 3 and all(np.array_equal(x["input"], y["input"]) for x, y in zip(first, second))
    assert not np.array_equal(first[0]["input"], first[1]["input"])
    assert abs(np.concatenate([b["input"].ravel() for b in first]).std() - 1) < 0.3  # standard normal
