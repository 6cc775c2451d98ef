"""nnef-opt: read an NNEF model (or its MLIR form), run passes, write it back.

Bad input ends with one line `file:line:col: error: message` and exit status 1;
warnings about accepted liberties go to stderr in the same form.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from nnefopt.errors import Location, NNEFError, NNEFWarning


def _show_warning(message, category, filename, lineno, file=None, line=None):
    text = str(message) if issubclass(category, NNEFWarning) else f"warning: {message}"
    print(text, file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnef-opt", description="Optimize NNEF models.")
    parser.add_argument("input", help="NNEF folder, graph.nnef, .tgz/.tar archive, .mlir file, or - (MLIR on stdin)")
    parser.add_argument("-o", "--output", help="output folder or .tgz archive (NNEF), or .mlir file")
    parser.add_argument("--emit", choices=["nnef", "mlir"],
                        help="form to write; default: MLIR to stdout without -o, NNEF with -o")
    parser.add_argument("--strict", action="store_true",
                        help="refuse what the specification does not allow instead of warning")
    parser.add_argument("-q", "--quiet", action="store_true", help="do not print warnings")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        warnings.simplefilter("ignore" if args.quiet else "always", NNEFWarning)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        from nnefopt.api import load, save, to_mlir

        module = load(args.input, strict=args.strict)
        emit = args.emit or ("mlir" if not args.output or args.output.endswith(".mlir") else "nnef")
        if args.output:
            _refuse_overwriting_input(args.input, args.output)
            save(module, args.output, emit=emit)
        elif emit == "mlir":
            sys.stdout.write(to_mlir(module))
        else:
            from nnefopt.export.from_ir import export_module
            from nnefopt.export.nnef_text import format_model

            sys.stdout.write(format_model(export_module(module)))
    except NNEFError as error:
        print(error, file=sys.stderr)
        return 1
    except RecursionError:  # a guard missed somewhere: still not a traceback
        print(f"{args.input}: error: input nested too deeply", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"{args.input}: error: out of memory reading the input", file=sys.stderr)
        return 1
    return 0


def _refuse_overwriting_input(source: str, destination: str) -> None:
    if source == "-":
        return
    source_path = Path(source).resolve()
    model_folder = source_path if source_path.is_dir() else source_path.parent
    target = Path(destination).resolve()
    if target == source_path or target == model_folder or model_folder in target.parents:
        raise NNEFError("output must not be the input model or inside it", Location(destination))


if __name__ == "__main__":
    sys.exit(main())
