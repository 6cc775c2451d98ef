"""The verifier: a rule is used only once both of its sides agree on random inputs.

Both sides run through the reference interpreter (the op table's kernels, and fragment
bodies where an operation has none: `ArrayDomain`) on shapes, attributes and values
that hypothesis draws, derandomized (the same verdict every run), shrinking a failure
to a small counterexample. Where the left-hand side does not apply (its guards fail,
its shapes do not fit) the draw is discarded. A verdict is one of

- exact: every output within 1 ulp in float32 (the rule holds bit for bit, or as good);
- reassociation: float32 outputs differ by more, but the float64 runs agree to 1e-6
  relative (the rule holds in real numbers; floats reassociate);
- unsound: the float64 runs differ too, or the right-hand side fails or changes the
  shape where the left-hand side works: refused, with the counterexample.

Inputs are finite floats in [-4, 4]: NaN and infinities, where the kernels legitimately
differ (relu's fmax against max's select), are out of the verifier's scope.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.errors import Unsatisfiable
from hypothesis.extra import numpy as hnp

from nnefopt.errors import Location, NNEFError
from nnefopt.frontend import ast
from nnefopt.frontend.stdlib import known_operations
from nnefopt.rules.pattern import Computed, Env, ListPattern, Lit, OpPattern, Rule, Var, guards_hold, value_of

EXAMPLES = 60  # drawn inputs per rule
MIN_VALID = 8  # inputs on which the left-hand side must apply, or the rule is refused unchecked
RETRY_FACTOR = 4
REAL_RTOL = 1e-6  # float64 agreement that counts as equal in real numbers
# Drawn often on purpose: whether hypothesis tries them by itself depends on the constants
# in the source modules loaded in the process, and a verdict must not.
EDGE_VALUES = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 4.0, -4.0]
SHAPE_TRIES = 24  # candidate shape assignments per draw (the smallest valid one is used)


class UnsoundRule(NNEFError):
    """A rule the verifier refused; `counterexample` says on what."""

    def __init__(self, rule: Rule, reason: str, counterexample: str = ""):
        text = f"rule '{rule.name}' is refused: {reason}"
        if counterexample:  # on the same line: an error is one line
            text += f" (counterexample: {counterexample})"
        super().__init__(text, rule.loc)
        self.rule, self.reason, self.counterexample = rule, reason, counterexample


@dataclass(frozen=True)
class Verdict:
    rule: Rule
    exact: bool
    examples: int  # drawn inputs on which the left-hand side applied

    @property
    def kind(self) -> str:
        return "exact" if self.exact else "reassociation"


class _Mismatch(Exception):
    def __init__(self, reason: str, case: str):
        super().__init__(reason)
        self.reason, self.case = reason, case


_VERDICTS: dict[tuple, Verdict] = {}


def verify(rule: Rule, examples: int = EXAMPLES, *, shipped: bool = True) -> Verdict:
    """The rule's verdict, or UnsoundRule with its counterexample. Verdicts are kept for
    the process (keyed by the rule's text): a rule set is checked once. A shipped rule
    whose text is unchanged takes the verdict recorded when nnefopt was tested
    (shipped_verdicts), unless `shipped` is false."""
    python_guards = tuple(id(g.check) for g in rule.guards if g.expr is None)  # text alone does not say them
    key = (rule.name, rule.text, tuple(sorted((k, str(v)) for k, v in rule.variables.items())), python_guards,
           examples)
    if key in _VERDICTS:  # verified afresh in this process
        return _VERDICTS[key]
    from nnefopt.rules.shipped_verdicts import recorded_verdict  # here: `python -m` runs that module

    recorded = recorded_verdict(rule) if shipped and examples == EXAMPLES else None
    if recorded:
        return Verdict(rule, *recorded)
    _VERDICTS[key] = _verify(rule, examples)
    return _VERDICTS[key]


def verified(rules: list[Rule], examples: int = EXAMPLES) -> list[Rule]:
    """The rules, each verified (the first unsound one raises), marked exact or not."""
    return [rule.with_exactness(verify(rule, examples).exact) for rule in rules]


def _keep_out_of_the_working_directory() -> None:
    """hypothesis caches what it reads of local source files under ./.hypothesis; a
    compiler must not write into its user's directory, so that cache goes to the
    temporary directory (HYPOTHESIS_STORAGE_DIRECTORY, when set, decides instead)."""
    if not os.getenv("HYPOTHESIS_STORAGE_DIRECTORY"):
        set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "nnefopt-hypothesis")


@contextlib.contextmanager
def _without_local_constants():
    """hypothesis mixes into its draws the constants it finds in the source of the
    "local" modules loaded in the process (not under site-packages): which ones are
    loaded (an editable install, a test run, a user's script) would change what is
    drawn, hence the verdicts. A verdict must not depend on that, and hypothesis has no
    setting for it, so its internal hook gives no local constants while a rule is
    verified (if a later hypothesis moves the hook, verification still works, only
    less reproducibly)."""
    try:
        from hypothesis.internal.conjecture import providers
        hook, cache, empty = providers._get_local_constants, providers.CONSTANTS_CACHE, providers.Constants()
    except (ImportError, AttributeError):
        yield
        return
    cache.cache.clear()  # choices cached with the local constants of an earlier draw
    providers._get_local_constants = lambda: empty
    try:
        yield
    finally:
        providers._get_local_constants = hook
        cache.cache.clear()


def _verify(rule: Rule, examples: int) -> Verdict:
    with _without_local_constants():
        return _verify_drawing(rule, examples)


def _verify_drawing(rule: Rule, examples: int) -> Verdict:
    _keep_out_of_the_working_directory()
    domain = _domain()
    state = {"valid": 0, "inexact": False}
    tensors = [n for n, t in rule.variables.items() if t.is_tensor]
    attrs = [n for n, t in rule.variables.items() if not t.is_tensor]
    hints = _rank_hints(rule)
    shape_memo: dict = {}

    def check(data):
        values = {name: data.draw(_attribute_strategy(rule.variables[name].kind, rule.variables[name].array),
                                  label=name) for name in attrs}
        seed = data.draw(st.integers(0, 2**20), label="shape seed")
        valid = _valid_shapes(rule, tensors, values, hints, seed, domain, shape_memo)
        if not valid:
            return
        # drawn, so that shrinking moves to the smallest shapes that still fail
        shapes = valid[data.draw(st.integers(0, len(valid) - 1), label="shapes")]
        arrays = {name: data.draw(_array_strategy(rule.variables[name].item, shapes[name]), label=name)
                  for name in tensors}
        env = Env(values, {n: tuple(a.shape) for n, a in arrays.items()})
        case = _describe(values, arrays)
        try:
            left = _run(rule.lhs, arrays, env, domain, np.float32)
        except _Failure:
            return
        state["valid"] += 1
        try:
            right = _run(rule.rhs, arrays, env, domain, np.float32)
        except _Failure as failure:
            raise _Mismatch(f"its right-hand side fails where its left-hand side works ({failure})", case) from None
        if np.shape(left) != np.shape(right):
            raise _Mismatch(f"shape {list(np.shape(left))} becomes {list(np.shape(right))}", case)
        if _within_ulp(left, right):
            return
        wide = {n: a.astype(np.float64) if a.dtype == np.float32 else a for n, a in arrays.items()}
        try:
            left64 = _run(rule.lhs, wide, env, domain, np.float64)
            right64 = _run(rule.rhs, wide, env, domain, np.float64)
        except _Failure as failure:
            raise _Mismatch(f"it fails in float64 ({failure})", case) from None
        if not _real_equal(left64, right64):
            error = float(np.nanmax(np.abs(np.asarray(left64, np.float64) - np.asarray(right64, np.float64))))
            raise _Mismatch(f"the two sides differ by up to {error:.3g}",
                            f"{case}; left gives {_array_text(left)}, right gives {_array_text(right)}")
        state["inexact"] = True

    # A rule whose left-hand side seldom applies (attribute arrays that must fit) gets
    # RETRY_FACTOR times the draws before it is refused unchecked.
    for budget in (examples, examples * RETRY_FACTOR):
        state.update(valid=0, inexact=False)
        test = settings(max_examples=budget, database=None, derandomize=True, deadline=None, print_blob=False,
                        report_multiple_bugs=False, suppress_health_check=list(HealthCheck),
                        phases=(Phase.generate, Phase.shrink), verbosity=Verbosity.quiet)(given(st.data())(check))
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # NaN where both sides give NaN
                test()
        except _Mismatch as mismatch:
            raise UnsoundRule(rule, mismatch.reason, mismatch.case) from None
        except Unsatisfiable:
            pass
        if state["valid"] >= MIN_VALID:
            break
    if state["valid"] < MIN_VALID:
        raise UnsoundRule(rule, f"the verifier found only {state['valid']} of {budget} random inputs on which "
                                "its left-hand side applies; it cannot vouch for it")
    return Verdict(rule, not state["inexact"], state["valid"])


# ---- running a pattern on arrays ----------------------------------------------------------


class _Failure(Exception):
    """A side cannot be computed on these inputs (a shape that does not fit, a guard)."""


_DOMAIN = []


def _domain():
    from nnefopt.interp.interpreter import ArrayDomain

    if not _DOMAIN:
        _DOMAIN.append(ArrayDomain(known_operations([])))
    return _DOMAIN[0]


_RUN_ERRORS = (NNEFError, ValueError, TypeError, IndexError, KeyError, ZeroDivisionError, FloatingPointError,
               OverflowError, MemoryError, AssertionError, NotImplementedError)


def _run(pattern, arrays: dict[str, np.ndarray], env: Env, domain, dtype) -> np.ndarray:
    try:
        with np.errstate(all="ignore"):
            return np.asarray(_evaluate(pattern, arrays, env, domain, dtype))
    except _RUN_ERRORS as exc:
        raise _Failure(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


def _evaluate(pattern, arrays, env, domain, dtype):
    from nnefopt.frontend.evaluate import evaluate_constant
    from nnefopt.ops import entry_of

    if isinstance(pattern, Var) and pattern.name in arrays:
        return arrays[pattern.name]
    if isinstance(pattern, (Var, Lit, Computed)):
        return _tensor_of(value_of(pattern, env), dtype)
    if isinstance(pattern, ListPattern):
        return [_evaluate(p, arrays, env, domain, dtype) for p in pattern.items]
    assert isinstance(pattern, OpPattern)
    entry = entry_of(pattern.op)
    inputs = []
    for name, sub in pattern.operands:
        if sub is None:
            default = entry.signature.param(name).default
            inputs.append(None if default is None else _tensor_of(evaluate_constant(default), dtype))
        else:
            inputs.append(_evaluate(sub, arrays, env, domain, dtype))
    attribs = {name: value_of(sub, env) for name, sub in pattern.attributes}
    _check_shapes(entry, inputs, attribs)
    return domain.run(entry.signature, inputs, attribs, Location("<rule>"))


def _check_shapes(entry, inputs: list, attribs: dict) -> None:
    """The op table's shape rule accepts these operands and attributes, as it does for
    every operation of a loaded graph: where it refuses (linear of a rank-4 filter, a
    downsample factor of the wrong length), the kernels may compute anything, and no
    graph the rule rewrites holds that operation (ValueError: the side does not apply)."""
    if entry.shape_rule is None:
        return

    def shape(value):
        if value is None:
            return None
        if isinstance(value, list):
            return [shape(v) for v in value]
        return tuple(np.shape(value))

    entry.shape_rule(*(shape(v) for v in inputs), **attribs)


def _tensor_of(value: object, dtype) -> np.ndarray:
    if isinstance(value, bool):
        return np.asarray(value)
    if isinstance(value, int):
        return np.asarray(value, np.int32)
    return np.asarray(value, dtype)


def _within_ulp(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype.kind != "f" or b.dtype.kind != "f":
        return a.dtype == b.dtype and bool(np.array_equal(a, b))
    a, b = a.astype(np.float32), b.astype(np.float32)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    close = np.abs(a - b) <= np.spacing(np.maximum(np.abs(a), np.abs(b)))
    return bool(np.all(same | close))


def _real_equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype.kind != "f" or b.dtype.kind != "f":
        return bool(np.array_equal(a, b))
    a, b = a.astype(np.float64), b.astype(np.float64)
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    finite = ~np.isnan(a)
    scale = 1.0 + float(np.max(np.abs(np.where(np.isfinite(a), a, 0.0)), initial=0.0))
    return bool(np.all(np.where(finite, (a == b) | (np.abs(a - b) <= REAL_RTOL * scale), True)))


# ---- drawing inputs ----------------------------------------------------------------------


def _attribute_strategy(kind: str, array: bool):
    if kind == "scalar":
        item = st.one_of(st.sampled_from([0.0, 1.0, -1.0, 0.5, 2.0]), st.floats(-3, 3, width=32))
    elif kind == "integer":
        item = st.integers(-2, 4) if not array else st.integers(0, 3)
    elif kind == "logical":
        item = st.booleans()
    elif kind == "string":
        item = st.sampled_from(["constant", "replicate", "reflect", "symmetric", "ignore"])
    else:
        return st.just([])
    return st.lists(item, max_size=4, unique=kind == "integer") if array else item


def _array_strategy(item: str, shape: tuple):
    if item == "logical":
        return hnp.arrays(np.bool_, shape)
    if item == "integer":
        return hnp.arrays(np.int32, shape, elements=st.integers(-3, 5))
    return hnp.arrays(np.float32, shape, elements=st.one_of(
        st.sampled_from(EDGE_VALUES), st.floats(-4, 4, width=32, allow_subnormal=False)))


def _rank_hints(rule: Rule) -> dict[str, int]:
    """`rank(x) == k` in a guard fixes the rank the verifier draws for x."""
    hints = {}
    for guard in rule.guards:
        expr = guard.expr
        for node in ast.walk(expr) if expr is not None else ():
            if isinstance(node, ast.Binary) and node.op == "==" and isinstance(node.right, ast.Literal) \
                    and isinstance(node.left, ast.Invocation) and node.left.name == "rank" and node.left.args \
                    and isinstance(node.left.args[0].value, ast.Identifier):
                hints[node.left.args[0].value.name] = node.right.value
    return hints


def _valid_shapes(rule: Rule, tensors: list[str], values: dict, hints: dict, seed: int, domain,
                  memo: dict) -> list[dict]:
    """The candidate shape assignments (related shapes: equal, broadcast, or free), smallest
    first, on which the guards hold and the left-hand side runs."""
    rng = np.random.default_rng(seed)
    candidates = sorted({tuple(sorted(c.items())) for c in (_candidate(rng, tensors, hints) for _ in range(SHAPE_TRIES))},
                        key=lambda c: (sum(int(np.prod(s)) for _, s in c), c))
    attr_key = repr(sorted(values.items()))
    valid = []
    for shapes in candidates:
        key = (attr_key, shapes)
        if key not in memo:
            memo[key] = _applies(rule, dict(shapes), values, domain)
        if memo[key]:
            valid.append(dict(shapes))
    return valid


def _candidate(rng, tensors: list[str], hints: dict) -> dict[str, tuple]:
    rank = int(rng.integers(0, 5))
    base = [int(d) for d in rng.integers(1, 5, size=4)]
    shapes = {}
    for name in tensors:
        own_rank = hints.get(name, rank)
        shape = (base * 2)[:own_rank] if own_rank <= 4 else base + [1] * (own_rank - 4)
        roll = rng.random()
        if roll < 0.2:
            shape = [1 if rng.random() < 0.5 else d for d in shape]
        elif roll < 0.3 and name not in hints:
            shape = shape[int(rng.integers(0, len(shape) + 1)):]
        elif roll < 0.45:
            shape = [int(d) for d in rng.integers(1, 5, size=len(shape))]
        shapes[name] = tuple(shape)
    return shapes


def _applies(rule: Rule, shapes: dict, values: dict, domain) -> bool:
    env = Env(values, shapes)
    try:
        if not guards_hold(rule, env):
            return False
    except _RUN_ERRORS:
        return False
    arrays = {n: np.full(s, 0.5, np.float32) for n, s in shapes.items()}
    for name, var in rule.variables.items():
        if var.is_tensor and var.item == "logical":
            arrays[name] = np.zeros(shapes[name], bool)
        elif var.is_tensor and var.item == "integer":
            arrays[name] = np.zeros(shapes[name], np.int32)
    try:
        result = _run(rule.lhs, arrays, env, domain, np.float32)
    except _Failure:
        return False
    return result.size > 0  # an empty result says nothing about a rule


def _describe(values: dict, arrays: dict) -> str:
    parts = [f"{n} = {v!r}" for n, v in values.items()]
    parts += [f"{n} = {_array_text(a)}" for n, a in arrays.items()]
    return ", ".join(parts)


def _array_text(array) -> str:
    array = np.asarray(array)
    text = np.array2string(array, precision=6, threshold=24, separator=", ").replace("\n", "")
    return f"{text} (shape {list(array.shape)})" if array.ndim else text
