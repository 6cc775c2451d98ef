"""nnef-compare: two models on the same inputs; exit 1 when an output differs beyond the
tolerance (naming it), 0 when all agree, 2 when the comparison cannot be made."""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from nnefopt.errors import NNEFError, NNEFWarning

MISMATCH, USAGE = 1, 2


def build_parser() -> argparse.ArgumentParser:
    from nnefopt.compare import DEFAULT_ATOL, DEFAULT_RTOL, ENGINES

    parser = argparse.ArgumentParser(prog="nnef-compare", description="Compare two models' outputs on the same inputs.")
    parser.add_argument("model_a", help="the model under test (NNEF folder, archive, .mlir, .onnx, .tflite)")
    parser.add_argument("model_b", help="the reference model")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                        help="an input tensor (repeat for several; a lone FILE.npy names the only input)")
    source.add_argument("--random-inputs", type=int, metavar="SEED", help="seeded random inputs (the default, seed 0)")
    parser.add_argument("--tolerance", default=f"{DEFAULT_RTOL:g},{DEFAULT_ATOL:g}", metavar="RTOL,ATOL",
                        help="outputs agree where |a - b| <= atol + rtol * |b| (default %(default)s)")
    parser.add_argument("--engine", choices=ENGINES, default="interp", help="what runs both models (default interp)")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.add_argument("--all-tensors", action="store_true", help="list every intermediate tensor compared")
    return parser


def _tolerance(parser: argparse.ArgumentParser, text: str) -> tuple[float, float]:
    try:
        rtol, atol = (float(part) for part in text.split(","))
    except ValueError:
        parser.error(f"--tolerance takes RTOL,ATOL (two numbers), not '{text}'")
    if not (rtol >= 0 and atol >= 0):
        parser.error("--tolerance takes numbers of at least 0")
    return rtol, atol


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # a usage error exits with 2
    rtol, atol = _tolerance(parser, args.tolerance)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        try:
            result = _compare(args, rtol, atol)
        except NNEFError as error:
            print(error, file=sys.stderr)
            return USAGE
    print(json.dumps(result.as_dict(), indent=2) if args.json else _text(result, args.all_tensors))
    if result.failed:
        print(f"nnef-compare: output{'s' if len(result.failed) > 1 else ''} {', '.join(result.failed)} "
              f"beyond the tolerance", file=sys.stderr)
        return MISMATCH
    return 0


def _text(result, all_tensors: bool) -> str:
    from nnefopt.compare import format_comparison

    return format_comparison(result, all_tensors)


def _compare(args: argparse.Namespace, rtol: float, atol: float):
    from nnefopt.compare import compare

    inputs = None
    if args.input:
        from nnefopt.api import load
        from nnefopt.interp.ir_interpreter import Plan
        from nnefopt.run_cli import read_inputs

        inputs = read_inputs(args.input, list(Plan(load(args.model_b)).inputs))
    return compare(args.model_a, args.model_b, inputs, seed=args.random_inputs, rtol=rtol, atol=atol,
                   engine=args.engine)


if __name__ == "__main__":
    sys.exit(main())
