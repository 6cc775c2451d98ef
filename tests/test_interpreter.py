"""The reference interpreter on the real models: outputs equal onnxruntime's, digits
accuracy equals the recorded fp32 accuracy, and --check-numerics catches a pass that
changes the numbers, by name."""

from __future__ import annotations

import io
import json
import warnings
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

import numpy as np
import pytest
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, PatternRewriteWalker, RewritePattern, op_type_rewrite_pattern

import nnefopt
from nnefopt.cli import main as nnef_opt
from nnefopt.dialects.nnef import OPERATIONS
from nnefopt.errors import NNEFWarning
from nnefopt.passes import PASSES
from nnefopt.run_cli import main as nnef_run
from tests.models import SHARED, variants

FLOAT_VARIANTS = [(name, path) for name, path in variants() if not name.startswith("cnn_digits_q8")]


def load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        return nnefopt.load(path)


@pytest.mark.parametrize("name,path", FLOAT_VARIANTS, ids=[v[0] for v in FLOAT_VARIANTS])
def test_nnef_run_matches_onnxruntime(tmp_path, name, path):
    folder = SHARED / name.split("/")[0]
    with redirect_stderr(io.StringIO()):
        assert nnef_run([str(path), "--input", str(folder / "input.npy"), "-o", str(tmp_path)]) == 0
    (written,) = tmp_path.glob("*.npy")
    np.testing.assert_allclose(np.load(written), np.load(folder / "output.npy"), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model", ["mlp_digits", "cnn_digits"])
@pytest.mark.parametrize("variant", ["kt", "t2n", "tract.nnef.tgz"])
def test_digits_accuracy_is_the_recorded_one(model, variant):
    from nnefopt.interp.ir_interpreter import Plan

    folder = SHARED / model
    plan = Plan(load(folder / variant))
    (graph_input,) = plan.inputs
    images, labels = np.load(folder / "test.npy"), np.load(folder / "test_labels.npy")
    predictions = [int(np.argmax(*plan.run({graph_input: image[None]}).values())) for image in images]
    accuracy = float(np.mean(np.array(predictions) == labels))
    expected = json.loads((folder / "info.json").read_text())["fp32_test_accuracy_ort"]
    assert accuracy == pytest.approx(expected, abs=1e-9)


def test_nnef_run_stats_and_random_inputs():
    out = io.StringIO()
    with redirect_stdout(out):
        assert nnef_run([str(SHARED / "mlp_digits" / "kt"), "--random-inputs", "7", "--stats"]) == 0
    rows = {line.split()[0]: line.split() for line in out.getvalue().splitlines()[1:]}
    assert {"input", "variable1", "output"} <= set(rows)
    assert float(rows["output"][-4]) >= 0.0 and float(rows["output"][-3]) <= 1.0  # softmax: within [0, 1]


def test_nnef_run_refuses_a_wrong_input_shape(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 64), np.float32))
    err = io.StringIO()
    with redirect_stderr(err):
        status = nnef_run([str(SHARED / "mlp_digits" / "kt"), "--input", f"input={tmp_path / 'x.npy'}"])
    assert status == 1 and "input 'input' has shape [2, 64], the graph declares [1, 64]" in err.getvalue()


ReluOp = OPERATIONS["relu"]


class _ReluToAbs(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ReluOp, rewriter: PatternRewriter) -> None:
        rewriter.replace(op, OPERATIONS["abs"](operands=[op.x], result_types=[op.y.type]))


@dataclass(frozen=True)
class CorruptRelu(ModulePass):
    """Test only: replaces relu by abs, which changes the numbers."""

    name = "test-corrupt-relu"

    def apply(self, ctx, op) -> None:
        PatternRewriteWalker(_ReluToAbs()).rewrite_module(op)


def test_check_numerics_names_the_pass_that_breaks_outputs():
    nnefopt.register_pass(CorruptRelu)
    model = str(SHARED / "resnet8" / "kt")
    try:
        err = io.StringIO()
        with redirect_stderr(err), redirect_stdout(io.StringIO()):
            status = nnef_opt([model, "-q", "-p", "cse,test-corrupt-relu,dce", "--check-numerics"])
        assert status == 1
        lines = err.getvalue().splitlines()
        assert lines[0].startswith("numerics after cse: output: max abs error 0")
        assert "error: pass 'test-corrupt-relu' changed output 'output'" in lines[-1]
        with redirect_stderr(io.StringIO()), redirect_stdout(io.StringIO()):
            assert nnef_opt([model, "-q", "-p", "cse,dce", "--check-numerics"]) == 0
    finally:
        PASSES.pop("test-corrupt-relu")


def test_quantized_model_matches_pytorch_within_one_step():
    from nnefopt.interp.ir_interpreter import Plan

    folder = SHARED / "cnn_digits_q8"
    info = json.loads((folder / "info.json").read_text())
    plan = Plan(load(folder / "tract.nnef.tgz"))
    output = plan.run({"input": np.load(folder / "input.npy")})["output"]
    assert np.abs(output - np.load(folder / "output.npy")).max() <= info["output_tolerance_abs"]
    images, labels = np.load(folder / "test.npy"), np.load(folder / "test_labels.npy")
    predictions = [int(np.argmax(plan.run({"input": image[None]})["output"])) for image in images]
    assert float(np.mean(np.array(predictions) == labels)) == pytest.approx(info["int8_test_accuracy_torch"], abs=1e-9)


def test_quantized_outputs_lie_on_their_grid():
    """Every quantized tensor takes only values (code - zero_point) * scale."""
    from nnefopt.interp.ir_binding import quant_entry
    from nnefopt.interp.ir_interpreter import Plan

    folder = SHARED / "cnn_digits_q8"
    seen = []  # every computed value with its quantization entry (as a listener sees them)
    Plan(load(folder / "tract.nnef.tgz")).run({"input": np.load(folder / "input.npy")},
                                               [lambda value, array, op: seen.append((value, quant_entry(value), array))])
    checked = 0
    for value, quant, array in seen:
        if quant is None or array.dtype.kind != "f":
            continue
        scale, zero = quant.attributes["scale"], quant.attributes["zero_point"]
        codes = array / np.float32(scale) + zero
        assert np.allclose(codes, np.round(codes), atol=1e-3), value.name_hint
        checked += 1
    assert checked >= 8


@pytest.mark.parametrize("pass_name", ["cse", "dce", "lower-tract", "fold-constants", "canonicalize", "fuse", "default",
                                       "layout", "portable-spelling"])
@pytest.mark.parametrize("name,path", variants(), ids=[v[0] for v in variants()])
def test_each_pass_keeps_every_models_outputs(name, path, pass_name):
    folder = SHARED / name.split("/")[0]
    module = load(path)
    graph_input = next(op for op in module.ops if op.name == "nnef.graph").inputs.data[0].data
    inputs = {graph_input: np.load(folder / "input.npy")}
    before = nnefopt.run(module, inputs)
    after = nnefopt.run(nnefopt.optimize(module, pass_name), inputs)
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_allclose(after[key], before[key], rtol=1e-4, atol=1e-5)
    # and the reference itself (the quantized model: within its one output step)
    info = json.loads((folder / "info.json").read_text())
    tolerance = {"rtol": 0, "atol": info["output_tolerance_abs"]} if "output_tolerance_abs" in info \
        else {"rtol": 1e-4, "atol": 1e-5}
    (output,) = after.values()
    np.testing.assert_allclose(output, np.load(folder / "output.npy"), **tolerance)
