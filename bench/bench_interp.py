"""Interpreter time per model: the IR interpreter (a plan over the module) against the
old path (the module exported to the flat model, run by name) and onnxruntime with one
thread, on the same inputs: the shared models (their kt variant, the quantized one's
tract archive; onnxruntime where a model.onnx exists) and a generated ResNet-50-size
model (exported to ONNX from the same weights by onnx.helper).

The two interpreters run alternately, round after round, so that a slower moment of
the machine weighs on both alike; each time is the median of the rounds. Building the
plan and exporting the model are outside the timings (both are done once per model).

    python bench/bench_interp.py [--repeat N] [--skip-generated] [--only NAME] [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

# One BLAS thread, as onnxruntime gets: on a shared machine, threads only add noise.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.generate import resnet50, resnet50_onnx  # noqa: E402
from nnefopt.api import load  # noqa: E402
from nnefopt.export.from_ir import export_module  # noqa: E402
from nnefopt.interp.interpreter import run_model  # noqa: E402
from nnefopt.interp.ir_interpreter import Plan  # noqa: E402
from nnefopt.passes.layout import channel_first  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"


# Wall time by default; `--clock cpu` counts this process's processor time instead, which
# on a machine shared with other jobs leaves out the time spent waiting for a core.
CLOCK = time.perf_counter


def timed(function) -> float:
    start = CLOCK()
    function()
    return CLOCK() - start


def alternating(first, second, repeat: int) -> tuple[float, float]:
    """Median times of two functions run in turns (which goes first alternates too)."""
    first(), second()  # warm caches and lazy imports
    times: tuple[list, list] = ([], [])
    for round_ in range(repeat):
        if round_ % 2:
            times[1].append(timed(second))
            times[0].append(timed(first))
        else:
            times[0].append(timed(first))
            times[1].append(timed(second))
    return statistics.median(times[0]), statistics.median(times[1])


def median(function, repeat: int) -> float:
    function()
    return statistics.median(timed(function) for _ in range(repeat))


def session(onnx_path) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3  # the generated model keeps [1, C] copies of batch-norm weights unused
    return onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def shared_cases() -> list[tuple[str, Path, Path | None, np.ndarray]]:
    cases = []
    for folder in sorted(d for d in SHARED.iterdir() if d.is_dir()):
        nnef = folder / "kt" if (folder / "kt").is_dir() else folder / "tract.nnef.tgz"
        if not nnef.exists() or not (folder / "input.npy").is_file():
            continue
        onnx = folder / "model.onnx"
        cases.append((folder.name, nnef, onnx if onnx.is_file() else None, np.load(folder / "input.npy")))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--skip-generated", action="store_true", help="only the shared models")
    parser.add_argument("--only", metavar="NAME", help="only the models whose name contains NAME")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or this process's processor time (steadier on a loaded machine)")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    warnings.simplefilter("ignore")
    print(f"{'model':<22} {'old ms':>9} {'IR ms':>9} {'old/IR':>7} {'ort-1t ms':>10} {'IR/ort':>7} {'old/ort':>8}")
    with tempfile.TemporaryDirectory() as scratch:
        cases = shared_cases()
        if not args.skip_generated:
            big = Path(scratch) / "resnet50"
            resnet50(big)
            resnet50_onnx(big, Path(scratch) / "resnet50.onnx")
            x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
            cases.append(("resnet50-generated", big, Path(scratch) / "resnet50.onnx", x))
        for name, nnef_path, onnx_path, x in cases:
            if args.only and args.only not in name:
                continue
            module = load(nnef_path)
            model = export_module(channel_first(module))  # the old path: the flat model, by name
            plan = Plan(module)
            inputs = {model.inputs[0]: x}
            old_out, new_out = run_model(model, inputs), plan.run(inputs)
            for key in model.outputs:  # the same numbers, or the comparison means nothing
                np.testing.assert_array_equal(old_out[key], new_out[key])
            old, new = alternating(lambda: run_model(model, inputs), lambda: plan.run(inputs), args.repeat)
            row = f"{name:<22} {old * 1e3:>9.2f} {new * 1e3:>9.2f} {old / new:>7.2f}"
            if onnx_path is not None:
                ort = session(onnx_path)
                ort_input = ort.get_inputs()[0].name
                theirs = median(lambda: ort.run(None, {ort_input: x}), args.repeat)
                row += f" {theirs * 1e3:>10.3f} {new / theirs:>7.2f} {old / theirs:>8.2f}"
            print(row, flush=True)


if __name__ == "__main__":
    main()
