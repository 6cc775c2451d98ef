"""A fuzz harness for nnefopt's readers, shared by the test suite (tests/test_fuzz.py) and
the long campaign (bench/fuzz.py).

    from tests.fuzzing import Campaign
    report = Campaign(seed=0, targets=["graph.nnef", "mlir"]).run(inputs=1000)

Every input runs in a forked child with a time and an address-space bound, and is
classified ok / refused / crash / hang / memory / roundtrip (see `isolate.OUTCOMES`).
"""

from tests.fuzzing.campaign import Campaign, Report
from tests.fuzzing.isolate import OUTCOMES, Result, run_batch
from tests.fuzzing.targets import TARGETS, Corpus

__all__ = ["Campaign", "Report", "OUTCOMES", "Result", "run_batch", "TARGETS", "Corpus"]
