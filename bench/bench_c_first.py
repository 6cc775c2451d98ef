"""First latency figures of the C emitter (issue 14): each shared model's kt variant
emitted after -O, built as a shared library (-march=native, the Makefile's flags),
called through ctypes with pointers prepared once, against onnxruntime (one thread,
ORT_ENABLE_ALL) on model.onnx, same input. Rounds alternate between the two so that a
busier moment of the machine weighs on both; each figure is the median of its runs.
Also: compile time, arena bytes against the liveness lower bound and no reuse.

    python bench/bench_c_first.py [--runs N]
"""

from __future__ import annotations

import argparse
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
from tests.c_build import Library, compile_library, emitted  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"
MODELS = ("mlp_digits", "cnn_digits", "resnet8", "mobilenetv2_035", "tiny_unet", "tiny_vit")


def _ort_session(path: Path) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"{'model':16} {'compile':>8} {'arena':>9} {'bound':>9} {'no reuse':>9} {'ours us':>9} {'ort us':>9} ratio")
    with tempfile.TemporaryDirectory() as scratch:
        for name in MODELS:
            folder = Path(scratch) / name
            emitted(SHARED / name / "kt", folder)
            header = (folder / "model.h").read_text()
            arena = int(re.search(r"MODEL_ARENA_BYTES (\d+)u", header).group(1))
            bound = int(re.search(r"MODEL_ARENA_LOWER_BOUND_BYTES (\d+)u", header).group(1))
            apart = int(re.search(r"every tensor apart: (\d+)", header).group(1))
            start = time.perf_counter()
            library = Library(folder / compile_library(folder, "-march=native"))
            compile_seconds = time.perf_counter() - start
            x = np.load(SHARED / name / "input.npy")
            shape = np.load(SHARED / name / "output.npy").shape
            session = _ort_session(SHARED / name / "model.onnx")
            feed = {session.get_inputs()[0].name: x}
            ours, theirs = [], []
            for _ in range(10):  # warm both
                library.latency([x], [shape], arena, 1)
                session.run(None, feed)
            for _ in range(args.runs):
                ours.append(library.latency([x], [shape], arena, 1))
                started = time.perf_counter()
                session.run(None, feed)
                theirs.append(time.perf_counter() - started)
            a, b = statistics.median(ours) * 1e6, statistics.median(theirs) * 1e6
            print(f"{name:16} {compile_seconds:7.1f}s {arena:9} {bound:9} {apart:9} {a:9.1f} {b:9.1f} {a / b:5.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
