"""The C emitter's acceptance benchmark (issue 14): single-thread latency of the emitted
library against onnxruntime (one thread, ORT_ENABLE_ALL) and tract, same input, same
run, on every shared model and on generated ResNet-50 and MobileNetV2 at 224x224
(random weights, bench/generate.py).

Ours: the model after -O emitted to C, built as a shared library with the Makefile's
flags and -march=native, called through ctypes with pointers prepared once. onnxruntime
runs model.onnx (the shared one, or the generated model's translation); tract runs
tract.nnef.tgz (shared) or the generated ONNX, optimized. Each round times one call of
each engine, the order turning round by round, so that a busier moment of this shared
machine weighs on all; each figure is the median of its rounds. Also printed: GFLOP/s
(multiply-adds of conv, deconv, linear, matmul counted twice), compile time, the arena
against its liveness lower bound and against no reuse, and the largest difference
from onnxruntime's output.

    python bench/bench_c.py [--runs N] [--big-runs N] [--models NAME,NAME...] [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.generate import mobilenetv2, mobilenetv2_onnx, resnet50, resnet50_onnx  # noqa: E402
from tests.c_build import Library, compile_library, emitted  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"
SMALL = ("mlp_digits", "cnn_digits", "resnet8", "mobilenetv2_035", "tiny_unet", "tiny_vit")
GENERATED = {"resnet50": (resnet50, resnet50_onnx), "mobilenetv2": (mobilenetv2, mobilenetv2_onnx)}


def ort_session(path: Path) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # the generated models keep unused batch-norm copies
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def tract_runnable(path: Path):
    """tract's optimized plan of an NNEF archive or an ONNX file; None where tract refuses it."""
    try:
        import tract
    except ImportError:
        return None
    try:
        if path.suffix == ".onnx":
            return tract.onnx().load(str(path)).into_model().into_runnable()  # optimized there
        return tract.nnef().load(str(path)).into_runnable()
    except Exception as exc:  # tract's own error type; the bench reports it and goes on
        print(f"  tract refuses {path.name}: {str(exc).splitlines()[0][:100]}", file=sys.stderr)
        return None


def flops(module) -> int:
    """Twice the multiply-adds of the convs, deconvs, linears and matmuls of the -O module."""
    from nnefopt.export.from_ir import graph_of

    total = 0
    for op in graph_of(module).body.block.ops:
        entry = getattr(op, "OP_DEF", None)
        if entry is None or not op.results:
            continue
        base = entry.name.split("_")[0]
        out = [int(d) for d in op.results[0].type.get_shape()]
        shapes = [[int(d) for d in v.type.get_shape()] for v in op.operands]
        if base in ("conv", "deconv") and len(shapes) >= 2:
            x, w = shapes[0], shapes[1]
            per = math.prod(w[1:])  # (C / G) * kernel for conv, (O / G) * kernel for deconv
            total += 2 * (math.prod(out) if base == "conv" else math.prod(x)) * per
        elif base in ("linear", "matmul") and len(shapes) >= 2:
            a = shapes[0]
            k = a[-2] if base == "matmul" and _attribute(op, "transposeA") else a[-1]
            total += 2 * math.prod(out) * k
    return total


def _attribute(op, name):
    from nnefopt.passes.rewriting import attribute

    return attribute(op, name)


CLOCK = time.perf_counter


def timed(function) -> float:
    start = CLOCK()
    function()
    return CLOCK() - start


def measure(name: str, nnef: Path, onnx_path: Path, tract_path: Path, x: np.ndarray, runs: int, scratch: Path):
    folder = scratch / f"{name}_c"
    start = time.perf_counter()
    module = emitted(nnef, folder)
    emit_seconds = time.perf_counter() - start
    header = (folder / "model.h").read_text()
    arena = int(re.search(r"MODEL_ARENA_BYTES (\d+)u", header).group(1))
    bound = int(re.search(r"MODEL_ARENA_LOWER_BOUND_BYTES (\d+)u", header).group(1))
    apart = int(re.search(r"every tensor apart: (\d+)", header).group(1))
    start = time.perf_counter()
    library = Library(folder / compile_library(folder, "-march=native"))
    compile_seconds = time.perf_counter() - start
    session = ort_session(onnx_path)
    feed = {session.get_inputs()[0].name: x}
    (reference,) = session.run(None, feed)
    call = library.prepared([x], [reference.shape], arena)
    difference = float(np.max(np.abs(call() - reference)))
    engines = {"ours": call, "ort": lambda: session.run(None, feed)}
    runnable = tract_runnable(tract_path)
    if runnable is not None:
        engines["tract"] = lambda: runnable.run([x])
    for function in engines.values():  # warm
        for _ in range(3):
            function()
    times: dict[str, list[float]] = {key: [] for key in engines}
    order = list(engines)
    for round_ in range(runs):
        for key in order[round_ % len(order):] + order[:round_ % len(order)]:
            times[key].append(timed(engines[key]))
    medians = {key: statistics.median(values) for key, values in times.items()}
    return dict(name=name, flops=flops(module), emit=emit_seconds, compile=compile_seconds, arena=arena,
                bound=bound, apart=apart, difference=difference, **medians)


def cases(models: list[str], scratch: Path):
    for name in models:
        if name in GENERATED:
            make, to_onnx = GENERATED[name]
            folder = scratch / name
            make(folder)
            onnx_path = scratch / f"{name}.onnx"
            to_onnx(folder, onnx_path)
            x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
            yield name, folder, onnx_path, onnx_path, x, True
        else:
            shared = SHARED / name
            yield name, shared / "kt", shared / "model.onnx", shared / "tract.nnef.tgz", \
                np.load(shared / "input.npy"), False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200, help="rounds on the shared small models")
    parser.add_argument("--big-runs", type=int, default=15, help="rounds on the generated 224x224 models")
    parser.add_argument("--models", default=",".join([*SMALL, *GENERATED]),
                        help="comma-separated: the shared models' names, resnet50, mobilenetv2")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or this thread's processor time (steadier when the machine is loaded; "
                             "every engine runs on the calling thread)")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.thread_time if args.clock == "cpu" else time.perf_counter
    warnings.simplefilter("ignore")
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in GENERATED and not (SHARED / m / "kt").is_dir()]
    if unknown:
        parser.error(f"unknown model(s): {', '.join(unknown)}")
    print(f"{'model':16} {'emit':>6} {'compile':>7} {'arena':>10} {'bound':>10} {'no reuse':>10} "
          f"{'ours us':>10} {'ort us':>10} {'tract us':>10} {'GF/s':>6} {'/ort':>5} {'/tract':>6} {'max diff':>9}")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, nnef, onnx_path, tract_path, x, big in cases(models, Path(scratch)):
            row = measure(name, nnef, onnx_path, tract_path, x, args.big_runs if big else args.runs, Path(scratch))
            rows.append(row)
            tract_us = f"{row['tract'] * 1e6:10.1f}" if "tract" in row else f"{'-':>10}"
            over_tract = f"{row['ours'] / row['tract']:6.2f}" if "tract" in row else f"{'-':>6}"
            print(f"{name:16} {row['emit']:5.1f}s {row['compile']:6.1f}s {row['arena']:10} {row['bound']:10} "
                  f"{row['apart']:10} {row['ours'] * 1e6:10.1f} {row['ort'] * 1e6:10.1f} {tract_us} "
                  f"{row['flops'] / row['ours'] / 1e9:6.1f} {row['ours'] / row['ort']:5.2f} {over_tract} "
                  f"{row['difference']:9.2e}", flush=True)
    print("\nratios (lower is better): " + ", ".join(
        f"{r['name']} {r['ours'] / r['ort']:.2f}x ort" + (f" / {r['ours'] / r['tract']:.2f}x tract" if "tract" in r
                                                          else "") for r in rows))


if __name__ == "__main__":
    main()
