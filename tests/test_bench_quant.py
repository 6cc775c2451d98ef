"""bench/bench_quant.py keeps working: its onnxruntime side on mlp_digits gives a finite
SQNR and an accuracy near fp32's, on the same test arrays the nnefopt side gets."""

from __future__ import annotations

import math

import numpy as np

from bench import bench_quant


def test_onnxruntime_side_on_mlp_digits(tmp_path):
    data = bench_quant.model_data("mlp_digits", samples=32)
    assert data.calib.shape == (32, 64) and data.labels is not None and len(data.test) == len(data.labels)
    reference = bench_quant.ort_outputs(data.onnx, data)
    fp32 = bench_quant.accuracy(reference, data.labels)
    assert fp32 > 0.9  # the trained model, as info.json says (96.3 %)
    (row,) = bench_quant.onnxruntime_rows(data, reference, 1, tmp_path, methods=("MinMax",), per_channel=(False,))
    assert math.isfinite(row.sqnr) and 15 < row.sqnr < 80
    assert abs(row.accuracy - fp32) < 0.03
    assert row.seconds > 0


def test_sqnr():
    reference = [np.array([[3.0, 4.0]])]
    assert bench_quant.sqnr(reference, [np.array([[3.0, 4.0]])]) == math.inf
    # signal 25, noise 0.25: 20 dB
    assert abs(bench_quant.sqnr(reference, [np.array([[3.5, 4.0]])]) - 20.0) < 1e-9


def test_random_models_get_seeded_inputs():
    """Without calib.npy: seeded normal calibration samples, and input.npy leads the test set."""
    first, again = bench_quant.model_data("resnet8", samples=4), bench_quant.model_data("resnet8", samples=4)
    assert first.labels is None and first.calib.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(first.calib, again.calib)
    assert not np.array_equal(first.calib, first.test[1:])
    np.testing.assert_array_equal(first.test[:1], np.load(bench_quant.SHARED / "resnet8" / "input.npy"))
