"""nnef-run: run a model with the reference interpreter and write its outputs as .npy."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from nnefopt.errors import NNEFError, NNEFWarning
from nnefopt.npy_file import read_npy


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnef-run", description="Run an NNEF model with nnefopt's interpreter.")
    parser.add_argument("model", help="NNEF folder, graph.nnef, .tgz archive, .mlir file, .onnx or .tflite model")
    parser.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                        help="an input tensor (repeat for several inputs; a lone FILE.npy names the only input)")
    parser.add_argument("--random-inputs", type=int, metavar="SEED", help="seeded random inputs instead")
    parser.add_argument("-o", "--output", metavar="OUT_DIR", help="folder to write each output as NAME.npy")
    parser.add_argument("--stats", action="store_true", help="print min/max/mean/std of every tensor computed")
    parser.add_argument("--arithmetic", choices=("integer", "float"), default="integer",
                        help="quantized conv/linear/matmul: as an int8 engine computes them (default), or the "
                             "specification's float simulation of graph.quant")
    parser.add_argument("--codes", action="store_true",
                        help="write outputs that carry a quantization entry as their integer codes, not reals")
    return parser


def read_inputs(specs: list[str], names: list[str]) -> dict[str, np.ndarray]:
    inputs = {}
    for spec in specs:
        name, _, file = spec.rpartition("=")
        if not name:
            if len(names) != 1:
                raise NNEFError(f"the graph has inputs {names}; write --input NAME=FILE.npy")
            name = names[0]
        inputs[name] = read_npy(file, f"input '{name}'")
    return inputs


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        try:
            _run(args)
        except NNEFError as error:
            print(error, file=sys.stderr)
            return 1
        except BrokenPipeError:  # `nnef-run ... | head`: the reader has seen enough
            sys.stderr.close()
    return 0


def _run(args: argparse.Namespace) -> None:
    from nnefopt.api import load
    from nnefopt.interp.ir_interpreter import Plan

    plan = Plan(load(args.model), arithmetic=args.arithmetic)
    if args.random_inputs is not None:
        inputs = plan.random_inputs(args.random_inputs)
    else:
        inputs = read_inputs(args.input, list(plan.inputs))
    listeners = [_Stats(plan.names)] if args.stats else []
    if args.stats:
        print(f"{'tensor':<40} {'shape':<18} {'min':>11} {'max':>11} {'mean':>11} {'std':>11}")
    outputs = plan.run(inputs, listeners, codes=args.codes)
    if args.output:
        folder = Path(args.output)
        folder.mkdir(parents=True, exist_ok=True)
        for name, array in outputs.items():
            np.save(folder / f"{name}.npy", array)
    elif not args.stats:
        for name, array in outputs.items():
            print(f"{name}: shape {list(array.shape)}, {np.array2string(array.reshape(-1)[:8], precision=5)}")


class _Stats:
    """Prints a row for every tensor as the interpreter computes it (literals are not tensors)."""

    def __init__(self, names: dict):
        self.names = names

    def on_value(self, value, array, op) -> None:
        name = self.names.get(value)
        if name is None or not isinstance(array, np.ndarray):
            return
        data = np.asarray(array, dtype=np.float64)
        stats = (data.min(), data.max(), data.mean(), data.std()) if data.size else (0.0,) * 4
        print(f"{name:<40} {str(list(array.shape)):<18} " + " ".join(f"{v:>11.4g}" for v in stats))


if __name__ == "__main__":
    sys.exit(main())
