"""The verifier's verdicts on the rules nnefopt ships (standard, stdlib), recorded.

Verifying a rule costs a tenth of a second or more (hypothesis draws dozens of inputs),
and the rewrite pass verifies every rule it may use: with the standard set, a run would
spend seconds verifying before it rewrites a ten-operation graph. So the shipped rules
are verified when nnefopt is tested instead: the test suite verifies each of them afresh
and fails when this record differs (tests/test_rules.py), and

    python -m nnefopt.rules.shipped_verdicts

writes the record again. A rule is looked up by a digest of its name, text and
parameters, so one changed character and it is verified afresh; rules from a user's file
or from Python are never in the record. A refused rule is not recorded: it is verified,
and refused, where it is used.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from importlib import resources

from nnefopt.rules.pattern import Rule

RECORD = "shipped_verdicts.json"
SHIPPED_SETS = ("standard", "stdlib")


def rule_digest(rule: Rule) -> str | None:
    """The rule's key in the record; None for a rule with a Python guard of anyone's but
    the stdlib derivation's (the guard's text does not say what its code checks; the
    derivation's guards are nnefopt's own code, re-verified by the test suite)."""
    if rule.origin != "stdlib" and any(guard.expr is None for guard in rule.guards):
        return None
    parts = [rule.name, rule.text, *sorted(f"{name}: {type_}" for name, type_ in rule.variables.items())]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:32]


@functools.cache
def _record() -> dict:
    from nnefopt.rules.verify import EXAMPLES

    try:
        record = json.loads(resources.files("nnefopt.rules").joinpath(RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # no record (a source tree mid-edit): every rule is verified
        return {}
    return record["verdicts"] if record.get("examples") == EXAMPLES else {}


def recorded_verdict(rule: Rule) -> tuple[bool, int] | None:
    """(exact, examples) as recorded for a shipped rule, or None."""
    digest = rule_digest(rule)
    entry = _record().get(digest) if digest else None
    return (entry["exact"], entry["examples"]) if entry else None


def fresh_record() -> dict:
    """Every shipped rule verified now (the record ignored): the record's contents."""
    from nnefopt.rules.rule_sets import load_rule_set
    from nnefopt.rules.verify import EXAMPLES, UnsoundRule, verify

    verdicts = {}
    for spec in SHIPPED_SETS:
        for rule in load_rule_set(spec):
            try:
                verdict = verify(rule, shipped=False)
            except UnsoundRule:
                continue
            verdicts[rule_digest(rule)] = {"rule": f"{spec}:{rule.name}", "exact": verdict.exact,
                                           "examples": verdict.examples}
    return {"examples": EXAMPLES, "verdicts": dict(sorted(verdicts.items()))}


def main() -> int:
    from pathlib import Path

    path = Path(__file__).with_name(RECORD)
    record = fresh_record()
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"{path}: {len(record['verdicts'])} verdicts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
