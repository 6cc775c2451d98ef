"""A campaign: inputs spread round-robin over the targets, each replayable from
(seed, index), each run isolated; counts per target and every failing input saved."""

from __future__ import annotations

import gc
import json
import random
import shutil
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.fuzzing.isolate import OUTCOMES, Result, run_batch
from tests.fuzzing import targets as targets_module
from tests.fuzzing.targets import TARGETS, Corpus

FAILURES = {"crash", "hang", "memory", "roundtrip"}


@dataclass
class Report:
    inputs: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # of the inputs themselves, summed over the children
    counts: dict[str, Counter] = field(default_factory=dict)
    peak_growth: int = 0  # the largest peak-RSS growth of one child, bytes
    failures: list[dict] = field(default_factory=list)

    def total(self, outcome: str) -> int:
        return sum(c[outcome] for c in self.counts.values())

    def format(self) -> str:
        width = max(len(t) for t in self.counts) if self.counts else 6
        lines = [f"inputs tried: {self.inputs} in {self.seconds:.0f} s ({self.cpu_seconds:.0f} s of CPU time in the inputs)",
                 f"{'target':<{width}}  " + "  ".join(f"{o:>9}" for o in OUTCOMES)]
        for target, counts in self.counts.items():
            lines.append(f"{target:<{width}}  " + "  ".join(f"{counts[o]:>9}" for o in OUTCOMES))
        lines.append(f"{'total':<{width}}  " + "  ".join(f"{self.total(o):>9}" for o in OUTCOMES))
        lines.append(f"peak memory growth of one input: {self.peak_growth / 2**20:.1f} MiB")
        for failure in self.failures[:20]:
            lines.append(f"  {failure['outcome']}: {failure['target']} #{failure['index']} -> {failure['saved']}")
            lines.append("    " + failure["detail"].strip().splitlines()[-1][:300] if failure["detail"] else "")
        return "\n".join(lines)


class Campaign:
    def __init__(self, seed: int = 0, targets: list[str] | None = None, models: list[str] | None = None,
                 failures_dir: Path | None = None, work_dir: Path | None = None, full_oracle: bool = True):
        targets_module.FULL_ORACLE = full_oracle  # read in the forked children
        self.seed = seed
        self.targets = targets or list(TARGETS)
        unknown = set(self.targets) - set(TARGETS)
        if unknown:
            raise ValueError(f"unknown targets {sorted(unknown)}; known: {sorted(TARGETS)}")
        self.root = Path(tempfile.mkdtemp(prefix="nnefopt-fuzz-", dir=work_dir))
        self.corpus = Corpus(self.root, models)
        self.failures_dir = failures_dir

    def input(self, index: int) -> tuple[str, str, bytes]:
        """The input of `index`: (target, base, data), the same for the same seed."""
        name = self.targets[index % len(self.targets)]
        rng = random.Random(f"{self.seed}:{index}")
        base, data = TARGETS[name].generate(self.corpus, rng)
        return name, base, data

    def _size(self, base: str, data: bytes) -> int:
        """The input's bytes: the mutated file, and the seed model files read with it."""
        folder = self.corpus.folders.get(base.split("/")[0]) if base else None
        return len(data) + (sum(p.stat().st_size for p in folder.iterdir()) if folder else 0)

    def _make(self, index: int):
        """In the child: the work of input `index` and its size."""
        name, base, data = self.input(index)
        target, corpus, work = TARGETS[name], self.corpus, self.root / f"w{index}"

        def run():
            work.mkdir()
            tempfile.tempdir = str(work)  # an archive's unpacked copy too: removed with `work`
            warnings.simplefilter("ignore")
            try:
                target.run(corpus, base, data, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)

        return run, self._size(base, data)

    def run(self, inputs: int, *, start: int = 0, workers: int = 1, progress=None) -> Report:
        report = Report(counts={t: Counter() for t in self.targets})
        began = time.perf_counter()
        gc.collect()
        gc.freeze()  # children share the corpus untouched: the collector does not copy its pages
        for index, result in run_batch(self._make, list(range(start, start + inputs)), workers):
            name = self.targets[index % len(self.targets)]
            report.inputs += 1
            report.counts[name][result.outcome] += 1
            report.peak_growth = max(report.peak_growth, result.peak_growth)
            report.cpu_seconds += result.seconds
            if result.outcome in FAILURES:
                _, base, data = self.input(index)
                report.failures.append(self._save(index, name, base, data, result))
            if progress is not None:
                progress(index, report)
        report.seconds = time.perf_counter() - began
        return report

    def _save(self, index: int, name: str, base: str, data: bytes, result: Result) -> dict:
        record = {"index": index, "seed": self.seed, "target": name, "base": base, "outcome": result.outcome,
                  "seconds": result.seconds, "detail": result.detail, "saved": ""}
        if self.failures_dir is not None:
            folder = Path(self.failures_dir) / f"{result.outcome}-{name}-{self.seed}-{index}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "input").write_bytes(data)
            (folder / "info.json").write_text(json.dumps(record, indent=1))
            record["saved"] = str(folder)
        return record

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
