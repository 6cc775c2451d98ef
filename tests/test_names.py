"""Tensor names as the model gives them: `input_0`, `x_1`, `conv_12` (ONNX-derived and
tract models name tensors so), which xDSL's `name_hint` cannot hold, stay exact through
import, passes, MLIR text, running and export, and so do their graph.quant entries."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

import nnef
import numpy as np
import pytest

import nnefopt
from nnefopt.api import parse_mlir, to_mlir
from nnefopt.cli import main as nnef_opt
from nnefopt.dialects.nnef import OPERATIONS, tensor_type, to_attribute
from nnefopt.dialects.quantization import (
    quantization,
    quantization_of,
    set_quantization,
)
from nnefopt.dialects.tensor_names import NAMES, set_tensor_name, tensor_name
from nnefopt.frontend.parser import parse_quant
from nnefopt.frontend.tensor_file import write_tensor
from nnefopt.passes.rewriting import create, take_place
from nnefopt.run_cli import main as nnef_run

# graph input, weights, an intermediate, the output: each named as xDSL would not keep it
NAMES_GIVEN = {"input": "input_0", "filter": "w_2", "bias": "b_3", "conv": "c_4", "act": "x_1", "output": "conv_12"}
PLAIN = {"input": "inp", "filter": "w", "bias": "b", "conv": "cc", "act": "act", "output": "out"}

GRAPH = """version 1.0;

graph G( {input} ) -> ( {output} )
{{
    {input} = external(shape = [1, 2, 6, 6]);
    {filter} = variable(shape = [4, 2, 3, 3], label = '{filter}');
    {bias} = variable(shape = [1, 4], label = '{bias}');
    {conv} = conv({input}, {filter}, {bias}, padding = [(1, 1), (1, 1)]);
    {act} = relu({conv});
    {output} = max_pool({act}, size = [1, 1, 2, 2], stride = [1, 1, 2, 2]);
}}
"""
SCALES = {"input": 0.0625, "act": 0.125, "output": 0.25}
QUANT = '"{name}": zero_point_linear_quantize(zero_point = 0, scale = {scale}, bits = 8, signed = {signed}, symmetric = false);'


def write_model(folder, names):
    folder.mkdir()
    (folder / "graph.nnef").write_text(GRAPH.format(**names))
    (folder / "graph.quant").write_text("\n".join(
        QUANT.format(name=names[key], scale=scale, signed=str(key == "input").lower()) for key, scale in SCALES.items()))
    rng = np.random.default_rng(7)
    write_tensor(folder / f"{names['filter']}.dat", rng.standard_normal((4, 2, 3, 3)).astype(np.float32))
    write_tensor(folder / f"{names['bias']}.dat", rng.standard_normal((1, 4)).astype(np.float32))
    return folder


@pytest.fixture
def model(tmp_path):
    return write_model(tmp_path / "m", NAMES_GIVEN)


def sample():
    return np.random.default_rng(3).standard_normal((1, 2, 6, 6)).astype(np.float32)


def values_by_name(module):
    return {tensor_name(r): r for op in module.walk() for r in op.results if tensor_name(r)}


def quant_entries(folder) -> dict[str, tuple[str, float]]:
    entries = parse_quant((folder / "graph.quant").read_text())
    return {e.tensor: (e.algorithm, e.attributes["scale"]) for e in entries}


def cli(main, args):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(args)
    return status, out.getvalue(), err.getvalue()


def test_a_name_xdsl_would_shorten_is_kept_by_the_dialect():
    op = create("relu", [_external()])
    value = op.results[0]
    set_tensor_name(value, "x_1")
    assert tensor_name(value) == "x_1" and value.name_hint is None and NAMES in op.attributes
    set_tensor_name(value, "x")
    assert tensor_name(value) == "x" and value.name_hint == "x" and NAMES not in op.attributes
    set_tensor_name(value, None)
    assert tensor_name(value) is None


def _external():
    return OPERATIONS["external"](properties={"shape": to_attribute([2])}, result_types=[tensor_type("scalar", (2,))]).results[0]


def test_import_keeps_every_name_and_quantization(model):
    values = values_by_name(nnefopt.load(model))
    assert set(NAMES_GIVEN.values()) <= set(values)
    for key, scale in SCALES.items():
        quant = quantization_of(values[NAMES_GIVEN[key]])
        assert quant.algorithm.data == "zero_point_linear_quantize" and quant.params()["scale"] == scale
    assert quantization_of(values["c_4"]) is None


def test_runs_by_its_names_as_a_plainly_named_copy_does(model, tmp_path):
    plain = write_model(tmp_path / "plain", PLAIN)
    ours = nnefopt.run(nnefopt.load(model), {"input_0": sample()})
    reference = nnefopt.run(nnefopt.load(plain), {"inp": sample()})
    assert list(ours) == ["conv_12"]
    np.testing.assert_array_equal(ours["conv_12"], reference["out"])
    # graph.quant applies: the output lies on its grid (zero point 0, step 0.25)
    steps = ours["conv_12"] / SCALES["output"]
    assert np.abs(steps - np.round(steps)).max() < 1e-5 and len(np.unique(steps)) > 3


def test_nnef_run_writes_outputs_by_their_names(model, tmp_path):
    np.save(tmp_path / "in.npy", sample())
    status, _, err = cli(nnef_run, [str(model), "--input", f"input_0={tmp_path / 'in.npy'}", "-o", str(tmp_path / "o")])
    assert status == 0, err
    expected = nnefopt.run(nnefopt.load(model), {"input_0": sample()})["conv_12"]
    np.testing.assert_array_equal(np.load(tmp_path / "o" / "conv_12.npy"), expected)


@pytest.mark.parametrize("pipeline", [["-O"], ["-p", "layout,fold-constants,canonicalize,fuse,canonicalize"]])
def test_optimized_export_keeps_names_and_graph_quant(model, tmp_path, pipeline):
    out = tmp_path / "out"
    status, _, err = cli(nnef_opt, [str(model), *pipeline, "-o", str(out)])
    assert status == 0, err
    assert quant_entries(out) == quant_entries(model)
    # the Khronos parser accepts the interface and reads the same entries
    graph = nnef.load_graph(str(out), lowered=["conv_relu"])
    assert graph.inputs == ["input_0"] and graph.outputs == ["conv_12"]
    assert {"input_0", "w_2", "b_3", "x_1", "conv_12"} <= set(graph.tensors)
    for key, scale in SCALES.items():
        entry = graph.tensors[NAMES_GIVEN[key]].quantization
        assert entry["op-name"] == "zero_point_linear_quantize" and float(entry["scale"]) == scale
    # and the written model computes what the original does
    np.testing.assert_allclose(nnefopt.run(nnefopt.load(out), {"input_0": sample()})["conv_12"],
                               nnefopt.run(nnefopt.load(model), {"input_0": sample()})["conv_12"], atol=1e-6)


@pytest.mark.parametrize("generic", [False, True])
def test_mlir_text_keeps_names_and_quantization(model, generic):
    module = nnefopt.load(model)
    again = parse_mlir(to_mlir(module, generic=generic))
    before, after = values_by_name(module), values_by_name(again)
    assert set(before) == set(after)
    for name, value in before.items():
        assert quantization_of(after[name]) == quantization_of(value), name
    assert to_mlir(again) == to_mlir(module)


def test_a_rewrite_keeps_the_quantization_by_the_type():
    """A replacement made with the old value's type has its entry; take_place gives one
    to a value made without."""
    quant = quantization("zero_point_linear_quantize", {"zero_point": 0, "scale": 0.5, "bits": 8})
    x = _external()
    old = create("relu", [x])
    set_tensor_name(old.results[0], "x_1")
    old_value = set_quantization(old.results[0], quant)
    same = create("relu", [x], result_types=[old_value.type])
    assert quantization_of(same.results[0]) == quant
    made = create("sigmoid", [x])
    new = take_place(old_value, made.results[0])
    assert quantization_of(new) == quant and tensor_name(new) == "x_1"
