"""nnef-opt: read an NNEF model (or its MLIR form), run passes, write it back.

Bad input ends with one line `file:line:col: error: message` and exit status 1; a wrong
command line with exit status 2, as compilers do. Warnings about accepted liberties go
to stderr in the same form, one line per kind (`-v`: each).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from nnefopt.diagnostics import WarningReport, reported_warnings
from nnefopt.errors import Location, NNEFError
from nnefopt.targets import EmitOptions, describe_targets, target_for, target_names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnef-opt", description="Optimize NNEF models.")
    parser.add_argument("input", nargs="?", help="NNEF folder, graph.nnef, .tgz/.tar archive, .mlir file, .onnx or .tflite model, or - (MLIR on stdin)")
    parser.add_argument("-p", "--pass", dest="pipeline", default="",
                        help="pass pipeline in xDSL syntax, e.g. 'cse,dce' or 'pass{option=value}'")
    parser.add_argument("-O", dest="default_pipeline", action="store_true",
                        help="run the default pipeline (fold-constants, canonicalize, fuse, canonicalize) "
                             "before any --pass")
    parser.add_argument("--list-passes", action="store_true", help="list the passes and exit")
    parser.add_argument("--list-rules", action="store_true",
                        help="verify and list the rewrite rules of --rules, each with its verdict, and exit")
    parser.add_argument("--rules", default="standard",
                        help="rule set for --list-rules: standard (default), stdlib, registered or a rule file; "
                             "join several with +")
    parser.add_argument("--print-ir-after-all", action="store_true", help="print the IR to stderr after each pass")
    parser.add_argument("--verify-each", action="store_true", help="verify the IR after each pass")
    parser.add_argument("--timing", action="store_true", help="print the time each pass took to stderr")
    parser.add_argument("--check-numerics", action="store_true",
                        help="run the model before and after each pass and fail naming the pass that changes outputs")
    parser.add_argument("--input", dest="inputs", action="append", default=[], metavar="NAME=FILE.npy",
                        help="inputs for --check-numerics (default: seeded random inputs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs of --check-numerics")
    parser.add_argument("-o", "--output", help="output folder or .tgz archive (NNEF), or .mlir file")
    parser.add_argument("--emit", choices=target_names(),
                        help="form to write; default: MLIR to stdout without -o, else as -o's suffix says "
                             "(.mlir: MLIR; a folder, .tgz or .tar: NNEF); --list-targets lists them")
    parser.add_argument("--c-prefix", default="model", metavar="NAME",
                        help="with --emit=c: name the files and symbols NAME (NAME.h, NAME_run) instead of model")
    parser.add_argument("--list-targets", action="store_true", help="list the output forms and exit")
    parser.add_argument("--mlir-print-op-generic", action="store_true",
                        help="print MLIR in the generic operation format instead of the custom one")
    parser.add_argument("--strict", action="store_true",
                        help="refuse what the specification does not allow instead of warning")
    parser.add_argument("--keep-spelling", action="store_true",
                        help="write the operations exactly as in the IR; by default `constant` and `deconv` are "
                             "spelled with operations every engine reads alike (the portable-spelling pass). "
                             "NNEF text on stdout always keeps them: it has no place for the weight files "
                             "that spelling adds")
    parser.add_argument("--split-input-file", action="store_true",
                        help="MLIR input holds cases separated by lines '// -----': run and print each "
                             "alone (separated the same way); a failing case does not stop the others")
    parser.add_argument("--diff", metavar="BEFORE",
                        help="with --emit=dot or svg: colour the operations the passes added or changed "
                             "against the model BEFORE (compared by tensor names)")
    parser.add_argument("--stats", action="store_true",
                        help="print operation counts and parameter bytes before and after the passes to stderr")
    parser.add_argument("-q", "--quiet", action="store_true", help="do not print warnings")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print every warning; by default one line per kind, with a count")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_passes:
        from nnefopt.passes import describe_passes

        print("\n".join(describe_passes()))
        return 0
    if args.list_targets:
        print("\n".join(describe_targets()))
        return 0
    if args.list_rules:
        return _list_rules(args.rules)
    if args.input is None:
        parser.error("the input model is required")
    if args.split_input_file and not (args.input == "-" or args.input.endswith(".mlir")):
        parser.error("--split-input-file reads MLIR text: a .mlir file or - (standard input)")
    if args.split_input_file and args.output:
        parser.error("--split-input-file prints each case to standard output; -o is not supported with it")
    if args.diff and not _target_or_usage_error(parser, args).shows_changes:
        parser.error("--diff colours a picture: use it with --emit=dot or --emit=svg (or a .dot/.svg output)")
    with reported_warnings(quiet=args.quiet, verbose=args.verbose) as report:
        return _run(args, report)


def _list_rules(spec: str) -> int:
    """Every rule verified and listed; a refused one's counterexample goes to stderr (status 1)."""
    from nnefopt.rules.rule_sets import describe_rules

    try:
        lines, refusals = describe_rules(spec)
    except NNEFError as error:
        print(error, file=sys.stderr)
        return 1
    print("\n".join(lines))
    for refusal in refusals:
        print(refusal, file=sys.stderr)
    return 1 if refusals else 0


def _target_or_usage_error(parser: argparse.ArgumentParser, args: argparse.Namespace):
    try:
        return target_for(args.emit, args.output)
    except NNEFError as error:
        parser.error(error.message)


def _run(args: argparse.Namespace, report: WarningReport) -> int:
    try:
        from nnefopt.api import load

        if args.default_pipeline:
            args.pipeline = ",".join(p for p in ("default", args.pipeline) if p)
        if args.split_input_file:
            return _run_cases(args, report)
        module = load(args.input, strict=args.strict)
        before = _before(module, args)
        report.flush()  # what reading accepted, before what the passes and the writer say
        if args.pipeline:
            _optimize(module, args)
        if args.stats:
            _print_stats(before, module)
        _emit(module, args, before if args.diff else None)
    except NNEFError as error:
        report.flush()  # what was accepted before what was refused
        print(error, file=sys.stderr)
        return 1
    except RecursionError:  # a guard missed somewhere: still not a traceback
        print(f"{args.input}: error: input nested too deeply", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"{args.input}: error: out of memory reading the input", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: the writers have removed what they had begun
        print(f"{args.input}: error: interrupted; no output written", file=sys.stderr)
        return 130
    return 0


def _before(module, args: argparse.Namespace):
    """The module to compare with after the passes: --diff's model, or (for --stats) a
    copy of the input as read."""
    from nnefopt.api import load

    if args.diff:
        return load(args.diff, strict=args.strict)
    return module.clone() if args.stats else None


def _print_stats(before, after) -> None:
    from nnefopt.stats_table import model_stats, stats_table

    print(stats_table(model_stats(before), model_stats(after)), file=sys.stderr)


def _run_cases(args: argparse.Namespace, report: WarningReport) -> int:
    """Each case of the split input parsed, run and printed alone; an error ends its case
    only, and the exit status says whether any failed."""
    from nnefopt.api import parse_mlir
    from nnefopt.split_input import SEPARATOR, read_source, split_cases

    name = "<stdin>" if args.input == "-" else args.input
    failed, printed = False, 0
    for case in split_cases(read_source(args.input)):
        try:
            module = parse_mlir(case, name)
            if args.pipeline:
                _optimize(module, args)
            text = target_for(args.emit).render(module, _emit_options(args))
        except NNEFError as error:
            report.flush()
            print(error, file=sys.stderr)
            failed = True
            continue
        report.flush()  # each case's warnings before its text
        sys.stdout.write(f"{SEPARATOR}\n" * bool(printed) + text)
        sys.stdout.flush()  # in step with the errors of later cases on stderr
        printed += 1
    return 1 if failed else 0


def _emit_options(args: argparse.Namespace, before=None) -> EmitOptions:
    # Weights would drown the IR on a terminal; in a file or a pipe they are the model.
    return EmitOptions(keep_spelling=args.keep_spelling, generic=args.mlir_print_op_generic,
                       weights=not sys.stdout.isatty(), before=before, c_prefix=args.c_prefix)


def _emit(module, args: argparse.Namespace, before=None) -> None:
    """The module in the form --emit names, or -o's suffix says, to -o or standard output."""
    target = target_for(args.emit, args.output)
    options = _emit_options(args, before)
    if args.output:
        _refuse_overwriting_input(args.input, args.output)
        target.save(module, args.output, options)
    else:
        sys.stdout.write(target.render(module, options))


def _optimize(module, args: argparse.Namespace) -> None:
    from nnefopt.api import optimize, to_mlir

    timings: list[tuple[str, float]] = []
    started = [time.perf_counter()]

    def after(previous, op, following):
        now = time.perf_counter()
        if previous is not None:
            timings.append((previous.name, now - started[0]))
            if args.print_ir_after_all:
                sys.stderr.write(f"// -----// IR after {previous.name} //----- //\n"
                                 f"{to_mlir(op, generic=args.mlir_print_op_generic)}")

    check = _numerics_checker(module, args) if args.check_numerics else None

    def between(previous, op, following):
        after(previous, op, following)
        if check is not None and previous is not None:
            check(previous.name, op)
        started[0] = time.perf_counter()

    optimize(module, args.pipeline, verify_each=args.verify_each, callback=between)
    if args.timing:
        total = sum(t for _, t in timings)
        for name, seconds in timings:
            print(f"{seconds * 1e3:10.2f} ms  {name}", file=sys.stderr)
        print(f"{total * 1e3:10.2f} ms  total", file=sys.stderr)


# Outputs may move this much before a pass is said to have changed the numbers.
RTOL, ATOL = 1e-4, 1e-5


def _numerics_checker(module, args: argparse.Namespace):
    import numpy as np

    from nnefopt.interp.ir_interpreter import Plan
    from nnefopt.run_cli import read_inputs

    # A plan per stage, over the module as the pass left it: nothing is exported.
    plan = Plan(module)
    inputs = read_inputs(args.inputs, list(plan.inputs)) if args.inputs else plan.random_inputs(args.seed)
    reference = plan.run(inputs)

    def check(pass_name: str, op) -> None:
        outputs = Plan(op).run(inputs)
        for name, expected in reference.items():
            got = outputs[name]
            if got.shape != expected.shape:
                raise NNEFError(f"pass '{pass_name}' changed the shape of output '{name}' "
                                f"from {list(expected.shape)} to {list(got.shape)}")
            error = float(np.abs(got.astype(np.float64) - expected).max()) if got.size else 0.0
            scale = float(np.abs(expected).max()) if expected.size else 0.0
            print(f"numerics after {pass_name}: {name}: max abs error {error:.3g}, "
                  f"max rel error {error / scale if scale else 0.0:.3g}", file=sys.stderr)
            if not np.allclose(got, expected, rtol=RTOL, atol=ATOL):
                raise NNEFError(f"pass '{pass_name}' changed output '{name}': max abs error {error:.3g} "
                                f"exceeds rtol {RTOL} / atol {ATOL}")

    return check


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
