"""Rule sets by name: what the rewrite pass's `rules=` and `--rules` accept.

- `standard`: the shipped rules (standard.nnef), every one passing the verifier;
- `stdlib`: both directions of the specification's compound fragments (stdlib_rules);
- `registered`: the rules registered from Python (python_api.register_rule);
- anything else: the path of a rule file.

Several are joined with `+` (`standard+my.rules`).
"""

from __future__ import annotations

from importlib import resources

from nnefopt.rules.nnef_syntax import parse_rules, read_rules
from nnefopt.rules.pattern import Rule, op_nodes

STANDARD = "standard.nnef"


def standard_rules() -> list[Rule]:
    text = resources.files("nnefopt.rules").joinpath(STANDARD).read_text(encoding="utf-8")
    return parse_rules(text, f"<nnefopt>/rules/{STANDARD}")


def load_rule_set(spec: str) -> list[Rule]:
    """The rules `spec` names (not yet verified), in order."""
    from nnefopt.rules.python_api import rules as registered
    from nnefopt.rules.stdlib_rules import derive_stdlib_rules

    found: list[Rule] = []
    for part in (spec or "standard").split("+"):
        part = part.strip()
        if part == "standard":
            found += standard_rules()
        elif part == "stdlib":
            found += list(derive_stdlib_rules()[0])
        elif part == "registered":
            found += registered()
        else:
            found += read_rules(part)
    return found


def rules_that_could_fire(rules: list[Rule], present: set[str]) -> list[Rule]:
    """The rules (in order) whose left-hand side's operations could all be in the graph:
    operations `present` in it, or made by the replacement of another rule that could
    fire, closed over the set. A rule that only matches what another rewrite makes is
    kept; one that can never match is left out (and not verified)."""
    available = set(present)
    kept = [False] * len(rules)
    grown = True
    while grown:
        grown = False
        for index, rule in enumerate(rules):
            if not kept[index] and all(node.op in available for node in op_nodes(rule.lhs)):
                kept[index] = grown = True
                available.update(node.op for node in op_nodes(rule.rhs))
    return [rule for rule, keep in zip(rules, kept) if keep]


def describe_rules(spec: str) -> tuple[list[str], list[str]]:
    """(lines, refusals): each rule of `spec` verified, one line per rule (name, verdict,
    where it is written, the rule), and the error of each refused one."""
    from nnefopt.rules.verify import UnsoundRule, verify

    lines, refusals = [], []
    for rule in load_rule_set(spec):
        try:
            verdict = verify(rule).kind
        except UnsoundRule as error:
            verdict = "REFUSED"
            refusals.append(str(error))
        lines.append(f"{rule.name:<24} {verdict:<14} {rule.loc}  {rule.text}")
    return lines, refusals
