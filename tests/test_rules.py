"""Rewrite rules (nnefopt.rules): the NNEF rule syntax and its errors, matching against
the IR, the verifier's verdicts (the must-refuse list refused with counterexamples),
the greedy engine and the rewrite pass, the Python API, and the rules derived from the
specification's compound fragments."""

from __future__ import annotations

import importlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import nnefopt
from nnefopt.cli import main
from nnefopt.errors import NNEFError
from nnefopt.rules import ops, register_rule, rule, rules as registered_rules
from nnefopt.rules.greedy import apply_greedy
from nnefopt.rules.nnef_syntax import parse_rules
from nnefopt.rules.pattern import Lit, OpPattern, Rule, Var, match
from nnefopt.rules import shipped_verdicts
from nnefopt.rules.rule_sets import load_rule_set, standard_rules
from nnefopt.rules.shipped_verdicts import fresh_record, recorded_verdict, rule_digest
from nnefopt.rules.stdlib_rules import LEFT_OUT, derive_stdlib_rules
from nnefopt.rules.verify import UnsoundRule, verified, verify
from tests.models import SHARED


def _module(tmp_path, body: str, inputs: str = "x", outputs: str = "y", shape: str = "[2, 3]"):
    externals = "".join(f"    {name.strip()} = external<scalar>(shape = {shape});\n" for name in inputs.split(","))
    text = f"version 1.0;\ngraph G( {inputs} ) -> ( {outputs} )\n{{\n{externals}{body}\n}}\n"
    path = tmp_path / "graph.nnef"
    path.write_text(text)
    return nnefopt.load(path)


def _ops(module) -> list[str]:
    return [op.name.removeprefix("nnef.") for op in module.walk() if hasattr(op, "OP_DEF")]


def _one(text: str) -> Rule:
    (found,) = parse_rules(text, "test.rules")
    return found


def _inputs(module, seed: int = 0) -> dict[str, np.ndarray]:
    from nnefopt.interp.ir_interpreter import Plan

    return Plan(module).random_inputs(seed)


# ---- the NNEF syntax ---------------------------------------------------------------------


def test_a_rule_reads_as_nnef():
    found = _one("rule fold_relu( x: tensor<scalar> ) { max(x, 0.0) => relu(x); }")
    assert found.name == "fold_relu"
    assert found.lhs == OpPattern("max", (("x", Var("x")), ("y", Lit(0.0))), ())
    assert found.rhs == OpPattern("relu", (("x", Var("x")),), ())
    assert found.loc.line == 1 and found.loc.column == 1


def test_operators_names_and_guards():
    found = _one("""
rule fold_softmax( x: tensor<scalar>, axes: integer[] )
{
    where length_of(axes) == 1;
    e = exp(x - max_reduce(x, axes = axes));
    e / sum_reduce(e, axes = axes) => softmax(x, axes = axes) where rank(x) >= 2;
}""")
    assert found.lhs.op == "div"
    numerator = dict(found.lhs.operands)["x"]
    assert numerator.op == "exp" and dict(numerator.operands)["x"].op == "sub"
    assert dict(found.lhs.operands)["y"].attribute("axes") == Var("axes")
    assert [g.text for g in found.guards] == ["length_of(axes) == 1", "rank(x) >= 2"]
    assert found.text.startswith("div(exp(sub(x, max_reduce(x, axes = axes)))")


def test_an_omitted_attribute_means_its_default():
    found = _one("rule r( x: tensor<scalar>, a: integer[] ) { sum_reduce(x, axes = a) => x; }")
    assert found.lhs.attribute("normalize") == Lit(False)


@pytest.mark.parametrize("text,place,message", [
    ("rule r( x: tensor<scalar> ) {\n  max(x, 0.0) = relu(x);\n}", "2:15", "expected '=>'"),
    ("rule r( x: tensor<scalar> ) {\n  max(x, 0.0) => rlu(x);\n}", "2:18", "unknown operation 'rlu'"),
    ("rule r( x: tensor<scalar> ) {\n  max(x, 0.0) => relu(y);\n}", "2:23", "undefined identifier 'y'"),
    ("rule r( x: tensor<scalar>, a: scalar ) {\n  max(x, 0.0) => leaky_relu(x, alpha = a);\n}", "2:18",
     "'a' in the right-hand side of rule 'r' is not bound"),
    ("rule r( x: tensor<scalar>, a: scalar ) {\n  mul(x, a * 2.0) => x;\n}", "2:12",
     "the left-hand side matches literals and parameters"),
    ("rule r( x: tensor<scalar> ) {\n  sum_reduce(x, axes = x) => x;\n}", "2:24", "tensor 'x' given where an attribute"),
    ("rule r( x: tensor<scalar> ) {\n  relu(x, beta = 1.0) => x;\n}", "2:11", "'relu' has no parameter 'beta'"),
    ("rule r( x: tensor<scalar> ) {\n  x => relu(x);\n}", "2:3", "left-hand side of a rule must be an operation"),
    ("rule r( x: tensor<scalar> ) {\n  relu(x) => x;\n}\nrule r( x: tensor<scalar> ) { relu(x) => x; }",
     "4:1", "rule 'r' is already defined at test.rules:1:1"),
    ("rule r( x: tensor<scalar> ) {\n  relu(x) => x;\n", "3:1", "expected '}' to close rule 'r'"),
    ("rule r( x: tensor<scalar>, y: tensor<scalar> ) {\n  relu(x) => x;\n}", "1:1",
     "parameter 'y' of rule 'r' does not appear"),
    ("rule r( x: tensor<scalar> ) {\n  a = b;\n  b = a;\n  relu(a) => x;\n}", "2:7", "'b' is used before it is assigned"),
    ("rule r( x: tensor<scalar> ) {\n  where foo(x) == 1;\n  relu(x) => x;\n}", "2:9", "a guard cannot call 'foo'"),
    ("rule r( x: tensor<scalar> ) {\n  where x > 1.0;\n  relu(x) => x;\n}", "2:9",
     "a guard reads tensor 'x' only through rank()"),
    ("rule r( a: integer[] ) {\n  relu(a) => a;\n}", "2:8", "'a' is an array attribute"),
    ("rule r( x: tensor<scalar>[] ) {\n  relu(x) => x;\n}", "1:9", "a rule parameter is a tensor or an attribute"),
    # `[x] * 2` repeats an array (as stdlib's copy_n does): no element-wise mul of it
    ("rule r( x: tensor<scalar> ) {\n  relu([x] * 2) => x;\n}", "2:8", "'mul' takes a tensor as 'x'"),
    ("rule r( x: tensor<scalar> ) {\n  concat(x, axis = 0) => x;\n}", "2:10", "takes an array of tensors"),
])
def test_syntax_errors_say_where(text, place, message):
    with pytest.raises(NNEFError) as caught:
        parse_rules(text, "test.rules")
    assert str(caught.value).startswith(f"test.rules:{place}: error:"), str(caught.value)
    assert message in caught.value.message


# ---- matching -------------------------------------------------------------------------------


def test_match_binds_variables_and_checks_literals_and_guards(tmp_path):
    module = _module(tmp_path, "    y = max(x, mul(x, 0.25));\n    z = max(x, mul(x, 2.0));\n    w = max(x, 1.0);",
                     outputs="y, z, w")
    leaky = _one("rule l( x: tensor<scalar>, a: scalar ) { where a <= 1.0; max(x, x * a) => leaky_relu(x, alpha = a); }")
    relu = _one("rule r( x: tensor<scalar> ) { max(x, 0.0) => relu(x); }")
    maxes = [op for op in module.walk() if op.name == "nnef.max"]
    found = match(leaky, maxes[0])
    assert found is not None and found.attributes == {"a": 0.25}
    assert found.values["x"] is maxes[0].operands[0]
    assert match(leaky, maxes[1]) is None  # the guard: a = 2.0
    assert match(relu, maxes[2]) is None  # 1.0 is not 0.0


# ---- the verifier -----------------------------------------------------------------------------


MUST_REFUSE = {
    # the specification's gelu (its sigmoid approximation) is not x * Phi(x)
    "sigmoid_gelu_as_erf_gelu": "rule g( x: tensor<scalar> ) { x * sigmoid(1.702 * x) => gelu_erf(x); }",
    # a bias of rank 2 adds along the last axis (W), not along the channels
    "conv_bias_fold_wrong_guard": """rule b( x: tensor<scalar>, w: tensor<scalar>, c: tensor<scalar> )
        { where rank(x) == 4 && rank(w) == 4 && rank(c) == 2; conv(x, w) + c => conv(x, w, c); }""",
    # without shape_of(b)[0] == 1 the bias may hold a row per batch item
    "linear_bias_fold_wrong_guard": """rule b( a: tensor<scalar>, w: tensor<scalar>, c: tensor<scalar> )
        { where rank(a) == 2 && rank(w) == 2; matmul(a, w, transposeB = true) + c => linear(a, w, c); }""",
    # max(x, a x) is leaky_relu only for a <= 1
    "leaky_relu_without_upper_bound": """rule l( x: tensor<scalar>, a: scalar )
        { where a >= 0.0; max(x, x * a) => leaky_relu(x, alpha = a); }""",
    "sub_commuted": "rule s( x: tensor<scalar>, y: tensor<scalar> ) { x - y => y - x; }",
    "exp_of_log": "rule e( x: tensor<scalar> ) { exp(log(x)) => x; }",
    "relu_is_not_abs": "rule r( x: tensor<scalar> ) { relu(x) => abs(x); }",
    # the right-hand side has another shape: reducing is not the identity
    "reduce_dropped": "rule d( x: tensor<scalar>, a: integer[] ) { sum_reduce(x, axes = a) => x; }",
    # sigmoid's saturation is not tanh's
    "sigmoid_as_tanh": "rule t( x: tensor<scalar> ) { sigmoid(x) => (tanh(x) + 1.0) * 0.5; }",
    # 1 / sqrt(-0) is -inf, rsqrt(-0) = (-0) ^ -0.5 is +inf
    "rsqrt_as_reciprocal_of_sqrt": "rule r( x: tensor<scalar> ) { 1.0 / sqrt(x) => rsqrt(x); }",
    # a [1, 2] bias widens a one-column product; linear refuses it
    "linear_bias_fold_without_width": """rule b( a: tensor<scalar>, w: tensor<scalar>, c: tensor<scalar> )
        { where rank(a) == 2 && rank(w) == 2 && rank(c) == 2 && shape_of(c)[0] == 1;
          matmul(a, w, transposeB = true) + c => linear(a, w, c); }""",
    # linear adds a [C] bias per channel, the body's + aligns it from the left
    "linear_expanded_with_any_bias": """rule e( a: tensor<scalar>, w: tensor<scalar>, c: tensor<scalar> )
        { linear(a, w, c) => matmul(a, w, transposeB = true) + c; }""",
    # the body broadcasts an alpha that prelu refuses
    "prelu_fold_without_its_shape_rule": """rule p( x: tensor<scalar>, a: tensor<scalar> )
        { select(x < 0.0, a * x, x) => prelu(x, a); }""",
}


@pytest.mark.parametrize("name", list(MUST_REFUSE))
def test_must_refuse(name):
    found = _one(MUST_REFUSE[name])
    with pytest.raises(UnsoundRule) as caught:
        verify(found)
    error = caught.value
    assert error.counterexample, str(error)
    assert str(error).startswith("test.rules:1:1: error: rule"), str(error)
    assert "counterexample:" in str(error)


def test_counterexamples_are_small():
    found = _one(MUST_REFUSE["leaky_relu_without_upper_bound"])
    with pytest.raises(UnsoundRule) as caught:
        verify(found)
    # shrunk: a slope above 1 and a one-item tensor
    assert caught.value.counterexample.startswith("a = ")
    slope = float(caught.value.counterexample.split(",")[0].split("=")[1])
    assert slope > 1.0
    assert "left gives" in caught.value.counterexample


def test_exact_and_reassociation_verdicts():
    exact = verify(_one("rule r( x: tensor<scalar> ) { max(x, 0.0) => relu(x); }"))
    assert exact.exact and exact.kind == "exact" and exact.examples >= 8
    inexact = verify(_one("rule s( x: tensor<scalar> ) { 1.0 / (1.0 + exp(-x)) => sigmoid(x); }"))
    assert not inexact.exact and inexact.kind == "reassociation"


def test_a_rule_that_never_applies_is_refused_unchecked():
    found = _one("rule n( x: tensor<scalar> ) { where rank(x) == 9 && rank(x) == 8; relu(x) => x; }")
    with pytest.raises(UnsoundRule, match="cannot vouch"):
        verify(found)


def _shipped() -> list[Rule]:
    return [*standard_rules(), *load_rule_set("stdlib+registered")]


@pytest.mark.parametrize("found", _shipped(), ids=lambda r: f"{r.origin or 'standard'}:{r.name}")
def test_every_shipped_rule_passes_the_verifier(found):
    """Each rule of every shipped set (standard, stdlib, registered), verified afresh as
    the rewrite pass would verify it (60 drawn inputs; about 1 s a rule, 100 rules), and
    recorded with that verdict (shipped_verdicts)."""
    verdict = verify(found, shipped=False)
    assert verdict.examples >= 8
    if rule_digest(found) is not None:
        assert recorded_verdict(found) is not None, "not recorded: python -m nnefopt.rules.shipped_verdicts"
        assert recorded_verdict(found)[0] == verdict.exact


def test_the_standard_set_holds_exact_and_reassociating_rules():
    shipped = standard_rules()
    assert len(shipped) >= 25
    verdicts = [verify(r, shipped=False) for r in shipped]  # afresh, not as recorded
    assert any(v.exact for v in verdicts) and any(not v.exact for v in verdicts)


def test_the_recorded_verdicts_are_the_verifiers():
    """The record the rewrite pass trusts for shipped rules says what verifying them
    afresh says, rule by rule, and holds nothing else (after editing a shipped rule:
    `python -m nnefopt.rules.shipped_verdicts`)."""
    fresh = fresh_record()
    recorded = json.loads((Path(shipped_verdicts.__file__).with_name(shipped_verdicts.RECORD)).read_text())
    assert recorded["examples"] == fresh["examples"]
    # the kind of verdict, rule by rule (how many draws applied can move by a few with
    # what the process verified before: not part of the verdict)
    differ = {verdict["rule"]: (recorded["verdicts"].get(key), verdict) for key, verdict in fresh["verdicts"].items()
              if (recorded["verdicts"].get(key) or {}).get("exact") != verdict["exact"]}
    assert not differ
    assert set(recorded["verdicts"]) == set(fresh["verdicts"])


def test_a_shipped_rule_is_not_verified_again_and_an_edited_one_is(monkeypatch):
    calls = []
    module = importlib.import_module("nnefopt.rules.verify")  # the package exports a function of that name
    monkeypatch.setattr(module, "_verify", lambda rule, examples: calls.append(rule.name))
    monkeypatch.setattr(module, "_VERDICTS", {})
    first = standard_rules()[0]
    assert verify(first).examples >= 8 and calls == []
    assert first.name == "fold_relu"
    verify(_one("rule fold_relu( x: tensor<scalar> ) { max(x, 0.0) => relu(copy(x)); }"))
    assert calls == ["fold_relu"]


def test_the_verifier_draws_only_operations_the_op_table_accepts():
    # linear's kernel would run on a rank-4 filter; no graph holds one, so no draw does
    found = _one("rule e( a: tensor<scalar>, w: tensor<scalar>, c: tensor<scalar> ) "
                 "{ where rank(c) == rank(a); linear(a, w, c) => matmul(a, w, transposeB = true) + c; }")
    assert verify(found).examples >= 8
    with pytest.raises(UnsoundRule, match="cannot vouch"):  # never valid: rank-3 and rank-2 matmul operands
        verify(_one("rule m( a: tensor<scalar>, w: tensor<scalar> ) "
                    "{ where rank(a) == 3 && rank(w) == 2; matmul(a, w) => matmul(w, a); }"))


# ---- rules derived from stdlib.nnef ----------------------------------------------------------


def test_stdlib_fragments_give_both_directions():
    derived, skipped = derive_stdlib_rules()
    by_name = {r.name: r for r in derived}
    assert by_name["fold_relu"].text == "max(x, 0.0) => relu(x)"
    assert by_name["expand_relu"].text == "relu(x) => max(x, 0.0)"
    assert by_name["fold_linear"].lhs.op == "add" and by_name["fold_linear"].rhs.op == "linear"
    assert verify(by_name["fold_silu"]).exact
    assert verify(by_name["expand_sigmoid"]).kind == "reassociation"
    assert any(name == "moments" for name, _ in skipped)  # two results: no rule
    # the verifier cannot reach separable convs' filter shapes: left out, with the reason
    assert ("expand_separable_conv", LEFT_OUT["separable_conv"]) in skipped
    assert not any(r.name.endswith("_separable_conv") for r in derived)
    # a fold carries its operation's shape rule as a guard; linear both directions its bias guard
    assert by_name["fold_prelu"].guards[-1].text == "prelu accepts the shapes"
    assert "rank(bias) == rank(input)" in by_name["expand_linear"].text


# ---- the greedy engine and the pass -----------------------------------------------------------


def test_greedy_rewrites_keep_the_numbers(tmp_path):
    module = _module(tmp_path, """
    m = max(x, 0.0);
    s = mul(m, sigmoid(m));
    n = neg(neg(x));
    z = mul(mul(n, 2.0), 3.0);
    y = add(s, z);""")
    inputs = _inputs(module)
    before = nnefopt.run(module, inputs)["y"]
    log = apply_greedy(module, verified(standard_rules()))
    assert [f.rule for f in log] == ["fold_relu", "fold_silu", "double_neg", "mul_constants"]
    assert _ops(module).count("mul") == 1 and "relu" in _ops(module) and "silu" in _ops(module)
    assert "neg" not in _ops(module)
    np.testing.assert_allclose(nnefopt.run(module, inputs)["y"], before, rtol=1e-6)
    assert all(f.cost_after < f.cost_before for f in log)


def test_a_shared_inner_value_stops_the_rewrite(tmp_path):
    # sigmoid(x) is also read by z: folding x * sigmoid(x) would compute it twice
    module = _module(tmp_path, "    s = sigmoid(x);\n    y = mul(x, s);\n    z = add(s, 1.0);", outputs="y, z")
    assert apply_greedy(module, verified(standard_rules())) == []
    assert _ops(module).count("sigmoid") == 1 and "silu" not in _ops(module)


def test_a_broadcasting_identity_is_left_alone(tmp_path):
    # x + 0 where the constant broadcasts x [1, 3] to [2, 3]: the type would change
    module = _module(tmp_path, "    c = constant<scalar>(shape = [2, 3], value = [0.0]);\n    y = add(x, c);",
                     shape="[1, 3]")
    assert apply_greedy(module, verified(standard_rules())) == []


def test_tensor_arrays_match_item_by_item(tmp_path):
    found = _one("rule r( x: tensor<scalar>, y: tensor<scalar>, a: integer ) "
                 "{ concat([relu(x), relu(y)], axis = a) => relu(concat([x, y], axis = a)); }")
    module = _module(tmp_path, "    y = concat([relu(x), relu(z)], axis = 0);\n    w = concat([relu(x)], axis = 0);",
                     inputs="x, z", outputs="y, w")
    inputs = _inputs(module)
    before = nnefopt.run(module, inputs)
    log = apply_greedy(module, verified([found]))
    assert [f.rule for f in log] == ["r"]  # the one-item concat is not a two-item pattern
    assert _ops(module).count("relu") == 2 and _ops(module).count("concat") == 2
    after = nnefopt.run(module, inputs)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])


def test_conv_bias_fold_keeps_the_numbers_and_not_channel_last(tmp_path):
    from xdsl.dialects.builtin import StringAttr

    from nnefopt.dialects.nnef import LAYOUT

    body = """
    w = constant<scalar>(shape = [3, 2, 1, 1], value = [0.5, -1.0, 2.0, 0.25, -0.75, 1.5]);
    b = constant<scalar>(shape = [1, 3, 1, 1], value = [0.5, -1.0, 2.0]);
    y = add(conv(x, w), b);"""
    module = _module(tmp_path, body, shape="[1, 2, 4, 4]")
    fold = [r for r in verified(standard_rules()) if r.name == "fold_conv_bias"]
    add = next(op for op in module.walk() if op.name == "nnef.add")
    conv = add.operands[0].owner
    conv.properties[LAYOUT] = StringAttr("nhwc")
    assert match(fold[0], add) is None  # a channel-last conv is not what the rule says
    del conv.properties[LAYOUT]
    inputs = _inputs(module)
    before = nnefopt.run(module, inputs)["y"]
    assert [f.rule for f in apply_greedy(module, fold)] == ["fold_conv_bias"]
    assert _ops(module) == ["external", "constant", "constant", "reshape", "conv"]
    np.testing.assert_allclose(nnefopt.run(module, inputs)["y"], before, rtol=1e-6, atol=1e-6)


def test_both_directions_terminate_and_pick_the_cheaper(tmp_path):
    module = _module(tmp_path, "    a = max(x, 0.0);\n    y = relu(a);")
    derived = [r for r in derive_stdlib_rules()[0] if r.name in ("fold_relu", "expand_relu")]
    log = apply_greedy(module, verified(derived))
    assert [f.rule for f in log] == ["fold_relu"]
    assert _ops(module).count("relu") == 2 and "max" not in _ops(module)


def test_the_pass_explains_and_is_deterministic(tmp_path, capsys):
    text = "    a = max(x, 0.0);\n    b = mul(a, sigmoid(a));\n    y = max(b, mul(b, 0.5));"
    first, second = _module(tmp_path, text), _module(tmp_path, text)
    nnefopt.optimize(first, "rewrite{explain=true}")
    explained = capsys.readouterr().err
    nnefopt.optimize(second, "rewrite")
    assert nnefopt.to_mlir(first) == nnefopt.to_mlir(second)
    assert "rewrite: fold_relu at" in explained and "graph.nnef:" in explained
    assert "rewrite: fold_leaky_relu at" in explained
    assert "rewrite: 3 rewrites; graph" in explained
    assert _ops(first) == ["external", "relu", "silu", "leaky_relu"]


def test_the_pass_refuses_an_unsound_rule_file(tmp_path):
    rules = tmp_path / "bad.rules"
    rules.write_text(MUST_REFUSE["sigmoid_gelu_as_erf_gelu"])
    module = _module(tmp_path, "    y = mul(x, sigmoid(mul(1.702, x)));")
    with pytest.raises(NNEFError, match="rule 'g' is refused") as caught:
        nnefopt.optimize(module, f'rewrite{{rules="{rules}"}}')
    assert "counterexample" in str(caught.value)


def test_exact_option_drops_reassociating_rules(tmp_path):
    text = "    y = div(1.0, add(1.0, exp(neg(x))));"
    module = _module(tmp_path, text)
    nnefopt.optimize(module, "rewrite{exact=true}")
    assert "sigmoid" not in _ops(module)
    module = _module(tmp_path, text)
    nnefopt.optimize(module, "rewrite")
    assert _ops(module) == ["external", "sigmoid"]


def test_shared_model_where_rules_fire_keeps_its_outputs():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = nnefopt.load(SHARED / "tiny_vit" / "kt")
    inputs = _inputs(module)
    before = nnefopt.run(module, inputs)
    pows = _ops(module).count("pow")
    log = apply_greedy(module, verified([r for r in standard_rules() if r.lhs.op == "pow"]))
    assert len(log) == pows > 0 and "pow" not in _ops(module)
    after = nnefopt.run(module, inputs)
    for name, expected in before.items():
        np.testing.assert_allclose(after[name], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model", ["mlp_digits", "resnet8", "tiny_unet"])
def test_shared_models_keep_their_outputs(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = nnefopt.load(SHARED / model / "kt")
    inputs = _inputs(module)
    before = nnefopt.run(module, inputs)
    nnefopt.optimize(module, "rewrite")
    after = nnefopt.run(module, inputs)
    for name, expected in before.items():
        np.testing.assert_allclose(after[name], expected, rtol=1e-5, atol=1e-6)


# ---- Python ---------------------------------------------------------------------------------


def test_python_rules_are_the_same_rules(tmp_path):
    @rule(guards=["a >= 0.0 && a <= 1.0"])
    def fold_leaky(x, a: float):
        return ops.max(x, x * a), ops.leaky_relu(x, alpha=a)

    text = _one("rule fold_leaky( x: tensor<scalar>, a: scalar ) "
                "{ where a >= 0.0 && a <= 1.0; max(x, x * a) => leaky_relu(x, alpha = a); }")
    assert fold_leaky.text == text.text and fold_leaky.lhs == text.lhs
    assert verify(fold_leaky).exact

    relu = Rule.from_functions(lambda x: ops.max(x, 0.0), lambda x: ops.relu(x), name="py_relu")
    register_rule(relu)
    assert relu in registered_rules()
    module = _module(tmp_path, "    y = max(x, 0.0);")
    nnefopt.optimize(module, "rewrite{rules=registered}")
    assert _ops(module) == ["external", "relu"]


def test_python_guard_callables(tmp_path):
    only_rank_1 = Rule.from_functions(lambda x: ops.max(x, 0.0), lambda x: ops.relu(x), name="rank1_relu",
                                      guards=(lambda env: env.rank("x") == 1,))
    module = _module(tmp_path, "    y = max(x, 0.0);")  # rank 2
    assert apply_greedy(module, verified([only_rank_1])) == []


# ---- the command line -------------------------------------------------------------------------


def test_list_rules(tmp_path, capsys):
    rules = tmp_path / "two.rules"
    rules.write_text(MUST_REFUSE["sigmoid_gelu_as_erf_gelu"] + "\nrule r( x: tensor<scalar> ) { max(x, 0.0) => relu(x); }\n")
    assert main(["--list-rules", "--rules", str(rules)]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["g", "REFUSED"] and lines[1].split()[:2] == ["r", "exact"]
    assert f"{rules}:1:1: error: rule 'g' is refused" in err and "counterexample: x = " in err
