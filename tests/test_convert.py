"""ONNX and TFLite in: nnef-tools converts in-process, and the result is the IR any NNEF
input gives, run by the interpreter against the reference outputs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import nnefopt
from nnefopt.errors import NNEFError
from nnefopt.interp.ir_interpreter import Plan
from tests.models import MODELS, SHARED

ONNX_MODELS = [m for m in MODELS if (SHARED / m / "model.onnx").is_file()]


@pytest.mark.parametrize("model", ONNX_MODELS)
def test_every_shared_onnx_model_converts_and_matches_its_output(model):
    module = nnefopt.load(SHARED / model / "model.onnx")
    (name,) = Plan(module).inputs
    outputs = nnefopt.run(module, {name: np.load(SHARED / model / "input.npy")})
    (output,) = outputs.values()
    np.testing.assert_allclose(output, np.load(SHARED / model / "output.npy"), rtol=1e-4, atol=1e-5)


def test_the_converted_model_optimizes_and_saves_as_nnef(tmp_path):
    model = SHARED / "mobilenetv2_035"
    result = subprocess.run([sys.executable, "-m", "nnefopt.cli", str(model / "model.onnx"), "-O", "-q",
                             "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    module = nnefopt.load(tmp_path / "out")
    (output,) = nnefopt.run(module, {"input": np.load(model / "input.npy")}).values()
    np.testing.assert_allclose(output, np.load(model / "output.npy"), rtol=1e-4, atol=1e-5)


def test_an_operation_nnef_tools_cannot_convert_is_named(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [])
    graph = helper.make_graph([helper.make_node("Det", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "det.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    with pytest.raises(NNEFError, match="operator 'Det' is not implemented") as error:
        nnefopt.load(path)
    assert error.value.location.file == str(path)


def test_a_damaged_onnx_file_is_an_error_of_that_file(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x00\x01not a model")
    with pytest.raises(NNEFError) as error:
        nnefopt.load(path)
    assert error.value.location.file == str(path)


def test_tflite_converts_without_tensorflow(tmp_path):
    """A .tflite written by nnef-tools' own NNEF-to-TFLite converter (no TensorFlow here)
    from nnef-tools' NNEF of cnn_digits, read back through nnefopt."""
    from nnef_tools.conversion.nnef_to_tflite import Converter
    from nnef_tools.io.nnef import Reader
    from nnef_tools.io.tf.lite import Writer

    with pytest.raises(ImportError):
        import tensorflow  # noqa: F401
    model = SHARED / "cnn_digits"
    converter = Converter(io_transpose=False, custom_transforms=None, custom_functions=None, mirror_unsupported=False)
    graph = Reader(decomposed=converter.decomposed_operations(), custom_shapes=converter.defined_shapes())(
        str(model / "kt"))
    graph.sort()
    path = tmp_path / "cnn.tflite"
    Writer()(converter(graph), str(path))
    module = nnefopt.load(path)
    (name,) = Plan(module).inputs
    (output,) = nnefopt.run(module, {name: np.load(model / "input.npy")}).values()
    np.testing.assert_allclose(output, np.load(model / "output.npy"), rtol=1e-4, atol=1e-5)
