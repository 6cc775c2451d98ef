"""The range [low, high] a value is quantized over, chosen from its calibration
statistics, and the scale and zero point that range gives.

Every method returns a range that contains 0 (an int8 engine must represent 0 exactly:
padding, relu). `minmax` keeps every value; `percentile` and `entropy` (TensorRT's KL
divergence between the clipped distribution and its quantized version) clip outliers;
`mse` picks the range whose quantization of the histogram has the least expected squared
error for the bit width, weighing clipping error against rounding error: the best
choice for heavy tails.
"""

from __future__ import annotations

import math

import numpy as np

from nnefopt.quant.observe import Statistics

_TINY_SCALE = float(np.finfo(np.float32).tiny)


def _with_zero(low: float, high: float) -> tuple[float, float]:
    return min(float(low), 0.0), max(float(high), 0.0)


def minmax(stats: Statistics) -> tuple[float, float]:
    if stats.count == 0:
        return 0.0, 0.0
    return _with_zero(stats.min, stats.max)


# ---- histograms ------------------------------------------------------------------------


def _folded(stats: Statistics) -> tuple[np.ndarray, float]:
    """The histogram of |x| and its bin width: bin i covers [i * width, (i + 1) * width).
    Exact, because 0 is an edge of the grid (bin g < 0 holds |x| in (-(g+1), -g] widths).
    Data far from 0 in fine bins would fold onto many empty bins: pairs are merged (the
    grids nest) until at most `stats.bins` remain."""
    grid = np.arange(stats.start, stats.start + stats.bins, dtype=np.int64)
    folded = np.where(grid >= 0, grid, -grid - 1)
    used = stats.counts != 0
    folded, weights = folded[used], stats.counts[used]
    exponent = stats.exponent
    if folded.size == 0:
        return np.zeros(1, np.int64), stats.width
    while int(folded.max()) >= stats.bins:
        folded, exponent = folded >> 1, exponent + 1
    counts = np.zeros(int(folded.max()) + 1, np.int64)
    np.add.at(counts, folded, weights)
    return counts, float(np.ldexp(1.0, exponent))


def _quantile(counts: np.ndarray, first_edge: float, width: float, fraction: float) -> float:
    """The value below which `fraction` of the histogram lies, linear within a bin."""
    cumulative = np.cumsum(counts, dtype=np.float64)
    target = fraction * cumulative[-1]
    j = int(np.searchsorted(cumulative, target))
    j = min(j, len(counts) - 1)
    before = cumulative[j] - counts[j]
    inside = (target - before) / counts[j] if counts[j] else 0.0
    return first_edge + (j + min(max(inside, 0.0), 1.0)) * width


def percentile(stats: Statistics, percent: float = 99.99, *, symmetric: bool = False) -> tuple[float, float]:
    """The range holding `percent` % of the values: the same share cut off each tail, or
    (symmetric) the magnitude below which `percent` % of |x| lie."""
    if not 0 < percent <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percent}")
    if stats.count == 0:
        return 0.0, 0.0
    if symmetric:
        folded, width = _folded(stats)
        bound = min(_quantile(folded, 0.0, width, percent / 100), max(-stats.min, stats.max))
        return _with_zero(-bound, bound)
    tail = (1 - percent / 100) / 2
    first = stats.edges()[0]
    low = _quantile(stats.counts, first, stats.width, tail)
    high = _quantile(stats.counts, first, stats.width, 1 - tail)
    return _with_zero(max(low, stats.min), min(high, stats.max))


def entropy(stats: Statistics, bits: int = 8) -> tuple[float, float]:
    """TensorRT's calibration: the threshold on |x| whose clipped distribution P (the
    outliers added to its last bin) is closest in KL divergence to Q, P merged into
    2^(bits-1) levels and spread back over the bins it came from."""
    if stats.count == 0:
        return 0.0, 0.0
    counts, width = _folded(stats)
    counts = counts.astype(np.float64)
    levels = 2 ** (bits - 1)
    if len(counts) <= levels:
        return minmax(stats)
    suffix = np.cumsum(counts[::-1])[::-1]  # suffix[i]: the mass of bins i and above
    step = max(1, (len(counts) - levels) // 1024)
    best, best_divergence = len(counts), math.inf
    for size in range(levels, len(counts) + 1, step):
        divergence = _clipping_divergence(counts[:size], suffix[size] if size < len(counts) else 0.0, levels)
        if divergence < best_divergence:
            best, best_divergence = size, divergence
    bound = best * width
    return _with_zero(max(-bound, stats.min), min(bound, stats.max))


def _clipping_divergence(sliced: np.ndarray, outliers: float, levels: int) -> float:
    reference = sliced.copy()
    reference[-1] += outliers
    bounds = (np.arange(levels + 1) * len(sliced)) // levels  # every group non-empty: len >= levels
    nonzero = sliced != 0
    group_mass = np.add.reduceat(sliced, bounds[:-1])
    group_used = np.add.reduceat(nonzero.astype(np.float64), bounds[:-1])
    spread = np.divide(group_mass, group_used, out=np.zeros_like(group_mass), where=group_used > 0)
    candidate = np.where(nonzero, np.repeat(spread, np.diff(bounds)), 0.0)
    p = reference / reference.sum()
    total = candidate.sum()
    if total == 0:
        return math.inf
    q = candidate / total
    mask = p > 0
    # A bin P has and Q lacks (the outliers' bin, empty before them): smoothed, not infinite.
    q_masked = np.maximum(q[mask], 1e-12)
    return float(np.sum(p[mask] * np.log(p[mask] / q_masked)))


def mse(stats: Statistics, bits: int = 8, *, symmetric: bool = False) -> tuple[float, float]:
    """The range minimizing the expected squared error of quantizing the histogram to
    `bits` (rounding inside the range, clipping outside), searched coarse then fine."""
    if stats.count == 0:
        return 0.0, 0.0
    low, high = minmax(stats)
    if low == high:
        return low, high
    used = stats.counts != 0
    centers, weights = stats.centers()[used], stats.counts[used] / stats.count
    spread = stats.width**2 / 12  # the variance of the values within a bin

    def error(lows: np.ndarray, highs: np.ndarray) -> np.ndarray:
        return _expected_error(centers, weights, lows, highs, bits, symmetric) + spread

    if symmetric:
        bound = max(-low, high)
        coarse = bound * np.linspace(1 / 128, 1, 128)
        best = coarse[np.argmin(error(-coarse, coarse))]
        fine = np.clip(np.linspace(best - bound / 128, best + bound / 128, 65), bound / 4096, bound)
        best = fine[np.argmin(error(-fine, fine))]
        return -float(best), float(best)
    fractions = np.linspace(1 / 40, 1, 40)
    lows = low * fractions if low < 0 else np.zeros(1)
    highs = high * fractions if high > 0 else np.zeros(1)
    a, b = _best_pair(error, lows, highs)
    fine = np.linspace(-1 / 40, 1 / 40, 17)
    lows = np.clip(a + low * fine, low, 0) if low < 0 else np.zeros(1)
    highs = np.clip(b + high * fine, 0, high) if high > 0 else np.zeros(1)
    a, b = _best_pair(error, lows, highs)
    return float(a), float(b)


def _best_pair(error, lows: np.ndarray, highs: np.ndarray) -> tuple[float, float]:
    grid_low, grid_high = np.meshgrid(lows, highs, indexing="ij")
    grid_low, grid_high = grid_low.ravel(), grid_high.ravel()
    keep = grid_high > grid_low
    grid_low, grid_high = grid_low[keep], grid_high[keep]
    errors = np.concatenate([error(grid_low[i:i + 64], grid_high[i:i + 64]) for i in range(0, len(grid_low), 64)])
    best = int(np.argmin(errors))
    return grid_low[best], grid_high[best]


def _expected_error(centers, weights, lows, highs, bits: int, symmetric: bool) -> np.ndarray:
    """For each candidate range, the weighted squared error of quantizing the centers."""
    scale, zero = _scale_zero_arrays(lows, highs, bits, symmetric, True)
    scale, zero = scale.astype(np.float64)[:, None], zero.astype(np.float64)[:, None]
    qmin, qmax = _code_limits(bits, symmetric, True)
    codes = np.clip(np.rint(centers[None, :] / scale) + zero, qmin, qmax)
    return np.sum(weights[None, :] * (centers[None, :] - (codes - zero) * scale) ** 2, axis=1)


METHODS = {"minmax": minmax, "percentile": percentile, "entropy": entropy, "mse": mse}


def choose(stats: Statistics, method: str, *, bits: int = 8, symmetric: bool = False) -> tuple[float, float]:
    """The range `method` gives (one of METHODS)."""
    if method == "minmax":
        return minmax(stats)
    if method == "percentile":
        return percentile(stats, symmetric=symmetric)
    if method == "entropy":
        return entropy(stats, bits)
    if method == "mse":
        return mse(stats, bits, symmetric=symmetric)
    raise ValueError(f"unknown range method {method!r}; expected one of {sorted(METHODS)}")


# ---- scale and zero point ------------------------------------------------------------------


def _code_limits(bits: int, symmetric: bool, signed: bool) -> tuple[int, int]:
    if not signed:
        return 0, 2**bits - 1
    top = 2 ** (bits - 1) - 1
    return (-top if symmetric else -top - 1), top


def _scale_zero_arrays(low, high, bits: int, symmetric: bool, signed: bool) -> tuple[np.ndarray, np.ndarray]:
    low = np.minimum(np.asarray(low, np.float64), 0.0)
    high = np.maximum(np.asarray(high, np.float64), 0.0)
    qmin, qmax = _code_limits(bits, symmetric, signed)
    if symmetric and signed:
        scale = np.maximum(-low, high) / qmax
    elif symmetric:  # unsigned symmetric: the zero point mid-range
        scale = 2 * np.maximum(-low, high) / (qmax - qmin)
    else:
        scale = (high - low) / (qmax - qmin)
    # A range of zeros has any scale; 1 keeps every later division defined.
    scale = np.where(scale > 0, np.maximum(scale, _TINY_SCALE), 1.0).astype(np.float32)
    if symmetric:
        zero = np.full(scale.shape, 0 if signed else (qmin + qmax + 1) // 2, np.int64)
    else:
        zero = np.clip(np.rint(qmin - low / scale.astype(np.float64)), qmin, qmax).astype(np.int64)
    return scale, zero


def scale_zero_point(low, high, bits: int = 8, symmetric: bool = False, *, signed: bool = True):
    """(scale, zero_point) of the range [low, high] widened to contain 0: symmetric (zero
    point 0, codes -(2^(b-1)-1) .. 2^(b-1)-1) or asymmetric (all 2^b codes). The scale is a
    positive float32 value; arrays give per-channel arrays."""
    scale, zero = _scale_zero_arrays(low, high, bits, symmetric, signed)
    if scale.ndim == 0:
        return float(scale), int(zero)
    return scale, zero
