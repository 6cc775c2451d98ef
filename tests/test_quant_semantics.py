"""Integer semantics of quantized models in the interpreter: a quantized conv/linear/matmul
computed as an int8 engine does agrees with the specification's float simulation within
one output step (and differs exactly on ties), with a float64 reference, and with tract
bit for bit on cnn_digits_q8; its accuracy is the int8 accuracy PyTorch measured; codes
come out with the entry's dtype. Element-wise functions of codes truncate as tract's do."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import nnefopt
from nnefopt.dialects.nnef import from_attribute
from nnefopt.errors import NNEFError
from nnefopt.export.from_ir import graph_of
from nnefopt.interp.integer_binding import bind_integer, codes_of
from nnefopt.interp.ir_binding import quant_entry
from nnefopt.interp.ir_interpreter import Plan
from nnefopt.interp.kernels_window import conv
from nnefopt.run_cli import main as nnef_run
from tests.models import SHARED
from tests.quant_modules import SMALL, TIES, entry, load, write_model
from tests.tract_integer import output_steps, tract_integer_agreement

DIGITS = SHARED / "cnn_digits_q8"


def digits_module():
    return load(DIGITS / "tract.nnef.tgz")


def digits_samples() -> np.ndarray:
    return np.concatenate([np.load(DIGITS / "calib.npy"), np.load(DIGITS / "test.npy")])


def integer_ops(module) -> list[str]:
    """The operations the integer arithmetic computes (bound by bind_integer)."""
    ops = list(graph_of(module).body.block.ops)
    slot_of = {r: i for i, r in enumerate(r for op in ops for r in op.results)}
    return [op.name for op in ops if bind_integer(op, slot_of) is not None]


def steps_apart(a: np.ndarray, b: np.ndarray, step: float) -> np.ndarray:
    return np.abs(a.astype(np.float64) - b.astype(np.float64)) / step


def random_inputs(plan: Plan, seed: int, spread: float = 2.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.normal(0, spread, shape).astype(np.float32) for name, (shape, _, _) in plan.inputs.items()}


# ---- integer vs float simulation -----------------------------------------------------------


def test_integer_and_float_agree_within_one_step_on_cnn_digits_q8():
    module = digits_module()
    assert integer_ops(module) == ["nnef.conv", "nnef.conv", "nnef.linear"]
    integer, floating = Plan(module, arithmetic="integer"), Plan(module, arithmetic="float")
    (step,) = output_steps(module)
    worst = 0.0
    for x in digits_samples():
        a, b = integer.run({"input": x[None]})["output"], floating.run({"input": x[None]})["output"]
        worst = max(worst, float(steps_apart(a, b, step).max()))
    assert worst <= 1.0 + 1e-6


@pytest.mark.parametrize("name", sorted(SMALL))
def test_integer_and_float_agree_within_one_step_on_small_modules(name, tmp_path):
    module = load(SMALL[name](tmp_path / name))
    assert len(integer_ops(module)) == 1  # the conv/linear/matmul runs in integers
    integer, floating = Plan(module, arithmetic="integer"), Plan(module, arithmetic="float")
    steps = output_steps(module)
    compared = 0
    for seed in range(20):
        inputs = random_inputs(integer, seed)
        a, b = integer.run(inputs), floating.run(inputs)
        for key, step in zip(a, steps):
            assert steps_apart(a[key], b[key], step).max() <= 1.0 + 1e-6
            compared += a[key].size
    assert compared >= 20 * 12


def tie_model(folder: Path) -> Path:
    """linear with unit input and filter scales and an output scale of 2: the
    accumulator is the dot product, its real output acc / 2 an exact tie for odd acc."""
    quant = {"xq": entry(1.0, 0, signed=True), "w": entry(1.0, 0, signed=True), "y": entry(2.0, 0, signed=True)}
    weights = {"w": np.ones((1, 4), np.int8)}
    return write_model(folder, {"x": [6, 4]}, ["xq = copy(x)", "y = linear(xq, w)"], ["y"], quant, weights)


def test_integer_and_float_differ_by_one_step_exactly_on_ties(tmp_path):
    """The specification rounds x.5 up (floor(x + 0.5)); an int8 engine's requantization
    rounds it to even. Sums 1, 3, 5, -1, -3, 4 (halves 0.5, 1.5, 2.5, -0.5, -1.5, 2)."""
    module = load(tie_model(tmp_path / "tie"))
    x = np.array([[1, 0, 0, 0], [1, 1, 1, 0], [2, 2, 1, 0], [-1, 0, 0, 0], [-1, -1, -1, 0], [1, 1, 1, 1]], np.float32)
    integer = nnefopt.run(module, {"x": x}, codes=True)["y"].ravel().tolist()
    floating = nnefopt.run(module, {"x": x}, arithmetic="float", codes=True)["y"].ravel().tolist()
    sums = x.sum(axis=1)
    assert integer == [round(Fraction(int(s), 2)) for s in sums] == [0, 2, 2, 0, -2, 2]  # half to even
    assert floating == [int(np.floor(s / 2 + 0.5)) for s in sums] == [1, 2, 3, 0, -1, 2]  # half up
    assert [abs(a - b) for a, b in zip(integer, floating)] == [1, 0, 1, 0, 1, 0]


def test_input_quantization_ties_go_to_even_in_integer_arithmetic(tmp_path):
    """A float input quantized by its entry: tract divides in float32 and rounds half to
    even; the specification's round takes halves up."""
    folder = write_model(tmp_path / "q", {"x": [6]}, ["y = copy(x)"], ["y"], {"y": entry(0.25, 10)}, {})
    x = (np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5]) * 0.25).astype(np.float32)
    module = load(folder)
    assert nnefopt.run(module, {"x": x}, codes=True)["y"].tolist() == [8, 8, 10, 10, 12, 12]
    assert nnefopt.run(module, {"x": x}, arithmetic="float", codes=True)["y"].tolist() == [8, 9, 10, 11, 12, 13]
    # a quantized graph input is quantized by its entry the same way (and taken as reals)
    folder = write_model(tmp_path / "i", {"x": [6]}, ["y = copy(x)"], ["y"], {"x": entry(0.25, 10)}, {})
    y = nnefopt.run(load(folder), {"x": x})["y"]
    assert y.dtype == np.float32 and (y / 0.25).tolist() == [-2, -2, 0, 0, 2, 2]


# ---- the integer result against a float64 reference ----------------------------------------------


def float64_codes(module, inputs: dict) -> np.ndarray:
    """The quantized operation's output codes computed in float64 from the reals of its
    operands: round(real / output scale) + zero point, clamped; the reals of the
    operands are those the interpreter computes."""
    floating = nnefopt.run(module, inputs, record=True, arithmetic="float")
    ops = [op for op in graph_of(module).body.block.ops if op.name in ("nnef.conv", "nnef.linear", "nnef.matmul")]
    (op,) = ops
    names = Plan(module).names
    reals = [np.asarray(floating[names[v]] if names.get(v) in floating else _weight(v), np.float64)
             for v in op.operands]
    if op.name == "nnef.conv":
        def attribute(key, default):
            return from_attribute(op.properties[key]) if key in op.properties else default

        padding = [tuple(p) for p in attribute("padding", [])]
        bias = reals[2].reshape(1, -1, 1, 1) if len(reals) > 2 else 0.0
        real = conv(reals[0], reals[1], 0.0, "constant", padding, attribute("stride", []), attribute("dilation", []),
                    attribute("groups", 1)) + bias
    elif op.name == "nnef.linear":
        real = reals[0] @ reals[1].T + (reals[2].reshape(1, -1) if len(reals) > 2 else 0.0)
    else:
        real = reals[0] @ reals[1].T  # the small matmul transposes B
    out = codes_of(quant_entry(op.results[0]))
    return np.clip(np.rint(real / float(out.scale[0])) + out.zero[0], out.low, out.high)


def _weight(value):
    from nnefopt.interp.ir_binding import weight_value

    return weight_value(value.owner)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_integer_result_against_a_float64_reference(name, tmp_path):
    """Codes from int32 accumulation and fixed-point requantization are the float64
    result's rounded codes, but for a real result within a rounding error of a tie."""
    module = load(SMALL[name](tmp_path / name))
    plan = Plan(module)
    (out_name,) = [n for n, _ in plan.outputs]
    differ = total = 0
    for seed in range(10):
        inputs = random_inputs(plan, 100 + seed, spread=3.0)
        recorded = nnefopt.run(module, inputs, record=True)
        quantized_op = next(op for op in graph_of(module).body.block.ops if op.name in
                            ("nnef.conv", "nnef.linear", "nnef.matmul"))
        result = recorded[plan.names[quantized_op.results[0]]]
        codes = codes_of(quant_entry(quantized_op.results[0])).of(result)
        reference = float64_codes(module, inputs)
        assert np.abs(codes.astype(np.int64) - reference).max() <= 1
        differ += int(np.count_nonzero(codes != reference))
        total += codes.size
    assert differ <= total // 100  # ties and float32 scale products only
    assert out_name


# ---- accuracy, codes, the CLI --------------------------------------------------------------


def test_cnn_digits_q8_int8_accuracy_by_integer_semantics():
    info = json.loads((DIGITS / "info.json").read_text())
    images, labels = np.load(DIGITS / "test.npy"), np.load(DIGITS / "test_labels.npy")
    plan = Plan(digits_module(), arithmetic="integer")
    predictions = np.array([int(np.argmax(plan.run({"input": image[None]})["output"])) for image in images])
    accuracy = float(np.mean(predictions == labels))
    assert accuracy == pytest.approx(info["int8_test_accuracy_torch"], abs=1e-9)
    assert accuracy >= info["fp32_test_accuracy_torch"] - 0.005


@pytest.mark.parametrize("name, dtype", [("conv_per_channel", np.int8), ("linear_no_bias", np.uint8),
                                         ("matmul_activations", np.int8), ("depthwise_no_bias", np.uint8)])
def test_codes_are_the_outputs_integer_codes(name, dtype, tmp_path):
    module = load(SMALL[name](tmp_path / name))
    plan = Plan(module)
    inputs = random_inputs(plan, 5)
    (key,) = [n for n, _ in plan.outputs]
    reals = nnefopt.run(module, inputs)[key]
    codes = nnefopt.run(module, inputs, codes=True)[key]
    assert reals.dtype == np.float32 and codes.dtype == dtype and codes.shape == reals.shape
    graph = graph_of(module)
    result = next(op.operands[0] for op in graph.body.block.ops if op.name == "nnef.return")
    q = quant_entry(result).attributes
    np.testing.assert_array_equal(((codes.astype(np.int64) - q["zero_point"]) * np.float32(q["scale"])).astype(np.float32),
                                  reals)
    assert len(np.unique(codes)) > 3  # not all saturated
    # an output without an entry stays real
    digits = nnefopt.run(digits_module(), {"input": np.load(DIGITS / "input.npy")}, codes=True)["output"]
    assert digits.dtype == np.float32


def test_unknown_arithmetic_is_an_nnef_error():
    with pytest.raises(NNEFError, match="unknown arithmetic 'fixed'"):
        nnefopt.run(digits_module(), {"input": np.load(DIGITS / "input.npy")}, arithmetic="fixed")


def test_nnef_run_takes_arithmetic_and_codes(tmp_path):
    model = SMALL["linear_no_bias"](tmp_path / "m")
    x = np.random.default_rng(2).normal(0, 2, (3, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    for flags, out in [([], "real"), (["--codes"], "codes"), (["--arithmetic", "float", "--codes"], "float")]:
        with redirect_stdout(io.StringIO()):
            assert nnef_run([str(model), "--input", f"x={tmp_path / 'x.npy'}", "-o", str(tmp_path / out), *flags]) == 0
    module = load(model)
    np.testing.assert_array_equal(np.load(tmp_path / "real" / "y.npy"), nnefopt.run(module, {"x": x})["y"])
    codes = np.load(tmp_path / "codes" / "y.npy")
    assert codes.dtype == np.uint8
    np.testing.assert_array_equal(codes, nnefopt.run(module, {"x": x}, codes=True)["y"])
    np.testing.assert_array_equal(np.load(tmp_path / "float" / "y.npy"),
                                  nnefopt.run(module, {"x": x}, arithmetic="float", codes=True)["y"])


# ---- tract -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("q8") / "out"
    nnefopt.save(digits_module(), folder)
    return folder


def test_tract_agrees_bit_for_bit_with_integer_semantics_on_cnn_digits_q8(digits_export):
    agreement = tract_integer_agreement(digits_export, digits_samples())
    assert agreement.total == 797 * 10
    assert agreement.tract_types[0].startswith("1,10,qu8")  # tract computed it in integers
    assert (agreement.max_steps, agreement.n_diff) == (0.0, 0)


def test_tract_agrees_on_ties_of_the_input_quantization(digits_export):
    """Inputs halfway between two input codes: tract rounds them to even, as ours does."""
    codes = np.random.default_rng(4).integers(0, 255, (200, 1, 8, 8))
    ties = ((codes + 0.5) * np.float32(0.0039)).astype(np.float32)
    agreement = tract_integer_agreement(digits_export, ties)
    assert (agreement.max_steps, agreement.n_diff) == (0.0, 0)
    # while the specification's float simulation rounds them up, and differs
    module, (step,) = load(digits_export), output_steps(load(digits_export))
    integer, floating = Plan(module), Plan(module, arithmetic="float")
    apart = [steps_apart(integer.run({"input": x[None]})["output"], floating.run({"input": x[None]})["output"], step).max()
             for x in ties[:50]]
    assert max(apart) > 0.5


@pytest.mark.parametrize("name", ["conv_signed", "linear_no_bias", "depthwise_no_bias"])
def test_tract_agrees_bit_for_bit_on_small_quantized_modules(name, tmp_path):
    """Signed int8 activations, zero points on inputs and outputs, with and without a
    bias, depthwise and strided: tract's integer results are ours."""
    module = load(SMALL[name](tmp_path / name))
    nnefopt.save(module, tmp_path / "out")
    plan = Plan(module)
    ((input_name, (shape, _, _)),) = plan.inputs.items()
    samples = np.random.default_rng(8).normal(0, 2.5, (40 * shape[0], *shape[1:])).astype(np.float32)
    agreement = tract_integer_agreement(tmp_path / "out", samples)
    assert agreement.tract_types[0].split(",")[-1].startswith(("qi8", "qu8"))
    assert agreement.total == 40 * int(np.prod(next(iter(plan.run({input_name: samples[:shape[0]]}).values())).shape))
    assert (agreement.max_steps, agreement.n_diff) == (0.0, 0)


@pytest.mark.parametrize("name", sorted(TIES))
def test_tract_agrees_on_exact_ties_of_the_requantization(name, tmp_path):
    """Half the accumulators are exact ties and the output zero point is odd: tract's
    conv requantizes in fixed point (ties to even, then the zero point), its linear in
    float32 (the zero point added before rounding to even); ours does each the same."""
    module = load(TIES[name](tmp_path / name))
    nnefopt.save(module, tmp_path / "out")
    ((input_name, (shape, _, _)),) = Plan(module).inputs.items()
    samples = np.random.default_rng(6).integers(-4, 5, (50 * shape[0], *shape[1:])).astype(np.float32)
    assert tract_integer_agreement(tmp_path / "out", samples)[:2] == (0.0, 0)
    # the specification's float simulation rounds those ties up: it differs
    integer, floating = Plan(module), Plan(module, arithmetic="float")
    differ = sum(int(np.count_nonzero(integer.run({input_name: x})[k] != floating.run({input_name: x})[k]))
                 for x in samples.reshape(50, *shape) for k in [integer.outputs[0][0]])
    assert differ > 0


def test_the_khronos_parser_loads_the_quantized_export(digits_export):
    import nnef

    graph = nnef.load_graph(str(digits_export))
    nnef.infer_shapes(graph)
    quantized = {name: t.quantization for name, t in graph.tensors.items() if t.quantization}
    assert quantized["fc__fc_linear0"]["op-name"] == "zero_point_linear_quantize"
    assert int(quantized["fc__fc_linear0"]["zero_point"]) == 119
    assert len(quantized) >= 10


# sigmoid, tanh, exp of codes, each output entry unsigned and signed (zero point odd)
ELEMENT_WISE = [("sigmoid", entry(1 / 255)), ("sigmoid", entry(1 / 250, -125, signed=True)),
                ("tanh", entry(2 / 255, 127)), ("tanh", entry(2 / 251, 3, signed=True)),
                ("exp", entry(0.08, 0)), ("exp", entry(0.08, -128, signed=True))]


@pytest.mark.parametrize("function,out", ELEMENT_WISE, ids=[f"{f}-{'i8' if q['signed'] else 'u8'}"
                                                             for f, q in ELEMENT_WISE])
def test_tract_agrees_bit_for_bit_on_element_wise_functions_of_every_code(function, out, tmp_path):
    """tract computes f(dequantized code) in float32 and casts f / scale + zero point to
    the code type, truncating toward zero; ours does the same on all 256 input codes,
    while the specification's float simulation rounds, up to one step away."""
    folder = write_model(tmp_path / "m", {"x": [1, 256]}, ["xq = copy(x)", f"y = {function}(xq)"], ["y"],
                         {"xq": entry(0.03, 128), "y": out}, {})
    every_code = ((np.arange(256, dtype=np.float32) - 128) * np.float32(0.03)).reshape(1, 256)
    agreement = tract_integer_agreement(folder, every_code)
    assert agreement.total == 256 and (agreement.max_steps, agreement.n_diff) == (0.0, 0)
    module = load(folder)
    integer, floating = Plan(module), Plan(module, arithmetic="float")
    apart = steps_apart(integer.run({"x": every_code})["y"], floating.run({"x": every_code})["y"], out["scale"])
    assert apart.max() <= 1.0 + 1e-4 and np.count_nonzero(apart > 0.5) > 0
