"""Comparing two models on the same inputs: per output (and, run by the interpreter, per
intermediate tensor of the same name) the largest absolute and relative error, cosine
similarity and signal-to-quantization-noise ratio, and whether the outputs agree within
a tolerance (|a - b| <= atol + rtol * |b| everywhere, as numpy's allclose).

Engines: `interp` (nnefopt's interpreter, on the IR), `tract` (the tract Python
package, on the NNEF nnefopt writes), `onnxruntime` (on an `.onnx` file as it is).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nnefopt.errors import Location, NNEFError

ENGINES = ("interp", "tract", "onnxruntime")
DEFAULT_RTOL, DEFAULT_ATOL = 1e-4, 1e-5


@dataclass(frozen=True)
class Difference:
    name: str
    shape: list
    max_abs: float
    max_rel: float
    cosine: float
    sqnr_db: float
    within: bool
    note: str = ""


def difference(name: str, a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> Difference:
    """How `a` differs from the reference `b`."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return Difference(name, list(b.shape), math.inf, math.inf, 0.0, -math.inf, False,
                          f"shapes differ: {list(a.shape)} against {list(b.shape)}")
    x, y = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    if x.size == 0:
        return Difference(name, list(b.shape), 0.0, 0.0, 1.0, math.inf, True)
    same = (x == y) | (np.isnan(x) & np.isnan(y))  # equal infinities and both-NaN agree
    error = np.where(same, 0.0, np.abs(x - y))
    error = np.where(np.isnan(error), math.inf, error)
    within = bool(np.all(error <= atol + rtol * np.abs(y)))
    scale = np.maximum(np.abs(y), np.finfo(np.float64).tiny)
    noise, signal = float(np.sum(error[np.isfinite(error)] ** 2)), float(np.sum(y[np.isfinite(y)] ** 2))
    if not np.all(np.isfinite(error)):
        noise = math.inf
    norms = float(np.linalg.norm(x)) * float(np.linalg.norm(y))
    cosine = float(np.dot(x, y) / norms) if norms > 0 and np.all(np.isfinite(x * y)) else float(norms == 0)
    sqnr = math.inf if noise == 0 else (-math.inf if signal == 0 else 10 * math.log10(signal / noise))
    return Difference(name, list(b.shape), float(error.max()), float((error / scale).max()), cosine, sqnr, within)


@dataclass
class Comparison:
    outputs: list[Difference]
    tensors: list[Difference]  # intermediate tensors of the same name and both runs' interpreter
    rtol: float
    atol: float

    @property
    def failed(self) -> list[str]:
        return [d.name for d in self.outputs if not d.within]

    def as_dict(self) -> dict:
        return {"passed": not self.failed, "failed": self.failed, "tolerance": {"rtol": self.rtol, "atol": self.atol},
                "outputs": [_json(d) for d in self.outputs], "tensors": [_json(d) for d in self.tensors]}


def _json(d: Difference) -> dict:
    # JSON has no infinities: their text instead
    return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(d).items()}


def load_model(path: str | Path):
    from nnefopt.api import load

    return load(path)


def run_model(path: str, module, inputs: dict[str, np.ndarray], engine: str, record: bool) -> dict[str, np.ndarray]:
    """The model's outputs (and with `record`, under the interpreter, every tensor) by name."""
    if engine == "interp":
        from nnefopt.api import run

        if not record:
            return run(module, inputs)
        recorded = run(module, inputs, record=True)
        return recorded
    if engine == "tract":
        return _run_tract(module, inputs)
    if engine == "onnxruntime":
        return _run_onnxruntime(path, inputs)
    raise NNEFError(f"unknown engine '{engine}' (known: {', '.join(ENGINES)})")


def _run_tract(module, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from nnefopt.api import save
    from nnefopt.dialects.nnef import from_attribute
    from nnefopt.export.from_ir import graph_of

    try:
        import tract
    except ImportError:
        raise NNEFError("the tract engine needs the tract package (pip install tract)") from None
    graph = graph_of(module)
    names_in, names_out = from_attribute(graph.inputs), from_attribute(graph.outputs)
    with tempfile.TemporaryDirectory(prefix="nnefopt-tract-") as folder:
        save(module, Path(folder) / "model")
        try:
            runnable = tract.nnef().load(str(Path(folder) / "model")).into_runnable()
            results = runnable.run([np.asarray(inputs[n]) for n in names_in])
            arrays = [r.to_numpy() for r in results]
        except tract.TractError as exc:
            raise NNEFError(f"tract cannot run the model: {str(exc).splitlines()[0]}") from None
    return dict(zip(names_out, arrays))


def _run_onnxruntime(path: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not str(path).endswith(".onnx"):
        raise NNEFError("the onnxruntime engine runs .onnx files", Location(str(path)))
    try:
        import onnxruntime
    except ImportError:
        raise NNEFError("the onnxruntime engine needs the onnxruntime package") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {i.name: np.asarray(inputs[i.name]) for i in session.get_inputs() if i.name in inputs}
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed)))


def compare(path_a: str, path_b: str, inputs: dict[str, np.ndarray] | None = None, *, seed: int | None = None,
            rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL, engine: str = "interp") -> Comparison:
    """Model A against the reference model B on the same inputs (given, or seeded random
    inputs of B's declared shapes)."""
    from nnefopt.interp.ir_interpreter import Plan

    module_a, module_b = load_model(path_a), load_model(path_b)
    graph_inputs = Plan(module_b).inputs
    if inputs is None:
        inputs = Plan(module_b).random_inputs(0 if seed is None else seed)
    record = engine == "interp"
    a = run_model(path_a, module_a, inputs, engine, record)
    b = run_model(path_b, module_b, inputs, engine, record)
    outputs_a, outputs_b = _output_names(module_a, a, record), _output_names(module_b, b, record)
    if len(outputs_a) != len(outputs_b):
        raise NNEFError(f"the models have {len(outputs_a)} and {len(outputs_b)} outputs", Location(str(path_a)))
    # Outputs by name where both have the name, else by position.
    pairs = list(zip(outputs_a, outputs_b)) if set(outputs_a) != set(outputs_b) else [(n, n) for n in outputs_b]
    outputs = [difference(nb if na == nb else f"{na}/{nb}", a[na], b[nb], rtol, atol) for na, nb in pairs]
    tensors = []
    if record:
        done = set(outputs_b) | set(graph_inputs)
        tensors = [difference(name, a[name], b[name], rtol, atol) for name in b if name in a and name not in done]
    return Comparison(outputs, tensors, rtol, atol)


def _output_names(module, values: dict, record: bool) -> list[str]:
    if not record:
        return list(values)
    from nnefopt.dialects.nnef import from_attribute
    from nnefopt.export.from_ir import graph_of

    return list(from_attribute(graph_of(module).outputs))


def format_comparison(result: Comparison, all_tensors: bool = False) -> str:
    lines = [f"{'output':<32} {'max abs':>11} {'max rel':>11} {'cosine':>10} {'SQNR dB':>9}  verdict"]
    for d in result.outputs:
        lines.append(_row(d))
    if result.tensors:
        off = [d for d in result.tensors if not d.within]
        lines.append(f"intermediate tensors of the same name: {len(result.tensors)}, "
                     f"{len(off)} beyond the tolerance")
        for d in result.tensors if all_tensors else off[:10]:
            lines.append(_row(d))
    verdict = "FAIL: " + ", ".join(result.failed) if result.failed else "PASS"
    lines.append(f"{verdict} (rtol {result.rtol:g}, atol {result.atol:g})")
    return "\n".join(lines)


def _row(d: Difference) -> str:
    text = f"{d.name:<32} {d.max_abs:>11.3g} {d.max_rel:>11.3g} {d.cosine:>10.6f} {d.sqnr_db:>9.1f}  " + \
        ("ok" if d.within else "beyond tolerance")
    return text + (f" ({d.note})" if d.note else "")
