"""What quantization cost, layer by layer: the SQNR of each quantized layer's output
(and the graph's outputs) against the float model on the calibration inputs, the range
method, and the operations left float with the reason, as JSON and as a table.

SQNR = 10 log10(sum f^2 / sum (q - f)^2) over every calibration batch: a layer far below
its neighbours is the one to keep in float (`keep-float=NAME`).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from nnefopt.errors import Location, NNEFError


class ErrorPower:
    """Running signal and noise power of one tensor."""

    def __init__(self):
        self.signal = 0.0
        self.noise = 0.0

    def add(self, reference: np.ndarray, quantized: np.ndarray) -> None:
        reference = np.asarray(reference, np.float64)
        self.signal += float(np.sum(reference**2))
        self.noise += float(np.sum((np.asarray(quantized, np.float64) - reference) ** 2))

    def sqnr(self) -> float:
        if self.noise == 0:
            return math.inf
        if self.signal == 0:
            return -math.inf
        return 10 * math.log10(self.signal / self.noise)


def sqnr_by_name(reference: ModuleOp, quantized: ModuleOp, batches: Iterable[dict[str, np.ndarray]],
                 names: Iterable[str]) -> dict[str, float]:
    """SQNR of each named tensor of `quantized` against the same tensor of `reference`."""
    from nnefopt.api import run

    wanted = list(dict.fromkeys(names))
    power = {name: ErrorPower() for name in wanted}
    for batch in batches:
        ref, got = run(reference, batch, record=True), run(quantized, batch, record=True)
        for name in wanted:
            a, b = ref.get(name), got.get(name)
            if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape \
                    and a.dtype.kind == "f":
                power[name].add(a, b)
    return {name: p.sqnr() for name, p in power.items() if p.signal or p.noise}


def table(report: dict) -> str:
    """The report as text for a terminal."""
    lines = [f"quantize: {report['method']} ranges, {report['weights']} weights, profile {report['profile']}, "
             f"{report['batches']} calibration batches",
             f"  {'tensor':<36} {'operation':<14} {'int8':<6} {'SQNR dB':>8}"]
    for row in report["layers"]:
        sqnr = row.get("sqnr_db")
        shown = "(relu)" if row.get("clipped") else "" if sqnr is None else "inf" if sqnr == math.inf \
            else f"{sqnr:.1f}"
        lines.append(f"  {row['tensor'][:36]:<36} {row['operation'][:14]:<14} {'yes' if row['int8'] else 'float':<6} "
                     f"{shown:>8}" + (f"  ({row['reason']})" if row.get("reason") else ""))
    for name, sqnr in report["outputs"].items():
        lines.append(f"  output {name}: SQNR {sqnr:.1f} dB")
    return "\n".join(lines)


def write(report: dict, path: str | None, stream=None) -> None:
    """The table on stderr; the JSON at `path` when given."""
    (stream or sys.stderr).write(table(report) + "\n")
    if path:
        text = json.dumps(_finite(report), indent=1, default=_number)
        try:
            Path(path).write_text(text + "\n", encoding="utf-8")
        except OSError as error:
            raise NNEFError(f"cannot write the quantization report: {error.strerror}", Location(path)) from None


def _number(value):
    return float(value)


def _finite(value):
    """JSON has no infinity: an exact tensor (no error at all) is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
