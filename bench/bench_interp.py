"""Interpreter time per model against onnxruntime with one thread, on the same inputs:
the shared models (their model.onnx) and a generated ResNet-50-size model (exported
to ONNX from the same weights by onnx.helper). Prints the ratio nnefopt / onnxruntime.

    python bench/bench_interp.py [--repeat N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.generate import resnet50, resnet50_onnx  # noqa: E402
from nnefopt.frontend.loader import load_model  # noqa: E402
from nnefopt.interp.interpreter import run_model  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"


def best(function, repeat: int) -> float:
    function()  # warm caches and lazy imports
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def session(onnx_path) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3  # the generated model keeps [1, C] copies of batch-norm weights unused
    return onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"{'model':<34} {'nnefopt ms':>11} {'ort-1t ms':>10} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as scratch:
        cases = [(d.name, d / "kt", d / "model.onnx", np.load(d / "input.npy")) for d in sorted(SHARED.iterdir())
                 if (d / "model.onnx").is_file()]
        big = Path(scratch) / "resnet50"
        resnet50(big)
        resnet50_onnx(big, Path(scratch) / "resnet50.onnx")
        x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
        cases.append(("resnet50-generated", big, Path(scratch) / "resnet50.onnx", x))
        for name, nnef_path, onnx_path, x in cases:
            model = load_model(nnef_path)
            ort = session(onnx_path)
            ort_input = ort.get_inputs()[0].name
            ours = best(lambda: run_model(model, {model.inputs[0]: x}), args.repeat)
            theirs = best(lambda: ort.run(None, {ort_input: x}), args.repeat)
            print(f"{name:<34} {ours * 1e3:>11.2f} {theirs * 1e3:>10.2f} {ours / theirs:>7.2f}")


if __name__ == "__main__":
    main()
