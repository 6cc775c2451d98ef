"""The optimization passes (issue 6): what they leave of the shared models, the numbers
they keep, and the patterns they must handle that the shared models do not show."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import nnefopt
from nnefopt.errors import NNEFWarning
from nnefopt.frontend.tensor_file import write_tensor
from nnefopt.passes.rewriting import is_known
from nnefopt.passes.stats import DATA_OPERATIONS, count_operations, operation_histogram, operation_name
from tests.models import MODELS, SHARED, variants
from tests.peers import onnxruntime_optimized
from tests.test_roundtrip import khronos_load
from tests.tract_oracle import run_tract

T2N = [m for m in MODELS if (SHARED / m / "t2n").is_dir()]


def _load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        return nnefopt.load(path)


def _graph(module):
    return next(op for op in module.ops if op.name == "nnef.graph")


def _tolerance(folder, expected) -> dict:
    info = json.loads((folder / "info.json").read_text())
    if "output_tolerance_abs" in info:  # the quantized model: one output step
        return {"rtol": 0, "atol": info["output_tolerance_abs"]}
    return {"rtol": 1e-4, "atol": 1e-5}


@pytest.mark.parametrize("name,path", variants(), ids=[v[0] for v in variants()])
def test_default_pipeline_keeps_the_reference_outputs(name, path):
    folder = SHARED / name.split("/")[0]
    module = nnefopt.optimize(_load(path), "default")
    (output,) = nnefopt.run(module, {_graph(module).inputs.data[0].data: np.load(folder / "input.npy")}).values()
    expected = np.load(folder / "output.npy")
    np.testing.assert_allclose(output, expected, **_tolerance(folder, expected))


@pytest.mark.parametrize("model", T2N)
def test_torch_to_nnef_models_end_as_small_as_the_peers(model):
    module = nnefopt.optimize(_load(SHARED / model / "t2n"), "default")
    histogram = operation_histogram(module)
    assert "copy" not in histogram
    for op in _graph(module).body.block.ops:
        name = operation_name(op)
        if name in DATA_OPERATIONS or op.name == "nnef.return":
            continue
        assert not (op.operands and all(is_known(v) for v in op.operands)), f"{name} computes on constants only"
        if name == "batch_normalization":
            assert operation_name(op.operands[0].owner) not in ("conv", "deconv", "linear")
    count = count_operations(module)
    assert count <= count_operations(_load(SHARED / model / "kt"))
    assert count <= onnxruntime_optimized(SHARED / model / "model.onnx")


@pytest.mark.parametrize("name,path", variants(), ids=[v[0] for v in variants()])
def test_optimized_models_load_in_khronos_and_run_in_tract(tmp_path, name, path):
    folder = SHARED / name.split("/")[0]
    nnefopt.save(nnefopt.optimize(_load(path), "default"), tmp_path / "out")
    khronos_load(tmp_path / "out")
    (output,) = run_tract(tmp_path / "out", [np.load(folder / "input.npy")])
    expected = np.load(folder / "output.npy")
    info = json.loads((folder / "info.json").read_text())
    tolerance = info.get("output_tolerance_abs", 1e-4 * float(np.abs(expected).max()))
    assert float(np.abs(output - expected).max()) <= tolerance


# ---- patterns the shared models do not show: each checked by the interpreter ---------

_rng = np.random.default_rng(7)


def _constant(shape, positive=False) -> str:
    values = _rng.uniform(0.5, 1.5, shape) if positive else _rng.standard_normal(shape)
    return f"constant<scalar>(shape = {list(shape)}, value = [{', '.join(f'{v:.6f}' for v in values.reshape(-1))}])"


def _document(inputs: dict[str, list[int]], body: str) -> str:
    externals = "\n".join(f"    {n} = external<scalar>(shape = {s});" for n, s in inputs.items())
    prelude = ""
    if "fragment" in body:  # fragments first, then the graph
        prelude, body = body.split("\n\n", 1)
        prelude = f"extension KHR_enable_fragment_definitions, KHR_enable_operator_expressions;\n{prelude}\n"
    return f"version 1.0;\n{prelude}graph G( {', '.join(inputs)} ) -> ( y )\n{{\n{externals}\n{body}\n}}\n"


# torch-to-nnef's fragments, as it writes them
T2N_FRAGMENTS = """fragment layer_norm_with_affine( x: tensor<scalar>, gamma: tensor<scalar>, beta: tensor<scalar>,
    mean_axes: integer[], eps: scalar ) -> ( y: tensor<scalar> )
{
    mean = sum_reduce(x, axes = mean_axes, normalize = true);
    sub_mean = x - mean;
    inv_stdvar = rsqrt(sum_reduce(sqr(sub_mean), axes = mean_axes, normalize = true) + eps);
    y = sub_mean * inv_stdvar * gamma + beta;
}
fragment gelu( x: tensor<scalar> ) -> ( y: tensor<scalar> )
{
    y = 0.5 * x * ( 1.0 + erf(x * 0.7071067811865475));
}
"""


def _batch_norm(source: str, channels: int) -> str:
    return (f"    y = batch_normalization({source}, {_constant([1, channels])}, {_constant([1, channels], True)}, "
            f"{_constant([1, channels])}, {_constant([1, channels])}, epsilon = 0.001);")


CASES = {
    "deconv_bn_groups_1": ({"x": [1, 4, 5, 5]}, f"    d = deconv(x, {_constant([4, 6, 3, 3])}, {_constant([1, 6])}, "
                           "stride = [2, 2]);\n" + _batch_norm("d", 6), {"deconv": 1}),
    "deconv_bn_groups_2": ({"x": [1, 4, 5, 5]}, f"    d = deconv(x, {_constant([4, 3, 3, 3])}, groups = 2);\n"
                           + _batch_norm("d", 6), {"deconv": 1}),
    "depthwise_conv_scale_shift": ({"x": [1, 3, 6, 6]}, f"    c = conv(x, {_constant([3, 1, 3, 3])}, groups = 0);\n"
                                   f"    m = mul(c, {_constant([1, 3, 1, 1])});\n"
                                   f"    y = add({_constant([1, 3])}, m);", {"conv": 1}),
    "linear_bn_relu": ({"x": [2, 5]}, f"    l = linear(x, {_constant([4, 5])}, {_constant([1, 4])});\n"
                       + _batch_norm("l", 4).replace("    y = ", "    b = ") + "\n    y = relu(b);", {"linear_relu": 1}),
    "conv_sub_clamp": ({"x": [1, 2, 4, 4]}, f"    c = conv(x, {_constant([3, 2, 3, 3])}, padding = [(1, 1), (1, 1)]);\n"
                       f"    s = sub(c, {_constant([1, 3])});\n    y = clamp(s, 0.0, 6.0);", {"conv_clamp": 1}),
    "conv_elu": ({"x": [1, 2, 4, 4]}, f"    c = conv(x, {_constant([3, 2, 1, 1])});\n    y = elu(c, alpha = 0.5);", {"conv_elu": 1}),
    "linear_tanh": ({"x": [3, 4]}, f"    l = linear(x, {_constant([2, 4])});\n    y = tanh(l);", {"linear_tanh": 1}),
    "pad_conv": ({"x": [1, 2, 5, 5]}, "    p = pad(x, padding = [(0, 0), (0, 0), (2, 0), (1, 1)]);\n"
                 f"    y = conv(p, {_constant([2, 2, 3, 3])}, padding = [(1, 1), (0, 0)], stride = [2, 1]);", {"conv": 1}),
    "pad_max_pool": ({"x": [1, 2, 5, 5]}, "    p = pad(x, padding = [(0, 0), (0, 0), (1, 1), (1, 1)]);\n"
                     "    y = max_pool(p, size = [1, 1, 3, 3], padding = [(0, 0), (0, 0), (0, 0), (0, 0)]);", {"max_pool": 1}),
    "pad_avg_pool": ({"x": [1, 2, 5, 5]}, "    p = pad(x, padding = [(0, 0), (0, 0), (1, 1), (0, 2)]);\n"
                     "    y = avg_pool(p, size = [1, 1, 2, 2], stride = [1, 1, 2, 2], "
                     "padding = [(0, 0), (0, 0), (0, 0), (0, 0)]);", {"avg_pool": 1}),
    "upsample_idiom": ({"x": [1, 2, 3, 4]}, "    r = reshape(x, shape = [1, 2, 3, 1, 4, 1]);\n"
                       "    t = tile(r, repeats = [1, 1, 1, 2, 1, 3]);\n    y = reshape(t, shape = [1, 2, 6, 12]);", {"nearest_upsample": 1}),
    "constant_chains": ({"x": [2, 3]}, f"    a = mul(x, {_constant([1, 3])});\n    b = mul(2.0, a);\n"
                        f"    c = add(b, {_constant([2, 3])});\n    y = add(c, 1.5);", {"mul": 1, "add": 1}),
    "layer_norm_spelled": ({"x": [2, 3, 8]}, "    m = mean_reduce(x, axes = [2]);\n    d = sub(x, m);\n"
                           "    v = mean_reduce(pow(d, 2.0), axes = [2]);\n    n = div(d, sqrt(add(v, 1e-5)));\n"
                           f"    y = add(mul(n, {_constant([1, 1, 8])}), {_constant([1, 1, 8])});",
                           {"layer_normalization": 1}),
    "gelu_spelled": ({"x": [2, 8]}, f"    l = linear(x, {_constant([8, 8])});\n"
                     "    y = mul(mul(l, add(erf(div(l, 1.4142135)), 1.0)), 0.5);", {"linear": 1, "gelu_erf": 1}),
    "torch_to_nnef_fragments": ({"x": [2, 3, 8]}, T2N_FRAGMENTS + "\n"
                                f"    n = layer_norm_with_affine(x, {_constant([1, 1, 8])}, {_constant([1, 1, 8])}, "
                                "mean_axes = [2], eps = 1e-5);\n    y = gelu(n);",
                                {"layer_normalization": 1, "gelu_erf": 1}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_default_pipeline_keeps_the_numbers_of_each_pattern(tmp_path, case):
    inputs, body, expected = CASES[case]
    (tmp_path / "graph.nnef").write_text(_document(inputs, body))
    module = _load(tmp_path / "graph.nnef")
    values = {name: _rng.standard_normal(shape).astype(np.float32) for name, shape in inputs.items()}
    before = nnefopt.run(module, values)["y"]
    count = count_operations(module)
    nnefopt.optimize(module, "default")
    after = nnefopt.run(module, values)["y"]
    assert dict(operation_histogram(module)) == expected
    assert count_operations(module) <= count
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pipeline", ["layout,default", "default,layout"])
def test_layout_and_the_pipeline_compose_in_either_order(pipeline):
    """Fusing leaves channel-last operations alone (their channels are not on axis 1);
    after fusing, layout takes the fused operations channel-last too."""
    folder = SHARED / "resnet8"
    module = nnefopt.optimize(_load(folder / "t2n"), pipeline)
    (output,) = nnefopt.run(module, {"input": np.load(folder / "input.npy")}).values()
    np.testing.assert_allclose(output, np.load(folder / "output.npy"), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model", ["resnet8", "tiny_unet", "mlp_digits"])
def test_nnefopt_reads_back_what_the_pipeline_wrote(tmp_path, model):
    """The fused fragments nnefopt writes (a tuple-typed padding among their attributes)
    are read and run again by nnefopt itself."""
    folder = SHARED / model
    nnefopt.save(nnefopt.optimize(_load(folder / "t2n"), "default"), tmp_path / "out")
    module = _load(tmp_path / "out")
    (output,) = nnefopt.run(module, {"input": np.load(folder / "input.npy")}).values()
    np.testing.assert_allclose(output, np.load(folder / "output.npy"), rtol=1e-4, atol=1e-5)


def _two_variables_of_one_label(folder, outputs: str):
    write_tensor(folder / "w.dat", _rng.standard_normal([1, 3]).astype(np.float32))
    (folder / "graph.nnef").write_text(
        f"version 1.0;\ngraph G( x ) -> ( {outputs} )\n{{\n    x = external<scalar>(shape = [2, 3]);\n"
        "    w1 = variable<scalar>(shape = [1, 3], label = 'w');\n"
        "    w2 = variable<scalar>(shape = [1, 3], label = 'w');\n"
        "    a = mul(x, w1);\n    b = mul(x, w2);\n    unused = exp(neg(b));\n"
        "    y = add(exp(a), exp(b));\n}\n")
    return _load(folder)


def test_canonicalize_merges_through_variables_of_one_label_and_drops_what_it_frees(tmp_path):
    """The second `w` is the first, so the two products are one, and so are their
    `exp`s; the chain nothing reads is gone too."""
    module = _two_variables_of_one_label(tmp_path, "y")
    values = {"x": _rng.standard_normal([2, 3]).astype(np.float32)}
    before = nnefopt.run(module, values)["y"]
    nnefopt.optimize(module, "canonicalize")
    assert dict(operation_histogram(module)) == {"mul": 1, "exp": 1, "add": 1}
    assert sum(op.name == "nnef.variable" for op in module.walk()) == 1
    np.testing.assert_allclose(nnefopt.run(module, values)["y"], before, rtol=1e-6)


def test_canonicalize_keeps_a_variable_that_is_a_graph_output_by_its_name(tmp_path):
    module = _two_variables_of_one_label(tmp_path, "y, w2")
    nnefopt.optimize(module, "canonicalize")
    variables = [op.results[0].name_hint for op in module.walk() if op.name == "nnef.variable"]
    assert variables == ["w1", "w2"]
    assert dict(operation_histogram(module)) == {"mul": 2, "exp": 2, "add": 1}
