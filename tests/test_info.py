"""nnef-info's facts: MACs against an independent count from the ONNX model (onnx shape
inference and the ONNX operators' definitions), the rest against what the model says."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
from onnx import numpy_helper, shape_inference

import nnefopt
from bench.generate import resnet50, resnet50_onnx
from nnefopt.info import info, op_counts_and_bytes
from nnefopt.info_cli import main as info_main
from tests.models import SHARED


def onnx_macs(model: onnx.ModelProto) -> int:
    """Multiply-accumulates of Conv, Gemm and MatMul, from ONNX's definitions: a Conv
    output element sums C_in/group x kernel products (the weight is [M, C/group, k...]);
    Gemm's is K products; MatMul's the shared dimension."""
    model = shape_inference.infer_shapes(model)
    shapes = {}
    for v in [*model.graph.value_info, *model.graph.input, *model.graph.output]:
        shapes[v.name] = [d.dim_value for d in v.type.tensor_type.shape.dim]
    for t in model.graph.initializer:
        shapes[t.name] = list(t.dims)
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            total += math.prod(shapes[node.output[0]]) * math.prod(shapes[node.input[1]][1:])
        elif node.op_type == "Gemm":
            trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
            a = shapes[node.input[0]]
            total += math.prod(shapes[node.output[0]]) * (a[0] if trans_a else a[1])
        elif node.op_type == "MatMul":
            total += math.prod(shapes[node.output[0]]) * shapes[node.input[0]][-1]
    return total


def within_one_percent(ours, theirs) -> bool:
    return theirs > 0 and abs(ours - theirs) <= 0.01 * theirs


@pytest.mark.parametrize("model", ["resnet8", "mobilenetv2_035"])
def test_macs_match_an_independent_count_of_the_onnx_model(model):
    theirs = onnx_macs(onnx.load(str(SHARED / model / "model.onnx")))
    ours = info(nnefopt.load(SHARED / model / "kt"))["compute"]["macs"]
    assert within_one_percent(ours, theirs), (ours, theirs)


def test_resnet50_macs_match_an_independent_count(tmp_path):
    resnet50(tmp_path / "r50")
    resnet50_onnx(tmp_path / "r50", tmp_path / "r50.onnx")
    theirs = onnx_macs(onnx.load(str(tmp_path / "r50.onnx")))
    ours = info(nnefopt.load(tmp_path / "r50"))["compute"]["macs"]
    assert within_one_percent(ours, theirs), (ours, theirs)
    assert 3.8e9 < ours < 4.2e9  # ResNet-50's published ~4.1 GMACs at 224x224


def test_inputs_outputs_parameters_and_histogram():
    path = SHARED / "resnet8" / "kt"
    facts = info(nnefopt.load(path))
    assert facts["inputs"] == [{"name": "input", "shape": list(np.load(SHARED / "resnet8" / "input.npy").shape),
                                "dtype": "scalar"}]
    assert facts["outputs"][0]["shape"] == list(np.load(SHARED / "resnet8" / "output.npy").shape)
    weights = onnx.load(str(SHARED / "resnet8" / "model.onnx")).graph.initializer
    count = sum(numpy_helper.to_array(t).size for t in weights)
    assert facts["parameters"]["count"] == count
    assert facts["parameters"]["by_dtype"] == {"scalar": {"count": count, "bytes": 4 * count}}
    text = (path / "graph.nnef").read_text()
    assert facts["operations"]["conv"] == text.count("= conv(")
    per_kind = facts["compute"]["per_kind"]
    assert sum(r["macs"] for r in per_kind.values()) == facts["compute"]["macs"]
    assert sum(r["macs"] for r in facts["compute"]["per_op"]) == facts["compute"]["macs"]
    assert facts["unsupported"]["c"] == "not yet available"


def test_peak_memory_is_below_keeping_every_tensor_and_above_the_largest_step():
    module = nnefopt.load(SHARED / "mobilenetv2_035" / "kt")
    memory = info(module)["memory"]
    assert 0 < memory["peak_activation_bytes"] < memory["unplanned_activation_bytes"]
    # the first convolution's input and output are alive together
    assert memory["peak_activation_bytes"] >= 4 * (3 * 64 * 64 + 32 * 32 * 32 * 0.35 // 1)


def test_tract_extensions_and_nonstandard_operations_are_named():
    facts = info(nnefopt.load(SHARED / "cnn_digits_q8" / "tract.nnef.tgz"))
    assert facts["extensions"] == ["tract_registry tract_core"]
    assert "tract_core_cast" in facts["nonstandard_operations"]
    assert set(facts["parameters"]["by_dtype"]) == {"scalar", "integer"}


def test_what_the_khronos_parser_cannot_take_is_what_it_refuses(tmp_path):
    """tiny_vit's `erf` is a fragment (nnefopt writes its body); the Khronos parser has
    no shape function for it all the same. resnet8 it takes whole."""
    import nnef

    module = nnefopt.load(SHARED / "tiny_vit" / "kt")
    facts = info(module)
    assert "erf" in facts["fragments"] and facts["unsupported"]["khronos"] == ["erf"]
    nnefopt.save(module, tmp_path / "vit")
    with pytest.raises(nnef.Error, match="erf"):
        nnef.infer_shapes(nnef.load_graph(str(tmp_path / "vit")))
    module = nnefopt.load(SHARED / "resnet8" / "kt")
    assert info(module)["unsupported"]["khronos"] == []
    nnefopt.save(module, tmp_path / "r8")
    nnef.infer_shapes(nnef.load_graph(str(tmp_path / "r8")))


def test_op_counts_and_bytes_for_a_before_after_table():
    module = nnefopt.load(SHARED / "cnn_digits" / "kt")
    before = op_counts_and_bytes(module)
    nnefopt.optimize(module, "fuse")
    after = op_counts_and_bytes(module)
    assert after["total"] < before["total"] and after["macs"] == before["macs"]
    assert after["parameter_bytes"] == before["parameter_bytes"] > 0


def test_cli_text_and_json(capsys):
    path = str(SHARED / "resnet8" / "kt")
    assert info_main([path, "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["compute"]["macs"] == info(nnefopt.load(path))["compute"]["macs"]
    assert info_main([path]) == 0
    out = capsys.readouterr().out
    assert f"{facts['compute']['macs']:,}" in out and "peak activation memory" in out


def test_cli_error_is_one_line(tmp_path, capsys):
    assert info_main([str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert "error: no such file" in err and "Traceback" not in err
