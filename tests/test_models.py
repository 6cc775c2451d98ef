"""Every shared model loads; for nnef-tools' output, what nnefopt reads equals what the
Khronos parser reads: the same operations, bit-identical tensor data, equal shapes."""

from __future__ import annotations

import warnings

import nnef
import numpy as np
import pytest

from nnefopt.errors import NNEFWarning
from nnefopt.frontend.loader import load_model
from tests.models import kt_variants, variants

# nnef-tools declares `erf` without a body; the Khronos parser has no shape rule for it.
KHRONOS_CANNOT_INFER = {"tiny_vit/kt"}


def load_quietly(path, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        return load_model(path, **options)


@pytest.mark.parametrize("name,path", variants(), ids=[v[0] for v in variants()])
def test_every_variant_loads_with_every_shape(name, path):
    model = load_quietly(path)
    assert model.operations
    unknown = [t.name for t in model.tensors.values() if t.shape is None]
    assert not unknown, unknown[:5]
    for output in model.outputs:
        assert model.tensors[output].shape is not None
    for op in model.operations:
        if op.name == "variable":
            tensor = model.tensors[op.outputs["output"]]
            assert tensor.data is not None and tuple(tensor.data.shape) == tensor.shape


@pytest.mark.parametrize("name,path", kt_variants(), ids=[v[0] for v in kt_variants()])
def test_kt_models_read_like_the_khronos_parser(name, path):
    graph = nnef.load_graph(str(path))
    if name not in KHRONOS_CANNOT_INFER:
        nnef.infer_shapes(graph)
    model = load_model(path, strict=True)  # nnef-tools writes the specification's form
    assert [op.name for op in model.operations] == [op.name for op in graph.operations]
    for op, reference in zip(model.operations, graph.operations):
        for key, value in reference.attribs.items():
            assert _plain(model_value(op, key)) == _plain(value), (op.name, key)
    assert set(model.tensors) == set(graph.tensors)
    for name_, reference in graph.tensors.items():
        tensor = model.tensors[name_]
        if reference.data is not None:
            assert tensor.data.dtype == reference.data.dtype
            assert tensor.data.tobytes() == np.ascontiguousarray(reference.data).tobytes()
        if name not in KHRONOS_CANNOT_INFER:
            assert list(tensor.shape) == list(reference.shape), name_


def model_value(op, key):
    return op.attribs[key] if key in op.attribs else op.inputs[key]


def _plain(value):
    """Khronos returns tuples of padding as tuples and numbers as floats: compare values."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def test_tract_quantized_model_reads_its_quantization():
    from tests.models import SHARED

    with pytest.warns(NNEFWarning, match="NamedTensor"):
        model = load_model(SHARED / "cnn_digits_q8" / "tract.nnef.tgz")
    quant = model.tensors["input_quantize_per_tensor0"].quant
    assert quant.algorithm == "zero_point_linear_quantize"
    assert quant.attributes["scale"] == pytest.approx(0.0039)
    assert quant.attributes["zero_point"] == 0
    out = model.tensors["fc__fc_linear0"].quant
    assert out.attributes["zero_point"] == 119 and out.attributes["signed"] is False


def test_torch_to_nnef_liberties_are_warned_about():
    from tests.models import SHARED

    with pytest.warns(NNEFWarning) as record:
        load_model(SHARED / "tiny_vit" / "t2n")
    messages = "\n".join(str(w.message) for w in record)
    assert "redefines a standard operation" in messages  # gelu
    assert "given by position" in messages  # softmax(x, 3)
    assert "passed as attribute 'eps'" in messages  # var_1e_05
    assert "graph.nnef:" in messages


def test_torch_to_nnef_batch_norm_stats_are_repaired():
    from tests.models import SHARED

    with pytest.warns(NNEFWarning, match=r"per-channel values of \[1, 16\] assumed"):
        model = load_model(SHARED / "cnn_digits" / "t2n")
    bn = next(op for op in model.operations if op.name == "batch_normalization")
    assert model.tensors[bn.inputs["mean"]].shape == (1, 16)
