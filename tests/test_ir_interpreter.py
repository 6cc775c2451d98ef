"""The interpreter over the IR: every shared model's output through a plan, listeners
that see each SSA value once in program order, channel-last modules run as tagged
without being changed, and fold-constants, --check-numerics and nnef-run without the
exporter."""

from __future__ import annotations

import io
import json
import warnings
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest

import nnefopt
import nnefopt.export.from_ir as from_ir
from nnefopt.cli import main as nnef_opt
from nnefopt.dialects.nnef import GraphOp, ReturnOp
from nnefopt.errors import NNEFError, NNEFWarning
from nnefopt.interp.ir_binding import bind_operation, is_channel_last, is_declaration
from nnefopt.interp.ir_interpreter import Plan
from nnefopt.run_cli import main as nnef_run
from tests.models import SHARED, variants

VARIANTS = variants()


def load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        return nnefopt.load(path)


def reference(name: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """The model's input, recorded output and the tolerance the other tests use."""
    folder = SHARED / name.split("/")[0]
    info = json.loads((folder / "info.json").read_text())
    tolerance = {"rtol": 0, "atol": info["output_tolerance_abs"]} if "output_tolerance_abs" in info \
        else {"rtol": 1e-4, "atol": 1e-5}
    return np.load(folder / "input.npy"), np.load(folder / "output.npy"), tolerance


def graph_ops(module) -> list:
    graph = next(op for op in module.ops if isinstance(op, GraphOp))
    return list(graph.body.block.ops)


@pytest.mark.parametrize("name,path", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_every_variant_through_a_plan_gives_the_recorded_output(name, path):
    x, expected, tolerance = reference(name)
    plan = Plan(load(path))
    (graph_input,) = plan.inputs
    (output,) = plan.run({graph_input: x}).values()
    np.testing.assert_allclose(output, expected, **tolerance)


@pytest.mark.parametrize("name", ["mlp_digits/kt", "cnn_digits_q8/tract", "tiny_vit/t2n"])
def test_listeners_see_every_ssa_value_once_in_program_order(name):
    path = dict(VARIANTS)[name]
    module = load(path)
    x, _, _ = reference(name)
    seen_by_function, seen_by_method = [], []

    class Observer:
        def on_value(self, value, array, op):
            seen_by_method.append(value)

    def observe(value, array, op):
        assert value.owner is op and isinstance(array, np.ndarray)
        seen_by_function.append(value)

    plan = Plan(module)
    outputs = plan.run({next(iter(plan.inputs)): x}, [observe, Observer()])
    expected = [r for op in graph_ops(module) if not isinstance(op, ReturnOp) for r in op.results]
    assert seen_by_function == expected and seen_by_method == expected
    assert len(set(seen_by_function)) == len(expected)
    # the observed run computes what the plain one does
    (plain,) = plan.run({next(iter(plan.inputs)): x}).values()
    np.testing.assert_array_equal(plain, *outputs.values())


@pytest.mark.parametrize("name", ["cnn_digits/kt", "mlp_digits/t2n", "tiny_vit/kt", "mobilenetv2_035/tract"])
def test_prepared_kernels_compute_exactly_what_the_kernels_compute(name):
    """A plan prepares conv, linear, pooling and binary kernels once for their static
    shapes and known weights; each operation bound without that gives the same array."""
    module = load(dict(VARIANTS)[name])
    x, _, _ = reference(name)
    plan = Plan(module)
    seen = {}
    plan.run({next(iter(plan.inputs)): x}, [lambda value, array, op: seen.__setitem__(value, array)])
    slot_of = {value: i for i, value in enumerate(seen)}
    checked = 0
    for op in graph_ops(module):
        if isinstance(op, ReturnOp) or is_declaration(op):
            continue
        values = [None if v.owner is op else a for v, a in seen.items()]
        bind_operation(op, slot_of, plan.domain)(values)  # no constants: nothing prepared
        for result in op.results:
            np.testing.assert_array_equal(values[slot_of[result]], seen[result])
            checked += 1
    assert checked >= 5


def test_record_keys_intermediates_by_tensor_name():
    module = load(dict(VARIANTS)["mlp_digits/kt"])
    x, _, _ = reference("mlp_digits/kt")
    recorded = nnefopt.run(module, {"input": x}, record=True)
    named = [r.name_hint for op in graph_ops(module) for r in op.results if r.name_hint]
    assert set(named) <= set(recorded) and "variable1" in recorded
    np.testing.assert_array_equal(recorded["output"], nnefopt.run(module, {"input": x})["output"])


@pytest.mark.parametrize("name", ["cnn_digits/kt", "resnet8/kt", "tiny_unet/t2n", "mobilenetv2_035/tract"])
def test_channel_last_modules_run_as_tagged_and_stay_unchanged(name):
    path = dict(VARIANTS)[name]
    x, expected, tolerance = reference(name)
    module = nnefopt.optimize(load(path), "layout{to=nhwc}")
    assert any(is_channel_last(op) for op in graph_ops(module))
    before = nnefopt.to_mlir(module)
    plan = Plan(module)
    (output,) = plan.run({next(iter(plan.inputs)): x}).values()
    np.testing.assert_allclose(output, expected, **tolerance)
    assert nnefopt.to_mlir(module) == before


@pytest.fixture
def no_export(monkeypatch):
    """Every way of exporting a module fails (naming the values alone is allowed)."""

    def refuse(*args, **kwargs):
        raise AssertionError("the module was exported")

    monkeypatch.setattr(from_ir, "export_module", refuse)
    monkeypatch.setattr(from_ir._Exporter, "run", refuse)
    monkeypatch.setattr(nnefopt.api, "export_module", refuse)


def test_check_numerics_and_fold_constants_do_not_export(no_export):
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        status = nnef_opt([str(SHARED / "resnet8" / "kt"), "-q", "-p", "fold-constants,layout,cse",
                           "--check-numerics", "--emit", "mlir"])
    assert status == 0, err.getvalue()
    assert err.getvalue().count("numerics after ") == 3


def test_fold_constants_computes_without_exporting(no_export):
    module = load(dict(VARIANTS)["tiny_vit/t2n"])
    x, expected, tolerance = reference("tiny_vit/t2n")
    count = len(graph_ops(module))
    nnefopt.optimize(module, "fold-constants")
    assert len(graph_ops(module)) < count  # something was folded
    np.testing.assert_allclose(nnefopt.run(module, {"input": x})["output"], expected, **tolerance)


def test_nnef_run_does_not_export(no_export, tmp_path):
    out = io.StringIO()
    with redirect_stdout(out):
        assert nnef_run([str(SHARED / "mlp_digits" / "kt"), "--random-inputs", "1", "--stats"]) == 0
    assert out.getvalue().splitlines()[1].split()[0] == "input"  # rows in program order


MYSTERY = """version 1.0;
extension KHR_enable_fragment_definitions;

fragment mystery( input: tensor<scalar> ) -> ( output: tensor<scalar> );

graph G( input ) -> ( output )
{
    input = external<scalar>(shape = [1, 2]);
    hidden = relu(input);
    output = mystery(hidden);
}
"""


def test_an_operation_without_kernel_is_an_error_naming_it_and_its_place(tmp_path):
    (tmp_path / "graph.nnef").write_text(MYSTERY)
    plan = Plan(load(tmp_path))
    with pytest.raises(NNEFError) as caught:
        plan.run({"input": np.ones((1, 2), np.float32)})
    assert "no kernel for operation 'mystery'" in str(caught.value)
    assert f"{tmp_path / 'graph.nnef'}:10:" in str(caught.value)


def test_a_kernel_refusing_its_values_is_an_error_at_the_operation(tmp_path):
    (tmp_path / "graph.nnef").write_text("""version 1.0;
graph G( a, i ) -> ( c )
{
    a = external<scalar>(shape = [2, 3]);
    i = external<integer>(shape = [1]);
    c = gather(a, i, axis = 0);
}
""")
    plan = Plan(load(tmp_path))
    with pytest.raises(NNEFError) as caught:  # index 5 of an axis of 2
        plan.run({"a": np.ones((2, 3), np.float32), "i": np.array([5], np.int32)})
    assert "'gather' failed at run time" in str(caught.value) and ":6:" in str(caught.value)


def test_inputs_are_checked_by_name_and_shape():
    plan = Plan(load(dict(VARIANTS)["mlp_digits/kt"]))
    with pytest.raises(NNEFError, match="missing \\['input'\\]"):
        plan.run({"other": np.zeros((1, 64), np.float32)})
    with pytest.raises(NNEFError, match="has shape \\[2, 64\\], the graph declares \\[1, 64\\]"):
        plan.run({"input": np.zeros((2, 64), np.float32)})


FRAGMENTS = """version 1.0;
extension KHR_enable_fragment_definitions;
extension KHR_enable_operator_expressions;

fragment centred( x: tensor<scalar>, k: integer ) -> ( y: tensor<scalar> )
{
    mean, variance = moments(x, axes = [k + 0]);
    y = (x - mean) / sqrt(variance + 0.5) * scaled(x, factor = 2.0 * k);
}

fragment scaled( x: tensor<scalar>, factor: scalar ) -> ( y: tensor<scalar> )
{
    y = factor * abs(x) + 1.0;
}

fragment sized( x: tensor<scalar> ) -> ( y: tensor<scalar> )
{
    y = reshape(x, shape = [shape_of(x)[1], shape_of(x)[0]]);
}

graph G( input ) -> ( output, other )
{
    input = external<scalar>(shape = [2, 3]);
    output = centred(input, k = 1);
    other = sized(output);
}
"""


def test_fragment_bodies_compiled_once_compute_what_their_walk_computes(tmp_path, monkeypatch):
    from nnefopt.interp import ir_binding

    (tmp_path / "graph.nnef").write_text(FRAGMENTS)
    x = np.random.default_rng(3).standard_normal((2, 3)).astype(np.float32)
    compiled = Plan(load(tmp_path)).run({"input": x})
    monkeypatch.setattr(ir_binding, "compile_body", lambda *args: None)  # every body walked per run
    walked = Plan(load(tmp_path)).run({"input": x})
    for name in ("output", "other"):
        np.testing.assert_array_equal(compiled[name], walked[name])
    mean = x.mean(axis=1, keepdims=True)
    expected = (x - mean) / np.sqrt(x.var(axis=1, keepdims=True) + 0.5) * (2.0 * np.abs(x) + 1.0)
    np.testing.assert_allclose(compiled["output"], expected, rtol=1e-5)
    assert compiled["other"].shape == (3, 2)


def test_a_compiled_body_keeps_being_right_when_its_shapes_change(tmp_path):
    from nnefopt.interp.body_plan import Slot, compile_body

    (tmp_path / "graph.nnef").write_text(FRAGMENTS)
    plan = Plan(load(tmp_path))
    signature = plan.domain.signatures["scaled"]
    run = compile_body(plan.domain, signature, [Slot(0, None)], {"factor": 3.0}, None)
    for shape in [(2, 3), (4,), (2, 3)]:  # the first run prepares its kernels for (2, 3)
        x = np.random.default_rng(len(shape)).standard_normal(shape).astype(np.float32)
        np.testing.assert_allclose(run([x]), 3.0 * np.abs(x) + 1.0, rtol=1e-6)
    sized = compile_body(plan.domain, plan.domain.signatures["sized"], [Slot(0, None)], {}, None)
    assert sized is None  # the shape of a tensor unknown ahead of the run: walked per run
    static = compile_body(plan.domain, plan.domain.signatures["sized"], [Slot(0, (2, 3))], {}, None)
    assert static([np.zeros((2, 3), np.float32)]).shape == (3, 2)
    centred = compile_body(plan.domain, plan.domain.signatures["centred"], [Slot(0, (2, 3))], {"k": 1}, None)
    assert centred is not None  # a tuple of results and a nested fragment are compiled
