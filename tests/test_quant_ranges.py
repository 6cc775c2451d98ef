"""Range choice on known distributions: every range contains 0, mse quantizes heavy tails
with less error than minmax, percentile and entropy clip outliers, and degenerate
statistics give finite positive scales."""

from __future__ import annotations

import numpy as np
import pytest

from nnefopt.quant import ranges
from nnefopt.quant.integer import dequantize, quantize
from nnefopt.quant.observe import Statistics

RNG = np.random.default_rng(99)


def observed(data, bins=2048, batches=4):
    stats = Statistics(bins)
    for chunk in np.array_split(data, batches):
        stats.add(chunk)
    return stats


def laplace_with_outliers():
    data = RNG.laplace(0, 1, 100_000)
    data[:30] = RNG.uniform(40, 120, 30) * RNG.choice([-1, 1], 30)
    return data


def quantization_mse(data, low, high, symmetric=False):
    scale, zero = ranges.scale_zero_point(low, high, 8, symmetric)
    return float(np.mean((dequantize(quantize(data, scale, zero, symmetric=symmetric), scale, zero) - data) ** 2))


DISTRIBUTIONS = {
    "uniform": lambda: RNG.uniform(-1, 3, 50_000),
    "gaussian": lambda: RNG.normal(0.5, 2, 50_000),
    "laplace_outliers": laplace_with_outliers,
    "relu": lambda: np.maximum(RNG.normal(0, 1, 50_000), 0),
    "positive": lambda: RNG.uniform(2, 5, 10_000),
}


@pytest.mark.parametrize("name", DISTRIBUTIONS)
@pytest.mark.parametrize("method", sorted(ranges.METHODS))
def test_every_range_contains_zero_and_stays_within_the_data(name, method):
    data = DISTRIBUTIONS[name]()
    low, high = ranges.choose(observed(data), method)
    assert low <= 0 <= high and low < high
    assert min(data.min(), 0) - 1e-9 <= low and high <= max(data.max(), 0) + 1e-9


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("heavy", [laplace_with_outliers, lambda: RNG.laplace(0, 1, 100_000)])
def test_mse_beats_minmax_on_heavy_tails(symmetric, heavy):
    data = heavy()
    stats = observed(data)
    chosen = ranges.mse(stats, symmetric=symmetric)
    full = ranges.minmax(stats)
    if symmetric:
        bound = max(-full[0], full[1])
        full = (-bound, bound)
    assert quantization_mse(data, *chosen, symmetric) < 0.95 * quantization_mse(data, *full, symmetric)


def test_mse_keeps_the_range_of_uniform_data():
    data = RNG.uniform(-1, 3, 50_000)
    stats = observed(data)
    low, high = ranges.mse(stats)
    assert high - low > 0.9 * (data.max() - data.min())
    assert quantization_mse(data, low, high) <= 1.05 * quantization_mse(data, *ranges.minmax(stats))


def test_mse_is_never_much_worse_than_the_clipping_methods():
    data = RNG.normal(0, 1, 50_000)
    stats = observed(data)
    best = quantization_mse(data, *ranges.mse(stats))
    for method in ("minmax", "percentile", "entropy"):
        assert best <= 1.05 * quantization_mse(data, *ranges.choose(stats, method))


def test_percentile_clips_outliers_at_the_quantile():
    data = laplace_with_outliers()
    stats = observed(data)
    low, high = ranges.percentile(stats, 99.0)
    assert high < 0.1 * data.max() and low > 0.1 * data.min()
    assert low == pytest.approx(np.percentile(data, 0.5), abs=stats.width)
    assert high == pytest.approx(np.percentile(data, 99.5), abs=stats.width)
    low, high = ranges.percentile(stats, 99.0, symmetric=True)
    assert high == -low == pytest.approx(np.percentile(np.abs(data), 99.0), abs=stats.width)
    with pytest.raises(ValueError):
        ranges.percentile(stats, 0)


def test_entropy_clips_outliers_and_keeps_the_bulk():
    data = laplace_with_outliers()
    low, high = ranges.entropy(observed(data))
    assert high < 0.5 * data.max() and low > 0.5 * data.min()
    assert high > np.percentile(np.abs(data), 99)  # the bulk stays inside
    gaussian = RNG.normal(0, 1, 100_000)
    _, high = ranges.entropy(observed(gaussian))
    assert 2.0 < high <= gaussian.max()


@pytest.mark.parametrize("data", [np.full(100, 3.0), np.zeros(100), np.array([-0.25]), np.full(7, 1e-30)])
@pytest.mark.parametrize("method", sorted(ranges.METHODS))
@pytest.mark.parametrize("symmetric", [False, True])
def test_degenerate_statistics_give_finite_positive_scales(data, method, symmetric):
    stats = observed(data, bins=256, batches=1)
    low, high = ranges.choose(stats, method, symmetric=symmetric)
    assert low <= 0 <= high and np.isfinite(low) and np.isfinite(high)
    scale, zero = ranges.scale_zero_point(low, high, 8, symmetric)
    assert np.isfinite(scale) and scale > 0 and -128 <= zero <= 127
    codes = quantize(data, scale, zero, symmetric=symmetric)
    assert np.all(np.isfinite(dequantize(codes, scale, zero)))


def test_empty_statistics():
    stats = Statistics(64)
    for method in ranges.METHODS:
        assert ranges.choose(stats, method) == (0.0, 0.0)
    assert ranges.scale_zero_point(0.0, 0.0) == (1.0, -128)


def test_scale_zero_point_represents_zero_and_the_range():
    scale, zero = ranges.scale_zero_point(-1.0, 3.0)
    assert scale == pytest.approx(4 / 255) and zero == round(-128 + 1 / scale)
    assert dequantize(quantize(np.zeros(1), scale, zero), scale, zero)[0] == 0.0
    assert abs(dequantize(quantize(np.array([-1.0, 3.0]), scale, zero), scale, zero) - [-1, 3]).max() <= scale
    scale, zero = ranges.scale_zero_point(-1.0, 3.0, symmetric=True)
    assert zero == 0 and scale == pytest.approx(3 / 127)
    scale, zero = ranges.scale_zero_point(2.0, 5.0)  # widened to [0, 5]
    assert zero == -128 and scale == pytest.approx(5 / 255)
    scale, zero = ranges.scale_zero_point(0.0, 6.0, bits=4)
    assert scale == pytest.approx(6 / 15) and zero == -8
    assert np.float32(ranges.scale_zero_point(-1.0, 3.0)[0]) == ranges.scale_zero_point(-1.0, 3.0)[0]


def test_scale_zero_point_per_channel():
    scale, zero = ranges.scale_zero_point(np.array([-1.0, 0.0, -2.0]), np.array([1.0, 0.0, 6.0]), symmetric=True)
    assert scale.shape == (3,) and np.all(scale > 0) and not zero.any()
    assert scale[0] == pytest.approx(1 / 127) and scale[1] == 1.0 and scale[2] == pytest.approx(6 / 127)


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown range method"):
        ranges.choose(observed(np.ones(3)), "median")


def test_symmetric_methods_on_data_far_from_zero_keep_few_bins():
    # Fine bins around 1000 fold onto |x| bins from 0: merged to at most `bins` of them.
    data = RNG.uniform(1000, 1000.001, 5000)
    stats = observed(data, bins=256)
    for low, high in (ranges.entropy(stats), ranges.percentile(stats, 99.9, symmetric=True)):
        assert low <= 0 and data.max() * 0.99 <= high <= data.max()
