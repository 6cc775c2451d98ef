"""int8 post-training quantization: output SQNR against fp32 of nnefopt's `quantize` (each
method and technique on and off) next to onnxruntime's `quantize_static` (QDQ, int8
activations and weights; MinMax, Percentile, Entropy; per-tensor and per-channel) on the
same calibration and test inputs, for every shared model; test accuracy for the digits
models; calibration time (median of --rounds runs).

Data, the same arrays for both tools:
- calibration: the digits models' `calib.npy` (real images, all of them unless --samples
  says fewer); otherwise --samples seeded standard-normal samples (seed 0);
- test: the digits models' `test.npy` (accuracy against `test_labels.npy` too); otherwise
  the model's `input.npy` and --samples seeded standard-normal samples (seed 1).
SQNR = 10 log10(sum ref^2 / sum (ref - q)^2) over every test output, ref = onnxruntime
running model.onnx in fp32.

    python bench/bench_quant.py [--models NAMES] [--samples N] [--rounds N] [--only onnxruntime|nnefopt]
                                [--configs LABELS]

per-channel scales need profile=generic, so the `profile=generic` row is per-channel's
per-tensor twin: the two differ only in the weights' scales.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.models import SHARED  # noqa: E402

DEFAULT_SAMPLES = 64
CALIB_SEED, TEST_SEED = 0, 1

# onnxruntime's calibrators and nnefopt's configurations, as the table names them
ORT_METHODS = ("MinMax", "Percentile", "Entropy")
NNEFOPT_CONFIGS = {
    "default": "",
    "method=minmax": "method=minmax",
    "method=percentile": "method=percentile",
    "method=entropy": "method=entropy",
    "method=mse": "method=mse",
    # per-channel scales need the generic profile, so its per-tensor twin is measured there too
    "profile=generic": "profile=generic",
    "per-channel": "per-channel=true profile=generic",
    "equalize=true": "equalize=true",
    "bias-correction=false": "bias-correction=false",
}


# ---- data ---------------------------------------------------------------------------


@dataclass
class ModelData:
    name: str
    onnx: Path
    input_name: str  # model.onnx's one input
    batch: int  # the input's batch size: arrays are fed in slices of it along axis 0
    calib: np.ndarray  # samples concatenated along the batch axis
    test: np.ndarray
    labels: np.ndarray | None  # digits models: one label per test sample

    def batches(self, array: np.ndarray) -> list[np.ndarray]:
        return [array[i:i + self.batch] for i in range(0, len(array) - self.batch + 1, self.batch)]


def shared_models() -> list[str]:
    return sorted(d.name for d in SHARED.iterdir() if (d / "model.onnx").is_file())


def model_data(name: str, samples: int | None = None) -> ModelData:
    import onnxruntime as ort

    folder = SHARED / name
    onnx_path = folder / "model.onnx"
    (model_input,) = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).get_inputs()
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in model_input.shape]
    batch = shape[0]
    count = samples if samples is not None else DEFAULT_SAMPLES
    count = max(batch, count - count % batch)  # whole batches
    if (folder / "calib.npy").is_file():
        calib = np.load(folder / "calib.npy")
        calib = calib if samples is None else calib[:count]
        test, labels = np.load(folder / "test.npy"), np.load(folder / "test_labels.npy")
    else:
        calib = np.random.default_rng(CALIB_SEED).standard_normal((count, *shape[1:])).astype(np.float32)
        normal = np.random.default_rng(TEST_SEED).standard_normal((count, *shape[1:])).astype(np.float32)
        test, labels = np.concatenate([np.load(folder / "input.npy").astype(np.float32), normal]), None
    return ModelData(name, onnx_path, model_input.name, batch, calib, test, labels)


# ---- measures -----------------------------------------------------------------------


def sqnr(reference: list[np.ndarray], quantized: list[np.ndarray]) -> float:
    """Output signal-to-quantization-noise ratio in dB, over all outputs."""
    ref = np.concatenate([np.asarray(r, np.float64).ravel() for r in reference])
    got = np.concatenate([np.asarray(q, np.float64).ravel() for q in quantized])
    noise = float(np.sum((ref - got) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.sum(ref ** 2)) / noise)


def per_sample(outputs: list[np.ndarray]) -> np.ndarray:
    """A batch's outputs as one row per sample: every output flattened, side by side."""
    return np.concatenate([np.asarray(o).reshape(len(o), -1) for o in outputs], axis=1)


def accuracy(outputs: list[np.ndarray], labels: np.ndarray | None) -> float | None:
    if labels is None:
        return None
    predicted = np.concatenate([o.argmax(axis=1) for o in outputs])
    return float(np.mean(predicted == labels[:len(predicted)]))


def timed(function: Callable[[], object], rounds: int) -> tuple[object, float]:
    """The last result of `rounds` calls and their median time in seconds."""
    times, result = [], None
    for _ in range(max(1, rounds)):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


# ---- onnxruntime --------------------------------------------------------------------


def ort_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # the machine is shared: one thread, steady times
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_outputs(path: Path, data: ModelData) -> list[np.ndarray]:
    """The model's outputs for every test batch."""
    session = ort_session(path)
    return [per_sample(session.run(None, {data.input_name: batch})) for batch in data.batches(data.test)]


def preprocessed(data: ModelData, scratch: Path) -> Path:
    """model.onnx after onnxruntime's `quant_pre_process` (shape inference, graph
    optimization), as its documentation advises before quantize_static; the model itself
    when that step fails."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = scratch / f"{data.name}_pre.onnx"
    if not out.is_file():
        try:
            quant_pre_process(str(data.onnx), str(out))
        except Exception:  # noqa: BLE001  (any failure of the optional step: quantize the model as it is)
            return data.onnx
    return out


def ort_quantize(data: ModelData, method: str, per_channel: bool, scratch: Path) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(data.batches(data.calib))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {data.input_name: batch}

    out = scratch / f"{data.name}_{method}_{'pc' if per_channel else 'pt'}.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
        warnings.simplefilter("ignore")
        quantize_static(str(preprocessed(data, scratch)), str(out), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, method))
    return out


@dataclass
class Row:
    tool: str
    config: str
    sqnr: float | None
    accuracy: float | None
    seconds: float | None
    note: str = ""


def onnxruntime_rows(data: ModelData, reference: list[np.ndarray], rounds: int, scratch: Path,
                     methods=ORT_METHODS, per_channel=(False, True)) -> list[Row]:
    rows = []
    for method in methods:
        for channel in per_channel:
            path, seconds = timed(lambda: ort_quantize(data, method, channel, scratch), rounds)
            outputs = ort_outputs(path, data)
            rows.append(Row("onnxruntime", f"{method} {'per-channel' if channel else 'per-tensor'}",
                            sqnr(reference, outputs), accuracy(outputs, data.labels), seconds))
    return rows


# ---- nnefopt ------------------------------------------------------------------------


def run_quantized(module, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The quantized module's float outputs by the interpreter's integer semantics: what
    tract (and an int8 engine) computes."""
    import nnefopt

    return nnefopt.run(module, inputs, arithmetic="integer")


def nnefopt_variant(name: str):
    """The model's first variant nnefopt loads (kt, then t2n, then tract), and its id."""
    import nnefopt
    from nnefopt.errors import NNEFError

    folder = SHARED / name
    for variant, path in (("kt", folder / "kt"), ("t2n", folder / "t2n"), ("tract", folder / "tract.nnef.tgz")):
        if not path.exists():
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return nnefopt.load(path), variant
        except NNEFError:
            continue
    raise RuntimeError(f"no variant of {name} loads")


def nnefopt_outputs(module, data: ModelData) -> list[np.ndarray]:
    from nnefopt.quant.observe import graph_inputs

    (input_name,) = graph_inputs(module)
    results = []
    for batch in data.batches(data.test):
        outputs = run_quantized(module, {input_name: batch})
        results.append(per_sample(list(outputs.values())))
    return results


def nnefopt_rows(data: ModelData, reference: list[np.ndarray], rounds: int, scratch: Path,
                 configs: dict[str, str] = NNEFOPT_CONFIGS) -> list[Row]:
    import nnefopt
    from nnefopt.errors import NNEFError

    calib = scratch / f"{data.name}_calib.npy"
    np.save(calib, data.calib)  # the arrays onnxruntime calibrates on
    module, variant = nnefopt_variant(data.name)
    fp32 = nnefopt_outputs(module, data)
    rows = [Row("nnefopt", f"fp32 ({variant})", sqnr(reference, fp32), accuracy(fp32, data.labels), None)]
    for label, options in configs.items():
        pipeline = f"fuse,quantize{{calib=\"{calib}\" samples={len(data.calib)}{' ' + options if options else ''}}}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quantized, seconds = timed(lambda: nnefopt.optimize(module.clone(), pipeline), rounds)
            outputs = nnefopt_outputs(quantized, data)
        except NNEFError as error:
            rows.append(Row("nnefopt", label, None, None, None, str(error).splitlines()[0][:70]))
            continue
        rows.append(Row("nnefopt", label, sqnr(reference, outputs), accuracy(outputs, data.labels), seconds))
    return rows


# ---- the benchmark ------------------------------------------------------------------


def print_table(data: ModelData, reference: list[np.ndarray], rows: list[Row]) -> None:
    fp32_accuracy = accuracy(reference, data.labels)
    accuracy_note = "" if fp32_accuracy is None else f", fp32 accuracy {100 * fp32_accuracy:.2f} %"
    print(f"\n{data.name}: {len(data.calib)} calibration samples, {len(data.test)} test samples{accuracy_note}")
    print(f"  {'tool':<12} {'configuration':<26} {'SQNR dB':>8} {'acc %':>7} {'calib s':>8}")
    best = max((r.sqnr for r in rows if r.tool == "onnxruntime" and r.sqnr is not None), default=None)
    for row in rows:
        cell = "-" if row.sqnr is None else f"{row.sqnr:.2f}"
        acc = "-" if row.accuracy is None else f"{100 * row.accuracy:.2f}"
        seconds = "-" if row.seconds is None else f"{row.seconds:.2f}"
        margin = ""
        if best is not None and row.tool == "nnefopt" and row.sqnr is not None and not row.config.startswith("fp32"):
            margin = f"  {row.sqnr - best:+.2f} dB vs onnxruntime's best"
        print(f"  {row.tool:<12} {row.config:<26} {cell:>8} {acc:>7} {seconds:>8}{margin}{'  ' + row.note if row.note else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="", help="comma-separated model names (default: every shared model)")
    parser.add_argument("--samples", type=int, default=None,
                        help=f"calibration (and random test) samples; default {DEFAULT_SAMPLES}, digits: all of calib.npy")
    parser.add_argument("--rounds", type=int, default=3, help="calibration runs per configuration, median time kept")
    parser.add_argument("--only", choices=("onnxruntime", "nnefopt"), help="measure one tool only")
    parser.add_argument("--configs", default="",
                        help=f"comma-separated nnefopt configurations (default: all of {', '.join(NNEFOPT_CONFIGS)})")
    args = parser.parse_args()
    chosen = [c.strip() for c in args.configs.split(",") if c.strip()] or list(NNEFOPT_CONFIGS)
    if unknown_configs := sorted(set(chosen) - set(NNEFOPT_CONFIGS)):
        sys.exit(f"error: no configuration {', '.join(unknown_configs)} (there are {', '.join(NNEFOPT_CONFIGS)})")
    configs = {label: NNEFOPT_CONFIGS[label] for label in chosen}
    names = [n.strip() for n in args.models.split(",") if n.strip()] or shared_models()
    unknown = sorted(set(names) - set(shared_models()))
    if unknown:
        sys.exit(f"error: no shared model {', '.join(unknown)} (there are {', '.join(shared_models())})")
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            data = model_data(name, args.samples)
            reference = ort_outputs(data.onnx, data)
            rows = []
            if args.only != "nnefopt":
                rows += onnxruntime_rows(data, reference, args.rounds, Path(scratch))
            if args.only != "onnxruntime":
                rows += nnefopt_rows(data, reference, args.rounds, Path(scratch), configs)
            print_table(data, reference, rows)
            sys.stdout.flush()


if __name__ == "__main__":
    main()
