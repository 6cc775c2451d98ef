"""nnef-opt: read an NNEF model (or its MLIR form), run passes, write it back.

Bad input ends with one line `file:line:col: error: message` and exit status 1;
warnings about accepted liberties go to stderr in the same form.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from nnefopt.errors import Location, NNEFError, NNEFWarning


def _show_warning(message, category, filename, lineno, file=None, line=None):
    text = str(message) if issubclass(category, NNEFWarning) else f"warning: {message}"
    print(text, file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnef-opt", description="Optimize NNEF models.")
    parser.add_argument("input", nargs="?", help="NNEF folder, graph.nnef, .tgz/.tar archive, .mlir file, or - (MLIR on stdin)")
    parser.add_argument("-p", "--pass", dest="pipeline", default="",
                        help="pass pipeline in xDSL syntax, e.g. 'cse,dce' or 'pass{option=value}'")
    parser.add_argument("--list-passes", action="store_true", help="list the passes and exit")
    parser.add_argument("--print-ir-after-all", action="store_true", help="print the IR to stderr after each pass")
    parser.add_argument("--verify-each", action="store_true", help="verify the IR after each pass")
    parser.add_argument("--timing", action="store_true", help="print the time each pass took to stderr")
    parser.add_argument("-o", "--output", help="output folder or .tgz archive (NNEF), or .mlir file")
    parser.add_argument("--emit", choices=["nnef", "mlir"],
                        help="form to write; default: MLIR to stdout without -o, NNEF with -o")
    parser.add_argument("--strict", action="store_true",
                        help="refuse what the specification does not allow instead of warning")
    parser.add_argument("-q", "--quiet", action="store_true", help="do not print warnings")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_passes:
        from nnefopt.passes import describe_passes

        print("\n".join(describe_passes()))
        return 0
    if args.input is None:
        parser.error("the input model is required")
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        warnings.simplefilter("ignore" if args.quiet else "always", NNEFWarning)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        from nnefopt.api import load, save, to_mlir

        module = load(args.input, strict=args.strict)
        if args.pipeline:
            _optimize(module, args)
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


def _optimize(module, args: argparse.Namespace) -> None:
    from nnefopt.api import optimize, to_mlir

    timings: list[tuple[str, float]] = []
    started = [time.perf_counter()]

    def after(previous, op, following):
        now = time.perf_counter()
        if previous is not None:
            timings.append((previous.name, now - started[0]))
            if args.print_ir_after_all:
                sys.stderr.write(f"// -----// IR after {previous.name} //----- //\n{to_mlir(op)}")
        started[0] = time.perf_counter()

    optimize(module, args.pipeline, verify_each=args.verify_each, callback=after)
    if args.timing:
        total = sum(t for _, t in timings)
        for name, seconds in timings:
            print(f"{seconds * 1e3:10.2f} ms  {name}", file=sys.stderr)
        print(f"{total * 1e3:10.2f} ms  total", file=sys.stderr)


def _refuse_overwriting_input(source: str, destination: str) -> None:
    if source == "-":
        return
    # A folder model owns its whole folder; a single file owns itself and the folder it is in.
    source_path = Path(source).resolve()
    target = Path(destination).resolve()
    if source_path.is_dir():
        clash = target == source_path or source_path in target.parents
    else:
        clash = target in (source_path, source_path.parent)
    if clash:
        raise NNEFError("output must not be the input model or inside it", Location(destination))


if __name__ == "__main__":
    sys.exit(main())
