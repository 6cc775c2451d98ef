"""Scale: time and peak memory of load, optimize (the `default` pipeline, as `nnef-opt
-O`) and export (an NNEF folder) on generated conv chains of 1,000, 10,000 and
100,000 operations (1,000 and 10,000 with --quick), and what each 10x of operations
costs: linear is about 10x time and 10x memory. Then the other limits of issue 12 worth a row: a
graph of 10,000 inputs and 10,000 outputs, and a 1 GB `.dat` weight loaded (memory-
mapped) and exported (copied).

Every measurement runs in a fresh process (`--worker`). Memory is the peak of what
Python and numpy allocate during the phase (tracemalloc, in one traced run of its own,
as tracing slows everything), with the module the earlier phases made still alive;
the 1 GB row shows the peak resident size above the baseline instead (a memory map
costs only the pages touched). The sizes take turns, median time of --rounds
untraced runs each: a busy neighbour slows both alike.

    python bench/bench_scale.py [--rounds N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.generate import conv_chain  # noqa: E402

PHASES = ("load", "optimize", "export")


# ---- one measurement, in its own process ---------------------------------------------


def _peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def worker(model: Path, out: Path, pipeline: str | None, traced: bool) -> dict:
    """Per phase: seconds, the peak of Python's and numpy's allocations during it
    (tracemalloc, in a run of its own with `traced`: tracing slows everything) and the
    peak resident size above the baseline so far (memory maps count only as touched)."""
    import tracemalloc

    import nnefopt
    from nnefopt.errors import NNEFWarning

    baseline = _peak_bytes()
    if traced:
        tracemalloc.start()
    steps = [("load", lambda _: nnefopt.load(model))]
    if pipeline:
        steps.append(("optimize", lambda module: nnefopt.optimize(module, pipeline, verify_each=False)))
    steps.append(("export", lambda module: nnefopt.save(module, out)))
    result, module = {}, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        for phase, step in steps:
            if traced:
                tracemalloc.reset_peak()
            start = time.perf_counter()
            made = step(module)
            module = module if phase == "export" else made
            seconds = time.perf_counter() - start
            result[phase] = (seconds, tracemalloc.get_traced_memory()[1] if traced else 0, _peak_bytes() - baseline)
    return result


def measure(model: Path, out: Path, pipeline: str | None = "default", traced: bool = False) -> dict:
    command = [sys.executable, __file__, "--worker", str(model), str(out), pipeline or "", "traced" if traced else ""]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"worker failed on {model}:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def rounds(models: list[Path], out: Path, count: int, pipeline: str | None = "default") -> list[dict]:
    """Per model and phase: the median seconds over `count` untraced runs and the traced
    peak bytes and resident peak of one traced run (allocations do not vary between
    runs), the models taking turns."""
    runs: list[list[dict]] = [[] for _ in models]
    for _ in range(count):
        for index, model in enumerate(models):
            runs[index].append(measure(model, out, pipeline))
    traced = [measure(model, out, pipeline, traced=True) for model in models]
    return [{phase: (statistics.median(r[phase][0] for r in model_runs), memory[phase][1], memory[phase][2])
             for phase in memory} for model_runs, memory in zip(runs, traced)]


# ---- generated models ------------------------------------------------------------------


def chain_of(folder: Path, operations: int) -> int:
    """A conv chain of about `operations` operations (5 per block: two constants, conv,
    batch_normalization, relu; one external); returns the exact count."""
    return conv_chain(folder, max(1, operations // 5))


def many_inputs_and_outputs(folder: Path, count: int) -> None:
    """`count` externals concatenated, split back into `count` outputs."""
    folder.mkdir(parents=True, exist_ok=True)
    inputs, outputs = [f"x{i}" for i in range(count)], [f"y{i}" for i in range(count)]
    lines = [f"x{i} = external<scalar>(shape = [1]);" for i in range(count)]
    lines.append(f"c = concat([{', '.join(inputs)}], axis = 0);")
    lines.append(f"[{', '.join(outputs)}] = split(c, axis = 0, ratios = [{', '.join(['1'] * count)}]);")
    body = "\n".join("    " + line for line in lines)
    (folder / "graph.nnef").write_text(
        f"version 1.0;\n\ngraph G( {', '.join(inputs)} ) -> ( {', '.join(outputs)} )\n{{\n{body}\n}}\n")


def one_gigabyte_weight(folder: Path) -> int:
    """A model of one variable of 2^28 floats (1 GiB), its file sparse: made without
    writing a gigabyte. Returns the file's size."""
    from nnefopt.frontend.tensor_file import HEADER_SIZE, TensorHeader, _pack_header

    folder.mkdir(parents=True, exist_ok=True)
    count = 1 << 28
    header = TensorHeader((1, 0), (count,), 32, 0, count * 4)
    with open(folder / "w.dat", "wb") as file:
        file.write(_pack_header(header))
        file.truncate(HEADER_SIZE + count * 4)
    (folder / "graph.nnef").write_text(
        "version 1.0;\n\ngraph G( x ) -> ( y )\n{\n    x = external<scalar>(shape = [1]);\n"
        f"    w = variable<scalar>(shape = [{count}], label = 'w');\n    y = add(x, 1.0);\n}}\n")
    return HEADER_SIZE + count * 4


# ---- report ----------------------------------------------------------------------------


def _row(label: str, result: dict, column: int = 1) -> str:
    cells = [f"{result[p][0]:>8.2f} s {result[p][column] / 2**20:>7.1f} MiB" if p in result else f"{'-':>20}"
             for p in PHASES]
    return f"{label:<34} " + " ".join(cells)


def header_line() -> str:
    return f"{'':<34} " + " ".join(f"{p:>20}" for p in PHASES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="runs per model, median kept")
    parser.add_argument("--quick", action="store_true", help="1,000 and 10,000 operations; skip the other rows")
    parser.add_argument("--worker", nargs=4, metavar=("MODEL", "OUT", "PIPELINE", "TRACED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        model, out, pipeline, traced = args.worker
        print(json.dumps(worker(Path(model), Path(out), pipeline or None, traced == "traced")))
        return
    sizes = (1_000, 10_000) if args.quick else (1_000, 10_000, 100_000)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        folders, counts = [], []
        for size in sizes:
            folders.append(scratch / f"chain{size}")
            counts.append(chain_of(folders[-1], size))
        results = rounds(folders, scratch / "out", args.rounds)
        print(f"conv chains: median time of {args.rounds} runs, traced peak memory")
        print(header_line())
        for count, result in zip(counts, results):
            print(_row(f"{count:,} operations", result))
        for (few, small), (many, big) in zip(zip(counts, results), zip(counts[1:], results[1:])):
            print(f"{many / few:.0f}x operations ({few:,} to {many:,}): " + ", ".join(
                f"{p} time x{big[p][0] / small[p][0]:.1f} memory x{big[p][1] / max(small[p][1], 1):.1f}"
                for p in PHASES) + " (linear: about 10)")
        if args.quick:
            return
        print()
        wide = scratch / "wide"
        many_inputs_and_outputs(wide, 10_000)
        (result,) = rounds([wide], scratch / "out", 1)
        print(_row("10,000 inputs and 10,000 outputs", result))
        heavy = scratch / "heavy"
        size = one_gigabyte_weight(heavy)
        (result,) = rounds([heavy], scratch / "out", 1, pipeline=None)
        copied = (scratch / "out" / "w.dat").stat().st_size
        print(_row(f"a {size / 2**30:.0f} GiB .dat, resident (no -O)", result, column=2))
        print(f"    the weight is memory-mapped, not read; exported by copy: {copied:,} bytes written "
              f"({'same size' if copied == size else 'SIZE DIFFERS'}), {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
