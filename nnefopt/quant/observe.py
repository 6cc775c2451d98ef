"""Calibration: streaming statistics of every value the graph computes.

The IR interpreter runs each calibration batch; a listener folds every float value
into its `Statistics` (exact min/max, count, and a histogram) as it is computed, so no
activation outlives its batch.

The histogram lies on a grid of power-of-two bin width anchored at 0: bin j covers
[(start + j) * w, (start + j + 1) * w). When a batch widens the range beyond `bins`
bins, the width doubles (pairs of grid bins merge, exactly: the grids nest) until it
fits. onnxruntime's HistogramCollector instead appends bins of the old width on both
sides, so its histograms grow without bound; here every value keeps `bins` counters.
Because 0 is an edge, folding the histogram onto |x| (for symmetric ranges) is exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import DYNAMIC_INDEX, ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue

from nnefopt.dialects.nnef import dtype_of, from_attribute
from nnefopt.errors import Location, NNEFError, warn
from nnefopt.export.from_ir import graph_of, location_of, tensor_names
from nnefopt.interp.ir_binding import is_declaration
from nnefopt.interp.ir_interpreter import Plan
from nnefopt.npy_file import is_present, read_npy

DEFAULT_BINS = 2048
RANDOM_BATCHES = 16  # batches of seeded inputs when no calibration data is given


class Statistics:
    """Running statistics of one value over all calibration batches."""

    def __init__(self, bins: int = DEFAULT_BINS):
        if bins < 2:
            raise ValueError("a histogram needs at least 2 bins")
        self.bins = bins
        self.count = 0  # finite elements seen
        self.nonfinite = 0  # NaN and infinities, left out of everything else
        self.min = math.inf
        self.max = -math.inf
        self.counts = np.zeros(bins, np.int64)
        self.exponent = 0  # bin width 2**exponent
        self.start = 0  # grid index of counts[0]

    @property
    def width(self) -> float:
        return math.ldexp(1.0, self.exponent)

    def edges(self) -> np.ndarray:
        """The bins + 1 bin edges."""
        return np.ldexp(np.arange(self.start, self.start + self.bins + 1, dtype=np.float64), self.exponent)

    def centers(self) -> np.ndarray:
        return np.ldexp(np.arange(self.start, self.start + self.bins, dtype=np.float64) + 0.5, self.exponent)

    def add(self, array) -> None:
        """Fold `array`'s values in."""
        values = np.asarray(array, np.float64).ravel()
        finite = np.isfinite(values)
        if not finite.all():
            self.nonfinite += int(values.size - np.count_nonzero(finite))
            values = values[finite]
        if values.size == 0:
            return
        low, high = float(values.min()), float(values.max())
        first = self.count == 0
        self.count += values.size
        self.min, self.max = min(self.min, low), max(self.max, high)
        exponent = self._initial_exponent() if first else self.exponent
        exponent = self._fitting_exponent(exponent)
        if first:
            self.exponent, self.start = exponent, self._index(self.min, exponent)
        else:
            self._regrid(exponent)
        indices = np.floor(np.ldexp(values, -self.exponent)).astype(np.int64) - self.start
        self.counts += np.bincount(indices, minlength=self.bins)

    def merge(self, other: Statistics) -> None:
        """Fold in another value's statistics (of the same bin count)."""
        if other.bins != self.bins:
            raise ValueError("merged statistics must have the same number of bins")
        self.nonfinite += other.nonfinite
        if other.count == 0:
            return
        if self.count == 0:
            self.count, self.min, self.max = other.count, other.min, other.max
            self.counts, self.exponent, self.start = other.counts.copy(), other.exponent, other.start
            return
        self.count += other.count
        self.min, self.max = min(self.min, other.min), max(self.max, other.max)
        exponent = self._fitting_exponent(max(self.exponent, other.exponent))
        self._regrid(exponent)
        grid = other._grid_indices() >> (exponent - other.exponent)
        used = other.counts != 0  # its empty bins past its maximum may lie past this grid's end
        np.add.at(self.counts, grid[used] - self.start, other.counts[used])

    # ---- the grid ----

    @staticmethod
    def _index(value: float, exponent: int) -> int:
        return math.floor(math.ldexp(value, -exponent))

    def _initial_exponent(self) -> int:
        """The finest width whose bins could hold the first batch's range."""
        span = self.max - self.min
        if span > 0:
            return math.frexp(span / (self.bins - 1))[1]
        magnitude = max(abs(self.min), abs(self.max))
        # A constant: fine bins around it (a later batch widens them as needed).
        return math.frexp(magnitude)[1] - 24 if magnitude > 0 else -40

    def _fitting_exponent(self, exponent: int) -> int:
        while self._index(self.max, exponent) - self._index(self.min, exponent) >= self.bins:
            exponent += 1
        return exponent

    def _grid_indices(self) -> np.ndarray:
        return np.arange(self.start, self.start + self.bins, dtype=np.int64)

    def _regrid(self, exponent: int) -> None:
        """Move the counts onto the grid of width 2**exponent starting at the minimum."""
        start = self._index(self.min, exponent)
        if exponent == self.exponent and start == self.start:
            return
        grid = self._grid_indices() >> (exponent - self.exponent)  # arithmetic shift: floor
        counts = np.zeros(self.bins, np.int64)
        used = self.counts != 0
        np.add.at(counts, grid[used] - start, self.counts[used])
        self.counts, self.exponent, self.start = counts, exponent, start

    def __repr__(self) -> str:
        return f"Statistics(count={self.count}, min={self.min}, max={self.max}, width={self.width})"


def calibrate(module: ModuleOp, batches: Iterable[dict[str, np.ndarray]], *, bins: int = DEFAULT_BINS,
              on_batch: Callable[[int], None] | None = None) -> dict[SSAValue, Statistics]:
    """Statistics of every float value of the module's graph over `batches` (input dicts
    by graph input name). Values that are the same in every run (weights, constants)
    are observed once. `on_batch(n)` is called after the n-th batch (a progress bar)."""
    plan = Plan(module)
    constant = {value for op, step, results in plan.trace if step is None
                for value, _ in results if plan.names.get(value) not in plan.inputs}
    stats: dict[SSAValue, Statistics] = {}
    seen_constants: set[SSAValue] = set()

    def observe(value: SSAValue, array: object, op: Operation) -> None:
        if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
            return
        if value in constant:
            if value in seen_constants:
                return
            seen_constants.add(value)
        entry = stats.get(value)
        if entry is None:
            entry = stats[value] = Statistics(bins)
        entry.add(array)

    number = 0
    for number, batch in enumerate(batches, 1):
        plan.run(batch, [observe])
        if on_batch is not None:
            on_batch(number)
    if number == 0:
        raise NNEFError("calibration needs at least one batch of inputs")
    return stats


# ---- calibration inputs ------------------------------------------------------------------


def graph_inputs(module: ModuleOp) -> dict[str, tuple[tuple | None, str, Location]]:
    """The graph's inputs by name: declared shape (None where unknown), dtype, location."""
    graph = graph_of(module)
    names = tensor_names(module)
    externals = {names[op.results[0]]: op for op in graph.body.block.ops
                 if is_declaration(op) and op.name != "nnef.variable" and op.results and op.results[0] in names}
    declared = {}
    for name in from_attribute(graph.inputs):
        op = externals.get(name)
        if op is None:
            raise NNEFError(f"graph input '{name}' is not defined by an external operation", location_of(graph))
        type_ = op.results[0].type
        shape = tuple(None if d == DYNAMIC_INDEX else d for d in type_.get_shape()) \
            if isinstance(type_, TensorType) else None
        declared[name] = (shape, dtype_of(type_), location_of(op))
    return declared


def calibration_batches(module: ModuleOp, calib: str | Path | None = None, samples: int | None = None,
                        seed: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Input dicts for calibration. `calib` is a `.npy` whose axis 0 holds the samples
    concatenated along the (only) input's batch axis, or a folder with one NAME.npy per
    graph input, each fed in batches of the input's batch size; None gives seeded
    standard-normal inputs (with a warning: real data is needed for real accuracy).
    `samples` caps the samples used (along axis 0)."""
    declared = graph_inputs(module)
    if calib is None:
        return _random_batches(declared, samples, seed)
    arrays = _calibration_arrays(Path(calib), declared)
    batches = {name: _split(array, path, declared[name], name) for name, (array, path) in arrays.items()}
    counts = {name: len(split) for name, split in batches.items()}
    if len(set(counts.values())) > 1:
        raise NNEFError(f"calibration files give different numbers of batches: {counts}", Location(str(calib)))
    total = next(iter(counts.values()))
    if samples is not None:
        sizes = {_batch_size(declared[name][0]) for name in declared}
        total = min(total, max(1, -(-samples // max(sizes))))
    return ({name: split[i] for name, split in batches.items()} for i in range(total))


def _random_batches(declared: dict, samples: int | None, seed: int) -> Iterator[dict[str, np.ndarray]]:
    from nnefopt.interp.interpreter import random_declared

    warn("no calibration data: calibrating on seeded standard-normal inputs; "
         "give real inputs (calib=PATH) for real accuracy")
    size = max(_batch_size(shape) for shape, _, _ in declared.values()) if declared else 1
    count = RANDOM_BATCHES if samples is None else max(1, -(-samples // size))
    return (random_declared(declared, seed + i) for i in range(count))


def _calibration_arrays(calib: Path, declared: dict) -> dict[str, tuple[np.ndarray, Path]]:
    if is_present(calib, "calibration", "folder"):
        return {name: (_load(calib / f"{name}.npy", _expected(declared[name][0])), calib / f"{name}.npy")
                for name in declared}
    if len(declared) != 1:
        raise NNEFError(f"a single calibration array feeds one input; the graph has inputs {list(declared)}: "
                        "give a folder with one NAME.npy per input", Location(str(calib)))
    (name, (shape, _, _)), = declared.items()
    return {name: (_load(calib, _expected(shape)), calib)}


def _load(path: Path, expected: str) -> np.ndarray:
    return read_npy(path, "calibration", f"an array of shape {expected}")


def _batch_size(shape: tuple | None) -> int:
    return shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else 1


def _expected(shape: tuple | None) -> str:
    if not shape:
        return "[N, ...]"
    rest = ", ".join("?" if d is None else str(d) for d in shape[1:])
    return f"[N*{_batch_size(shape)}{', ' + rest if rest else ''}]"


def _split(array: np.ndarray, path: Path, declared: tuple, name: str) -> list[np.ndarray]:
    """The array cut along axis 0 into batches of the input's declared shape."""
    shape, dtype, _ = declared
    size = _batch_size(shape)
    fits = shape is None or (array.ndim == len(shape) and all(
        d is None or d == n for d, n in zip(shape[1:], array.shape[1:])))
    if not fits or array.shape[0] == 0 or array.shape[0] % size:
        raise NNEFError(f"calibration array has shape {list(array.shape)}; input '{name}' expects "
                        f"{_expected(shape)} (samples along axis 0, in batches of {size})", Location(str(path)))
    if dtype == "scalar" and array.dtype.kind != "f":
        array = array.astype(np.float32)
    return [array[i:i + size] for i in range(0, array.shape[0], size)]
