"""Optimization passes: operation counts before and after a pipeline (default: the
`default` pipeline) on every shared model variant, next to what the peers make of the
same model — nnef-tools' NNEF optimizer (`nnef_tools.convert --optimize`, NNEF to NNEF)
and onnxruntime's graph optimizer (ORT_ENABLE_EXTENDED) on the model's `model.onnx` —
and the pipeline's time; then its time on chains of 1,000 and 10,000 conv blocks and on
a ResNet-50-size model.

Operations are counted alike everywhere: compute operations, not tensors (see
nnefopt/passes/stats.py; for the peers: Khronos graphs without external/variable/
constant, ONNX nodes without `Constant`).

    python bench/bench_passes.py [--pipeline TEXT] [--repeat N] [--chain-rounds N] [--quick] [--verify-each]
"""

from __future__ import annotations

import argparse
import gc
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import nnef

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.generate import noisy_conv_chain, resnet50  # noqa: E402
from nnefopt.api import load, optimize  # noqa: E402
from nnefopt.errors import NNEFError  # noqa: E402
from nnefopt.passes.stats import DATA_OPERATIONS, count_operations  # noqa: E402
from tests.models import SHARED, variants  # noqa: E402
from tests.peers import onnx_operations, onnxruntime_optimized  # noqa: E402

NNEF_TOOLS_TIMEOUT = 300  # seconds per model


# ---- the pipeline -------------------------------------------------------------------


def pipeline_time(module, pipeline: str, repeat: int, verify_each: bool):
    """Best time of the pipeline over `repeat` runs, each on a fresh copy of the module
    (copying is not timed), the optimized module, and the best run's time per pass as
    (pass name, seconds) pairs."""
    best = (float("inf"), None, [])
    for _ in range(repeat):
        best = min(best, timed_run(module.clone() if repeat > 1 else module, pipeline, verify_each), key=lambda r: r[0])
    return best


def timed_run(work, pipeline: str, verify_each: bool):
    """One run of the pipeline on `work`: seconds, the optimized module, seconds per pass."""
    marks = []  # (the pass that just ran or None before the first, when): xDSL calls back
    # before the first pass, between passes and after the last

    def between(previous, _op, _following):
        marks.append((previous, time.perf_counter()))

    gc.collect()  # what loading and copying left behind is not the pipeline's to pay for
    start = time.perf_counter()
    optimize(work, pipeline, verify_each=verify_each, callback=between)
    seconds = time.perf_counter() - start
    passes = [(done.name, when - before) for (_, before), (done, when) in zip(marks, marks[1:])]
    return seconds, work, passes


def quiet_load(path: Path):
    with warnings.catch_warnings():  # torch-to-nnef's and tract's liberties warn
        warnings.simplefilter("ignore")
        return load(path)


# ---- peers --------------------------------------------------------------------------


def khronos_operations(path: Path) -> int:
    graph = nnef.load_graph(str(path))
    return sum(op.name not in DATA_OPERATIONS for op in graph.operations)


def _failure_class(message: str) -> str:
    if "timed out" in message:
        return "timeout"
    if "could not handle extension" in message:
        return "extension"
    if "Parse error" in message:
        return "parse"
    if "shape inference function is not defined" in message:
        return "no shape fn"
    return "error"


def nnef_tools_optimized(path: Path, scratch: Path) -> tuple[int | None, str]:
    """The operation count of nnef-tools' optimized NNEF for the model, or None and the
    class of the failure, and the message it ends with."""
    out = scratch / "nnef_tools_out"
    command = [sys.executable, "-m", "nnef_tools.convert", "--input-format", "nnef", "--output-format", "nnef",
               "--optimize", "--input-model", str(path), "--output-model", str(out)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=NNEF_TOOLS_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {NNEF_TOOLS_TIMEOUT} s"
    lines = (done.stderr + done.stdout).strip().splitlines()
    if done.returncode != 0 or not (out / "graph.nnef").is_file():
        return None, lines[-1] if lines else f"exit status {done.returncode}"
    try:
        return khronos_operations(out), ""
    except Exception as exc:  # the Khronos parser's own error type
        return None, f"reading its output: {exc}"
    finally:
        shutil.rmtree(out, ignore_errors=True)


# ---- the benchmark ------------------------------------------------------------------


def shared_models(args, scratch: Path) -> None:
    print(f"{'variant':<22} {'ops':>5} {'after':>6} {'pipeline ms':>12} {'nnef-tools':>15} {'onnx':>5} {'ort':>5}")
    ort_counts: dict[Path, tuple[int, int] | None] = {}
    failures: dict[str, tuple[list[str], str]] = {}
    before_total = after_total = 0
    for name, path in variants():
        module = quiet_load(path)
        before = count_operations(module)
        seconds, optimized, _ = pipeline_time(module, args.pipeline, args.repeat, args.verify_each)
        after = count_operations(optimized)
        before_total, after_total = before_total + before, after_total + after
        theirs, message = nnef_tools_optimized(path, scratch)
        if theirs is None:
            reason = _failure_class(message)
            failures.setdefault(reason, ([], message))[0].append(name)
            tools = f"- ({reason})"
        else:
            tools = str(theirs)
        onnx_path = SHARED / name.split("/")[0] / "model.onnx"
        if onnx_path not in ort_counts:
            ort_counts[onnx_path] = ((onnx_operations(onnx_path), onnxruntime_optimized(onnx_path))
                                     if onnx_path.is_file() else None)
        onnx_ops, ort_ops = ort_counts[onnx_path] or ("-", "-")
        print(f"{name:<22} {before:>5} {after:>6} {seconds * 1e3:>12.1f} {tools:>15} {onnx_ops:>5} {ort_ops:>5}")
    print(f"{'all variants':<22} {before_total:>5} {after_total:>6}")
    print("ops/after: nnefopt before/after the pipeline; nnef-tools: after `nnef_tools.convert --optimize`;")
    print("onnx/ort: model.onnx's nodes before/after onnxruntime ORT_ENABLE_EXTENDED (one ONNX per model)")
    for reason, (names, message) in failures.items():
        print(f"nnef-tools '{reason}' on {', '.join(names)}; e.g. {message}")


def scaling(args, scratch: Path) -> None:
    print()
    print(f"{'conv chain (conv, bn, relu + copies)':<40} {'ops':>7} {'after':>7} {'load s':>8} {'pipeline s':>11}")
    sizes = (1_000,) if args.quick else (1_000, 10_000)
    modules, loads = [], []
    for blocks in sizes:
        folder = scratch / f"chain{blocks}"
        noisy_conv_chain(folder, blocks)
        start = time.perf_counter()
        modules.append(quiet_load(folder))
        loads.append(time.perf_counter() - start)
    # the sizes take turns, best of --chain-rounds runs each: a ratio of two runs minutes
    # apart measures whatever else the machine did meanwhile as much as the pipeline, and
    # a busy neighbour slows the 10,000-block chain, which waits on memory, the most
    best = [(float("inf"), None, [])] * len(sizes)
    for _ in range(args.chain_rounds):
        for index, module in enumerate(modules):
            run = timed_run(module.clone(), args.pipeline, args.verify_each)
            best[index] = min(best[index], run, key=lambda r: r[0])
            del run
    times = []
    for blocks, module, loaded, (seconds, optimized, passes) in zip(sizes, modules, loads, best):
        times.append((count_operations(module), seconds, passes))
        print(f"{f'{blocks:,} blocks':<40} {times[-1][0]:>7} {count_operations(optimized):>7} {loaded:>8.2f} {seconds:>11.3f}")
        print("    " + ", ".join(f"{name} {t:.3f}" for name, t in passes))
    del modules, best
    if len(times) == 2:
        (small_ops, small, small_passes), (big_ops, big, big_passes) = times
        ratio = big / small
        print(f"{big_ops / small_ops:.0f}x operations: pipeline time x{ratio:.1f} (goal <= 11) "
              f"{'ok' if ratio <= 11 else 'MISSED'}")
        print("    per pass: " + ", ".join(f"{name} x{b / a:.1f}" for (name, a), (_, b) in zip(small_passes, big_passes)))


def resnet(args, scratch: Path) -> None:
    folder = scratch / "resnet50"
    parameters = resnet50(folder)
    module = quiet_load(folder)
    before = count_operations(module)
    seconds, optimized, _ = pipeline_time(module, args.pipeline, args.repeat, args.verify_each)
    print()
    print(f"resnet50-generated ({parameters / 1e6:.1f} M parameters): {before} -> {count_operations(optimized)} "
          f"operations, pipeline {seconds * 1e3:.1f} ms (goal < 1000 ms) {'ok' if seconds < 1 else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", default="default", help="pass pipeline text (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="pipeline runs per model, best kept")
    parser.add_argument("--chain-rounds", type=int, default=5, help="runs per conv chain, best kept")
    parser.add_argument("--quick", action="store_true", help="skip the 10,000-block chain and ResNet-50")
    parser.add_argument("--verify-each", action="store_true", help="verify the IR after each pass, and time it")
    args = parser.parse_args()
    print(f"pipeline '{args.pipeline}'{', verifying after each pass' if args.verify_each else ''}")
    try:
        with tempfile.TemporaryDirectory() as scratch:
            shared_models(args, Path(scratch))
            scaling(args, Path(scratch))
            if not args.quick:
                resnet(args, Path(scratch))
    except NNEFError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
