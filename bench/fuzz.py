"""The long fuzzing campaign over every reader and the pass pipeline.

    python bench/fuzz.py --inputs 100000 [--seed S] [--workers W] [--targets graph.nnef,mlir,...] [--failures DIR]
    python bench/fuzz.py --replay DIR...       (a saved failing input, run in this process)

Prints the inputs tried, per target the counts of ok / refused / crash / hang / memory /
roundtrip outcomes, and the largest peak-memory growth of one input; each failing input
is saved under --failures (default /tmp/fuzz-failures) with its seed, index and traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fuzzing import TARGETS, Campaign, Corpus  # noqa: E402
from tests.fuzzing.targets import MORE_MODELS, SMALL_MODELS  # noqa: E402


def replay(folders: list[str], models: list[str]) -> int:
    corpus = Corpus(Path(tempfile.mkdtemp(prefix="nnefopt-replay-")), models)
    for folder in folders:
        info = json.loads((Path(folder) / "info.json").read_text())
        data = (Path(folder) / "input").read_bytes()
        work = Path(tempfile.mkdtemp(prefix="nnefopt-replay-work-"))
        print(f"== {folder}: {info['target']} base {info['base']!r}, was {info['outcome']}")
        start = time.perf_counter()
        try:
            warnings.simplefilter("ignore")
            TARGETS[info["target"]].run(corpus, info["base"], data, work)
            print("ok")
        except Exception as exc:  # noqa: BLE001 - shown, that is the point
            print("".join(traceback.format_exception(exc))[-3000:])
        print(f"({time.perf_counter() - start:.2f} s)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0, help="first input index (to resume a campaign)")
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)}")
    parser.add_argument("--failures", default="/tmp/fuzz-failures")
    parser.add_argument("--small", action="store_true", help="only the small seed models (faster)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="children run at once")
    parser.add_argument("--every", type=int, default=1000, help="print progress every N inputs")
    parser.add_argument("--replay", nargs="+", metavar="DIR")
    args = parser.parse_args()
    models = SMALL_MODELS if args.small else SMALL_MODELS + MORE_MODELS
    if args.replay:
        return replay(args.replay, models)
    campaign = Campaign(seed=args.seed, targets=args.targets.split(","), models=models,
                        failures_dir=Path(args.failures))

    def progress(index: int, report) -> None:
        if report.inputs % args.every == 0:
            print(f"[{report.inputs} inputs] " + ", ".join(
                f"{o} {report.total(o)}" for o in ("ok", "refused", "crash", "hang", "memory", "roundtrip")),
                flush=True)

    try:
        report = campaign.run(args.inputs, start=args.start, workers=args.workers, progress=progress)
    finally:
        campaign.close()
    print(report.format())
    failed = sum(report.total(o) for o in ("crash", "hang", "memory", "roundtrip"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
