"""The equality-saturation engine (nnefopt.rules.eqsat): it finds what the greedy engine's
order hides, stays within its limits with valid IR, is deterministic, keeps multi-result
operations, merges operations reading one input only where that pays, its exact
extraction is never worse than greedy-DAG, and the numbers stay the same throughout."""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
import pytest

import nnefopt
from nnefopt.errors import NNEFError
from nnefopt.frontend.tensor_file import write_tensor
from nnefopt.rules.egraph import EGraph, ENode, from_block
from nnefopt.rules.engines import ENGINES, engine_products, run_engine
from nnefopt.rules.greedy import apply_greedy, graph_cost
from nnefopt.rules.nnef_syntax import parse_rules
from nnefopt.rules.rule_sets import rules_that_could_fire, standard_rules
from nnefopt.rules.stdlib_rules import derive_stdlib_rules
from nnefopt.rules.verify import verified
from tests.models import SHARED

_rng = np.random.default_rng(16)


def _model(tmp_path, body: str, inputs: dict[str, list[int]], outputs: str,
           weights: dict[str, list[int]] | None = None, folder: str = "m"):
    """An NNEF folder: externals of `inputs`, random float variables of `weights`."""
    path = tmp_path / folder
    path.mkdir()
    lines = [f"    {n} = external<scalar>(shape = {s});" for n, s in inputs.items()]
    for name, shape in (weights or {}).items():
        write_tensor(path / f"{name}.dat", _rng.standard_normal(shape).astype(np.float32))
        lines.append(f"    {name} = variable<scalar>(shape = {shape}, label = '{name}');")
    text = f"version 1.0;\ngraph G( {', '.join(inputs)} ) -> ( {outputs} )\n{{\n" + "\n".join(lines) + f"\n{body}\n}}\n"
    (path / "graph.nnef").write_text(text)
    return path


def _load(path):
    return nnefopt.load(path)


def _ops(module) -> list[str]:
    return [op.name.removeprefix("nnef.") for op in module.walk() if hasattr(op, "OP_DEF")]


def _same_numbers(module, reference, seed: int = 0) -> None:
    from nnefopt.interp.ir_interpreter import Plan

    inputs = Plan(reference).random_inputs(seed)
    expected, actual = nnefopt.run(reference, inputs), nnefopt.run(module, inputs)
    assert expected.keys() == actual.keys()
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-4, atol=1e-5)


@cache
def _standard() -> tuple:
    return tuple(verified(standard_rules()))  # verified once for the whole file


def _rules(*names):
    found = {r.name: r for r in _standard()}
    return [found[n] for n in names] if names else list(found.values())


def test_eqsat_is_an_engine():
    assert "eqsat" in ENGINES


# ---- phase ordering --------------------------------------------------------------------------


SIGMOID = "    y = div(1.0, add(1.0, exp(neg(x))));"


def test_rule_order_does_not_matter_to_eqsat(tmp_path):
    """fold_rcp first: greedy turns 1 / (1 + exp(-x)) into rcp(...) and fold_sigmoid no
    longer matches; equality saturation holds both and extracts sigmoid(x)."""
    path = _model(tmp_path, SIGMOID, {"x": [4, 16]}, "y")
    rules = _rules("fold_rcp", "fold_sigmoid")
    greedy, eqsat, reference = _load(path), _load(path), _load(path)
    assert [f.rule for f in apply_greedy(greedy, rules)] == ["fold_rcp"]
    log = run_engine("eqsat", eqsat, rules)
    assert graph_cost(eqsat)[1] < graph_cost(greedy)[1]
    assert _ops(eqsat) == ["external", "sigmoid"]
    assert [f.rule for f in log] == ["fold_sigmoid"]
    assert log.stats.stopped == "saturated"
    _same_numbers(eqsat, reference)
    _same_numbers(greedy, reference)


def test_a_value_read_elsewhere_stays_once(tmp_path):
    """x * sigmoid(x) with the sigmoid an output too: the sigmoid stays (once) and the
    product becomes silu(x), which costs less than the mul it replaces; greedy leaves it,
    as the sigmoid is read outside its match."""
    path = _model(tmp_path, "    u = sigmoid(x);\n    t = mul(x, u);", {"x": [2, 3]}, "t, u")
    module, greedy, reference = _load(path), _load(path), _load(path)
    assert apply_greedy(greedy, _rules("fold_silu")) == []
    assert [f.rule for f in run_engine("eqsat", module, _rules("fold_silu"))] == ["fold_silu"]
    assert _ops(module) == ["external", "sigmoid", "silu"]
    assert graph_cost(module)[1] < graph_cost(greedy)[1]
    _same_numbers(module, reference)


# ---- limits, determinism ------------------------------------------------------------------------


def _chain(tmp_path):
    body = "\n".join([
        "    a = mul(mul(x, 2.0), 3.0);",
        "    b = max(a, 0.0);",
        "    c = mul(b, sigmoid(b));",
        "    d = div(1.0, add(1.0, exp(neg(c))));",
        "    y = add(mul(d, 1.0), 0.0);",
    ])
    return _model(tmp_path, body, {"x": [3, 5]}, "y")


def test_a_small_node_limit_stops_with_valid_ir(tmp_path):
    path = _chain(tmp_path)
    module, reference = _load(path), _load(path)
    both_ways = verified([r for r in derive_stdlib_rules()[0]  # fold and expand: no saturation in sight
                          if r.name.split("_", 1)[1] in ("relu", "sigmoid", "silu", "sqr", "max")])
    log = run_engine("eqsat", module, _rules() + both_ways, node_limit=30)
    assert log.stats.stopped == "node limit"
    assert log.stats.nodes < 30 + 40  # stops within one application's nodes of the limit
    module.verify()
    _same_numbers(module, reference)


def test_iteration_and_time_limits(tmp_path):
    path = _chain(tmp_path)
    module, reference = _load(path), _load(path)
    log = run_engine("eqsat", module, _rules(), iteration_limit=1)
    assert log.stats.iterations == 1 and log.stats.stopped == "iteration limit"
    module.verify()
    _same_numbers(module, reference)
    timed = _load(path)
    log = run_engine("eqsat", timed, _rules(), time_limit=0.0)
    assert log.stats.stopped == "time limit"
    timed.verify()
    _same_numbers(timed, reference)


def test_two_runs_print_the_same_module(tmp_path):
    path = _merge_model(tmp_path)
    rules = _rules()
    texts = []
    for _ in range(2):
        module = _load(path)
        log = run_engine("eqsat", module, rules)
        texts.append((nnefopt.to_mlir(module), [str(f) for f in log]))
    assert texts[0] == texts[1]
    assert "nnef.split" in texts[0][0]


def test_saturation_reaches_the_cheapest_chain(tmp_path):
    path = _chain(tmp_path)
    module, greedy, reference = _load(path), _load(path), _load(path)
    rules = _rules()
    log = run_engine("eqsat", module, rules)
    apply_greedy(greedy, rules)
    assert log.stats.stopped == "saturated"
    assert graph_cost(module)[1] <= graph_cost(greedy)[1]
    assert _ops(module) == ["external", "constant", "mul", "relu", "silu", "sigmoid"]
    _same_numbers(module, reference)


# ---- multi-result operations --------------------------------------------------------------------


def test_multi_result_operations_survive(tmp_path):
    body = "\n".join([
        "    [a, b] = split(x, axis = 1, ratios = [1, 2]);",
        "    m, v = moments(x, axes = [1]);",
        "    y = max(a, 0.0);",
        "    z = add(b, 0.0);",
        "    w = mul(v, 1.0);",
    ])
    path = _model(tmp_path, body, {"x": [2, 6]}, "y, z, m, w")
    module, reference = _load(path), _load(path)
    log = run_engine("eqsat", module, _rules())
    module.verify()
    assert {f.rule for f in log} == {"fold_relu", "add_zero", "mul_one"}
    ops = _ops(module)
    assert ops.count("split") == 1 and ops.count("moments") == 1 and "relu" in ops
    assert "add" not in ops and "mul" not in ops
    graph = next(op for op in module.walk() if op.name == "nnef.graph")
    assert [o.data for o in graph.outputs.data] == ["y", "z", "m", "w"]
    _same_numbers(module, reference)


def test_an_e_graph_has_tuple_classes_and_projections(tmp_path):
    path = _model(tmp_path, "    [a, b] = split(x, axis = 0, ratios = [1, 1]);", {"x": [4]}, "a, b")
    geg = from_block(next(op for op in _load(path).walk() if op.name == "nnef.graph").body.block)
    eg = geg.egraph
    split_class = next(c for c in eg.classes.values() if any(n.op == "split" for n in c.nodes))
    assert isinstance(split_class.type, tuple) and len(split_class.type) == 2
    projections = [n for c in eg.classes.values() for n in c.nodes if n.op == "#result"]
    assert [n.key for n in projections] == [(0,), (1,)]
    assert all(n.children == (split_class.id,) for n in projections)


def test_congruence_after_a_union():
    eg = EGraph()
    from xdsl.dialects.builtin import TensorType, f32

    t = TensorType(f32, [2])
    a, b = eg.add(ENode("#leaf", (0,)), t), eg.add(ENode("#leaf", (1,)), t)
    fa = eg.add(ENode("relu", (), (a,), (-2,)), t)
    fb = eg.add(ENode("relu", (), (b,), (-2,)), t)
    assert eg.find(fa) != eg.find(fb)
    eg.union(a, b)
    eg.rebuild()
    assert eg.find(fa) == eg.find(fb) and eg.node_count == 3


# ---- merges ---------------------------------------------------------------------------------------


def _merge_model(tmp_path):
    """Two 1x1 convs (one biased) and a linear pair reading one input each, plus a conv
    of another stride: only the first two and the linears may merge."""
    body = "\n".join([
        "    c = conv(x, w1, b1);",
        "    d = relu(conv(x, w2));",
        "    e = conv(x, w3, stride = [2, 2]);",
        "    p = linear(v, f1, g1);",
        "    q = linear(v, f2, g2);",
        "    r = max(q, 0.0);",
    ])
    weights = {"w1": [4, 64, 1, 1], "w2": [6, 64, 1, 1], "w3": [6, 64, 1, 1], "b1": [1, 4],
               "f1": [3, 256], "f2": [5, 256], "g1": [1, 3], "g2": [1, 5]}
    return _model(tmp_path, body, {"x": [1, 64, 8, 8], "v": [2, 256]}, "c, d, e, p, r", weights, "merge")


def test_convs_and_linears_sharing_an_input_merge_where_it_pays(tmp_path):
    path = _merge_model(tmp_path)
    module, reference = _load(path), _load(path)
    before = graph_cost(module)[1]
    log = run_engine("eqsat", module, _rules())
    assert sorted(f.rule for f in log) == ["fold_relu", "merge_convs", "merge_linears"]
    assert graph_cost(module)[1] < before
    ops = _ops(module)
    assert ops.count("conv") == 2 and ops.count("linear") == 1 and ops.count("split") == 2
    strided = [op for op in module.walk() if op.name == "nnef.conv" and "stride = [2, 2]" in str(op)]
    assert len(strided) == 1 and strided[0].operands[1].type.get_shape()[0] == 6  # not merged
    _same_numbers(module, reference)


def test_convs_whose_attributes_differ_do_not_merge(tmp_path):
    body = "    c = conv(x, w1);\n    d = conv(x, w2, stride = [2, 2]);\n    e = conv(x, w3, dilation = [2, 2]);"
    path = _model(tmp_path, body, {"x": [1, 64, 8, 8]}, "c, d, e",
                  {"w1": [4, 64, 1, 1], "w2": [4, 64, 1, 1], "w3": [4, 64, 3, 3]})
    module = _load(path)
    text = nnefopt.to_mlir(module)
    assert run_engine("eqsat", module, []) == []
    assert nnefopt.to_mlir(module) == text


def test_a_merge_that_does_not_pay_is_not_taken(tmp_path):
    """Large outputs from a small input: the split would move more than the input read saves
    (two images: each part is a block per image, copied out, not a view)."""
    body = "    c = conv(x, w1);\n    d = conv(x, w2);"
    path = _model(tmp_path, body, {"x": [2, 2, 8, 8]}, "c, d", {"w1": [16, 2, 3, 3], "w2": [16, 2, 3, 3]})
    module = _load(path)
    log = run_engine("eqsat", module, [])
    assert log == [] and log.stats.nodes > 7  # proposed in the e-graph, not extracted
    assert "split" not in _ops(module)


def test_matmuls_sharing_their_left_operand_merge(tmp_path):
    body = "    p = matmul(v, f1);\n    q = matmul(v, f2);"
    path = _model(tmp_path, body, {"v": [4, 512]}, "p, q", {"f1": [512, 2], "f2": [512, 3]})
    module, reference = _load(path), _load(path)
    log = run_engine("eqsat", module, [])
    assert [f.rule for f in log] == ["merge_matmuls"]
    assert _ops(module).count("matmul") == 1
    _same_numbers(module, reference)


def test_the_sum_of_two_convs_is_one_conv_of_the_inputs_concatenated(tmp_path):
    """A ResNeXt shortcut: the block's last 1x1 conv of t plus the projection of x."""
    body = "\n".join([
        "    t = relu(conv(x, w0, b0, groups = 4));",
        "    y = relu(add(conv(t, w1, b1), conv(x, w2, b2)));",
    ])
    weights = {"w0": [32, 8, 3, 3], "b0": [1, 32], "w1": [64, 32, 1, 1], "b1": [1, 64],
               "w2": [64, 32, 1, 1], "b2": [1, 64]}
    path = _model(tmp_path, body, {"x": [1, 32, 8, 8]}, "y", weights)
    module, reference = _load(path), _load(path)
    before = graph_cost(module)[1]
    log = run_engine("eqsat", module, [])
    assert [f.rule for f in log] == ["merge_conv_sum"]
    assert graph_cost(module)[1] < before
    assert _ops(module).count("conv") == 2 and "add" not in _ops(module) and "concat" in _ops(module)
    merged = [op for op in module.walk() if op.name == "nnef.conv" and op.operands[0].owner.name == "nnef.concat"]
    assert len(merged) == 1 and tuple(merged[0].operands[1].type.get_shape()) == (64, 64, 1, 1)
    _same_numbers(module, reference)


@pytest.mark.parametrize("attributes", ["stride = [2, 2], padding = [(1, 1), (1, 1)]",
                                        "dilation = [2, 2], border = 'reflect', padding = [(2, 2), (2, 2)]"])
def test_the_sum_of_strided_or_padded_convs_one_without_bias_is_the_same_numbers(tmp_path, attributes):
    body = f"    y = add(conv(x, w1, {attributes}), conv(u, w2, b2, {attributes}));"
    path = _model(tmp_path, body, {"x": [1, 3, 9, 9], "u": [1, 5, 9, 9]}, "y",
                  {"w1": [6, 3, 3, 3], "w2": [6, 5, 3, 3], "b2": [1, 6]})
    module, reference = _load(path), _load(path)
    assert [f.rule for f in run_engine("eqsat", module, [])] == ["merge_conv_sum"]
    _same_numbers(module, reference)


def test_convs_summed_that_differ_are_not_one_conv(tmp_path):
    """Other kernel sizes, a grouped conv, a sum that broadcasts: no merge_conv_sum."""
    body = "\n".join([
        "    k = add(conv(x, w1), conv(x, w3, padding = [(1, 1), (1, 1)]));",
        "    g = add(conv(x, w4, groups = 2), conv(x, w6, groups = 2));",
        "    b = add(conv(x, w1), conv(v, w5));",
    ])
    weights = {"w1": [8, 4, 1, 1], "w3": [8, 4, 3, 3], "w4": [8, 2, 1, 1], "w5": [8, 4, 1, 1], "w6": [8, 2, 1, 1]}
    path = _model(tmp_path, body, {"x": [1, 4, 6, 6], "v": [1, 4, 1, 1]}, "k, g, b", weights)
    module = _load(path)
    log = run_engine("eqsat", module, [])
    assert "merge_conv_sum" not in [f.rule for f in log]
    assert _ops(module).count("add") == 3


def test_concat_of_a_split_is_what_was_split(tmp_path):
    body = "    [a, b] = split(x, axis = 1, ratios = [1, 1]);\n    y = concat([relu(x), concat([a, b], axis = 1)], axis = 0);"
    path = _model(tmp_path, body, {"x": [2, 4]}, "y")
    module, reference = _load(path), _load(path)
    log = run_engine("eqsat", module, [])
    assert [f.rule for f in log] == ["concat_of_split"]
    assert _ops(module) == ["external", "relu", "concat"]
    _same_numbers(module, reference)


# ---- extraction -----------------------------------------------------------------------------------


@pytest.mark.parametrize("maker", ["chain", "merge", "sigmoid"])
def test_exact_extraction_is_never_worse_than_greedy_dag(tmp_path, maker):
    path = {"chain": lambda: _chain(tmp_path), "merge": lambda: _merge_model(tmp_path),
            "sigmoid": lambda: _model(tmp_path, SIGMOID, {"x": [4, 16]}, "y")}[maker]()
    rules = _rules()
    greedy, exact, reference = _load(path), _load(path), _load(path)
    greedy_log = run_engine("eqsat", greedy, rules)
    exact_log = run_engine("eqsat", exact, rules, extract="exact")
    assert exact_log.stats.extraction == "exact"
    assert exact_log.stats.cost_after <= greedy_log.stats.cost_after
    assert graph_cost(exact)[1] <= graph_cost(greedy)[1]
    _same_numbers(exact, reference)


def test_exact_extraction_past_its_budget_keeps_the_greedy_choice(tmp_path):
    path = _merge_model(tmp_path)
    rules = _rules()
    greedy, exact = _load(path), _load(path)
    run_engine("eqsat", greedy, rules)
    log = run_engine("eqsat", exact, rules, extract="exact", exact_steps=1)
    assert any("exact extraction stopped" in note for note in log.stats.notes)
    assert nnefopt.to_mlir(exact) == nnefopt.to_mlir(greedy)


def test_an_unknown_extraction_is_an_error(tmp_path):
    module = _load(_model(tmp_path, SIGMOID, {"x": [2]}, "y"))
    with pytest.raises(NNEFError, match="unknown extraction 'best'"):
        run_engine("eqsat", module, [], extract="best")


# ---- the pass -------------------------------------------------------------------------------------


def test_the_pass_runs_eqsat_and_explains(tmp_path, capsys):
    path = _model(tmp_path, SIGMOID + "\n    z = max(y, 0.0);", {"x": [4, 16]}, "z")
    module, reference = _load(path), _load(path)
    nnefopt.optimize(module, "rewrite{engine=eqsat explain=true extract=exact node-limit=1000 time-limit=10}")
    err = capsys.readouterr().err
    assert "rewrite: fold_sigmoid at" in err and "rewrite: fold_relu at" in err
    assert "eqsat: " in err and "e-nodes" in err and "exact extraction" in err
    assert _ops(module) == ["external", "sigmoid", "relu"]
    _same_numbers(module, reference)


@pytest.mark.parametrize("model", ["resnet8", "tiny_vit"])
def test_shared_models_keep_their_outputs(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module, reference = nnefopt.load(SHARED / model / "kt"), nnefopt.load(SHARED / model / "kt")
    log = run_engine("eqsat", module, _rules())
    assert log.stats.stopped == "saturated" and log.stats.nodes <= 50_000
    module.verify()
    assert graph_cost(module)[1] <= graph_cost(reference)[1]
    _same_numbers(module, reference)


# ---- which rules the pass keeps ----------------------------------------------------------------


def test_the_pass_keeps_a_rule_that_matches_only_what_another_rewrite_makes(tmp_path):
    """max(max(x, 0), 0): double_relu's relu is in no operation of the graph until
    fold_relu has fired twice; the pass must not drop it for that."""
    path = _model(tmp_path, "    y = max(max(x, 0.0), 0.0);", {"x": [2, 3]}, "y")
    module, reference = _load(path), _load(path)
    nnefopt.optimize(module, "rewrite{engine=eqsat}")
    assert _ops(module) == ["external", "relu"]
    _same_numbers(module, reference)


def test_rules_that_can_never_match_are_left_out():
    kept = {r.name for r in rules_that_could_fire(standard_rules(), {"external", "max"})}
    assert {"fold_relu", "fold_relu_commuted", "double_relu"} <= kept  # relu: made by fold_relu
    assert "fold_leaky_relu" not in kept  # no mul, and no rule that could fire makes one
    assert "fold_gelu" not in kept and "fold_softmax" not in kept
    # eqsat's merges make concats (and splits): a rule over a concat is kept there only
    over_concat = parse_rules("rule relu_of_concat( x: tensor<scalar>, y: tensor<scalar> ) "
                              "{ relu(concat([x, y], axis = 1)) => concat([relu(x), relu(y)], axis = 1); }", "t.rules")
    assert rules_that_could_fire(over_concat, {"relu"} | engine_products("greedy")) == []
    assert rules_that_could_fire(over_concat, {"relu"} | engine_products("eqsat")) == over_concat
