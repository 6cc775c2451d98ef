"""The short fuzzing run (fixed seed): every reader and the pass pipeline, inputs from the
grammar-aware generator and from mutations of the shared models, each in a forked child
with a time and memory bound; no crash, hang, memory blowup or round-trip failure. And
the harness itself: it does classify a crash, a hang and a blowup as such."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.fuzzing import TARGETS, Campaign
from tests.fuzzing.isolate import RoundTripFailure, memory_bound, run_batch

# Seed models that load in milliseconds: the short run is about the readers, not the models.
MODELS = ["mlp_digits/kt", "cnn_digits/t2n", "cnn_digits_q8/tract.nnef.tgz"]
INPUTS = 300 * len(TARGETS)  # 300 per target: about 90 s of CPU time, two children at once


@pytest.fixture(scope="module")
def report():
    campaign = Campaign(seed=20261201, models=MODELS, full_oracle=False)
    try:
        yield campaign.run(INPUTS, workers=2)
    finally:
        campaign.close()


def test_short_campaign_finds_no_failure(report):
    assert report.inputs == INPUTS
    failures = [f"{f['outcome']} {f['target']} #{f['index']}: {f['detail'][-600:]}" for f in report.failures]
    assert not failures, "\n".join(failures)


def test_short_campaign_reaches_acceptance_and_refusal_in_every_target(report):
    # A fuzzer whose inputs are all refused at the first byte tests nothing past the lexer.
    for target in TARGETS:
        counts = report.counts[target]
        assert counts["ok"] > 0 and counts["refused"] > 0, (target, counts)


def test_short_campaign_memory_is_bounded(report):
    assert report.peak_growth < memory_bound(0)


def _classify(work, size: int = 0):
    return next(run_batch(lambda index: (work, size), [0]))[1]


def test_harness_classifies_a_crash():
    result = _classify(lambda: [][1])
    assert result.outcome == "crash" and "IndexError" in result.detail


def test_harness_classifies_a_refusal_and_a_round_trip_failure():
    from nnefopt.errors import NNEFError

    def refuse():
        raise NNEFError("bad")

    def differ():
        raise RoundTripFailure("differs")

    assert _classify(refuse).outcome == "refused"
    assert _classify(differ).outcome == "roundtrip"


def test_harness_kills_a_hang():
    started = time.monotonic()
    result = _classify(lambda: time.sleep(60))
    assert result.outcome == "hang"
    assert time.monotonic() - started < 60


def test_harness_bounds_memory():
    result = _classify(lambda: np.ones(2**30, np.float64).sum())  # 8 GiB
    assert result.outcome == "memory"


def test_harness_continues_after_a_dead_child():
    import os

    outcomes = dict(run_batch(lambda i: ((lambda: os._exit(9)) if i == 1 else (lambda: None), 0), [0, 1, 2]))
    assert [outcomes[i].outcome for i in range(3)] == ["ok", "crash", "ok"]


def test_harness_runs_children_at_once_and_reports_each_input_once():
    import os

    def make(index):
        work = {3: lambda: time.sleep(60), 4: lambda: os._exit(9), 5: lambda: [][1]}.get(index, lambda: None)
        return work, 0

    started = time.monotonic()
    results = list(run_batch(make, list(range(12)), workers=3))
    outcomes = {index: result.outcome for index, result in results}
    assert sorted(index for index, _ in results) == list(range(12))
    assert (outcomes[3], outcomes[4], outcomes[5]) == ("hang", "crash", "crash")
    assert all(outcomes[i] == "ok" for i in range(12) if i not in (3, 4, 5))
    assert time.monotonic() - started < 60  # the hang was killed, the other children went on


def test_harness_reports_a_failing_generator_as_a_crash():
    def make(index):
        if index == 1:
            raise ValueError("the generator broke")
        return (lambda: None), 0

    outcomes = dict(run_batch(make, [0, 1, 2]))
    assert outcomes[1].outcome == "crash" and "the generator broke" in outcomes[1].detail
    assert outcomes[0].outcome == outcomes[2].outcome == "ok"


def test_inputs_replay_from_seed_and_index():
    first = Campaign(seed=5, models=MODELS[:1])
    second = Campaign(seed=5, models=MODELS[:1])
    try:
        assert [first.input(i)[2] for i in range(14)] == [second.input(i)[2] for i in range(14)]
    finally:
        first.close()
        second.close()
