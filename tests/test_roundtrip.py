"""Printing: what nnefopt writes, the Khronos parser loads, with the same operations and
tensors as the original (nnef-tools' models) — and torch-to-nnef's models, which the
Khronos parser refuses as they are, become loadable."""

from __future__ import annotations

import shutil
import warnings

import nnef
import numpy as np
import pytest

import nnefopt
from nnefopt.cli import main
from nnefopt.errors import NNEFWarning
from nnefopt.frontend.parser import parse_document
from nnefopt.frontend.printer import format_document
from tests.models import SHARED, kt_variants

# erf's body: nnefopt reads `-x * x` as (-x) * x and writes neg(x) * x where the Khronos
# parser reads -(x * x): the same values, but another graph once the body is lowered.
LOWERED_BODY_DIFFERS = {"tiny_vit/kt"}


def khronos_load(folder):
    """The Khronos parser's graph with its shapes inferred; it infers shapes through a
    custom fragment only when asked to lower it into its body."""
    custom = [name for name in _fragment_names(folder) if name not in nnef.StandardOperations]
    graph = nnef.load_graph(str(folder), lowered=custom)
    nnef.infer_shapes(graph)
    return graph


def _fragment_names(folder) -> list[str]:
    doc = parse_document((folder / "graph.nnef").read_text(), "graph.nnef")
    return [f.name for f in doc.fragments if f.body is not None]


def assert_same_graph(ours, reference):
    assert [op.name for op in ours.operations] == [op.name for op in reference.operations]
    for a, b in zip(ours.operations, reference.operations):
        assert dict(a.attribs) == dict(b.attribs), a.name
        assert dict(a.inputs) == dict(b.inputs), a.name
        assert dict(a.outputs) == dict(b.outputs), a.name
    assert set(ours.tensors) == set(reference.tensors)
    for name, tensor in reference.tensors.items():
        mine = ours.tensors[name]
        assert mine.dtype == tensor.dtype and mine.shape == tensor.shape, name
        if tensor.data is not None:
            assert mine.data.tobytes() == tensor.data.tobytes(), name


@pytest.mark.parametrize("name,path", kt_variants(), ids=[v[0] for v in kt_variants()])
def test_printed_syntax_tree_loads_in_khronos(tmp_path, name, path):
    text = (path / "graph.nnef").read_text()
    printed = format_document(parse_document(text, str(path / "graph.nnef")))
    shutil.copytree(path, tmp_path / "m")
    (tmp_path / "m" / "graph.nnef").write_text(printed)
    assert_same_graph(khronos_load(tmp_path / "m"), khronos_load(path))


@pytest.mark.parametrize("name,path", kt_variants(), ids=[v[0] for v in kt_variants()])
def test_written_model_loads_in_khronos(tmp_path, name, path):
    assert main([str(path), "-o", str(tmp_path / "out"), "-q", "--keep-spelling"]) == 0
    assert_same_graph(khronos_load(tmp_path / "out"), khronos_load(path))


# What nnefopt writes by default (nnefopt/passes/portable.py): an operation on the left is
# written with those on the right, under the same output names; the rest is unchanged.
PORTABLE = {"constant": {"copy", "variable"}, "split": {"slice"}, "nearest_upsample": {"reshape"},
            "deconv": {"conv", "reshape"}}
SPELLING = {"variable", "slice", "reshape", "tile", "transpose", "unsqueeze", "pad", "conv"}  # in between


def _output_names(op) -> list[str]:
    return [n for v in op.outputs.values() for n in (v if isinstance(v, list) else [v])]


def assert_portable_graph(ours, reference):
    mine = {name: op for op in ours.operations for name in _output_names(op)}
    deconv_weights = {op.inputs[k] for op in reference.operations if op.name == "deconv" for k in ("filter", "bias")}
    respelled = set()
    for op in reference.operations:
        names = _output_names(op)
        if op.name in PORTABLE:
            assert [mine[n].name in PORTABLE[op.name] for n in names] == [True] * len(names), op.name
            respelled.update(names)
        elif names[0] not in mine:
            assert op.name == "variable" and names == [op.outputs["output"]] and names[0] in deconv_weights
        else:
            theirs = mine[names[0]]
            assert (theirs.name, dict(theirs.attribs), dict(theirs.inputs), dict(theirs.outputs)) == \
                (op.name, dict(op.attribs), dict(op.inputs), dict(op.outputs))
    added = [op for op in ours.operations if not set(_output_names(op)) & set(reference.tensors)]
    assert {op.name for op in added} <= SPELLING
    assert ours.outputs == reference.outputs
    for name, tensor in reference.tensors.items():
        if name in ours.tensors:
            mine = ours.tensors[name]
            assert mine.dtype == tensor.dtype and mine.shape == tensor.shape, name
            if tensor.data is not None and name not in respelled:
                assert mine.data.tobytes() == tensor.data.tobytes(), name


@pytest.mark.parametrize("name,path", kt_variants(), ids=[v[0] for v in kt_variants()])
def test_portable_model_loads_in_khronos(tmp_path, name, path):
    """The default spelling loads in the Khronos parser too, with the same tensors."""
    assert main([str(path), "-o", str(tmp_path / "out"), "-q"]) == 0
    ours, reference = khronos_load(tmp_path / "out"), khronos_load(path)
    if name in LOWERED_BODY_DIFFERS:  # compare the calls, with the shapes the lowered graphs infer
        unlowered = nnef.load_graph(str(path))
        assert_portable_graph(nnef.load_graph(str(tmp_path / "out")), unlowered)
        assert {n: ours.tensors[n].shape for n in unlowered.tensors} == \
            {n: reference.tensors[n].shape for n in unlowered.tensors}
    else:
        assert_portable_graph(ours, reference)


T2N = sorted(p.parent.parent.name for p in SHARED.glob("*/t2n/graph.nnef"))


@pytest.mark.parametrize("model", T2N)
def test_torch_to_nnef_output_becomes_loadable(tmp_path, model):
    source = SHARED / model / "t2n"
    with pytest.raises(nnef.Error):
        khronos_load(source)  # as exported: refused
    assert main([str(source), "-o", str(tmp_path / "out"), "-q"]) == 0
    graph = khronos_load(tmp_path / "out")
    outputs = [graph.tensors[name] for name in graph.outputs]
    assert all(t.shape for t in outputs)


def test_quantized_tract_model_keeps_item_types_and_quantization(tmp_path):
    from nnefopt.frontend.tensor_file import read_header

    source = SHARED / "cnn_digits_q8" / "tract.nnef.tgz"
    assert main([str(source), "-o", str(tmp_path / "out.tgz"), "-q"]) == 0
    import tarfile

    with tarfile.open(source) as tar:
        tar.extractall(tmp_path / "in", filter="data")
    with tarfile.open(tmp_path / "out.tgz") as tar:
        tar.extractall(tmp_path / "out", filter="data")
    for original in sorted((tmp_path / "in").glob("*.dat")):
        written = tmp_path / "out" / original.name
        assert written.read_bytes() == original.read_bytes(), original.name
        assert read_header(written) == read_header(original)
    quant = (tmp_path / "out" / "graph.quant").read_text()
    assert "NamedTensor" not in quant  # the writer bug is not carried forward
    assert '"fc__fc_linear0": zero_point_linear_quantize(scale = 0.11828842014074326, zero_point = 119' in quant


TRACT = sorted(p.parent.name for p in SHARED.glob("*/tract.nnef.tgz"))


@pytest.mark.parametrize("model", TRACT)
def test_tract_bundles_become_standard_nnef(tmp_path, model):
    """tract's operations come out in their standard spelling: the Khronos parser loads
    the result, and it still computes onnxruntime's outputs."""
    import nnefopt

    source = SHARED / model / "tract.nnef.tgz"
    assert main([str(source), "-o", str(tmp_path / "out"), "-q"]) == 0
    text = (tmp_path / "out" / "graph.nnef").read_text()
    assert "tract_" not in text.replace("tract_gelu", "")  # a model's own fragment may keep its name
    graph = khronos_load(tmp_path / "out")
    assert graph.operations
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        module = nnefopt.load(tmp_path / "out")
    outputs = nnefopt.run(module, {"input": np.load(SHARED / model / "input.npy")})
    expected = np.load(SHARED / model / "output.npy")
    tolerance = 0.1183 if model == "cnn_digits_q8" else 1e-5  # one output quantization step
    np.testing.assert_allclose(outputs["output"], expected, rtol=0 if model == "cnn_digits_q8" else 1e-4, atol=tolerance)


def test_an_operation_of_no_known_registry_is_written_with_the_registry_that_admits_it(tmp_path):
    """Found by fuzzing: lower-tract dropped `tract_registry` as unused, so nnefopt's own
    export of such a model could not be read back."""
    model = tmp_path / "m"
    model.mkdir()
    (model / "graph.nnef").write_text(
        "version 1.0;\nextension tract_registry tract_core;\n"
        "graph G( x ) -> ( y )\n{\n    x = external<scalar>(shape = [2]);\n    y = some_unknown_op(x);\n}\n")
    nnefopt.save(nnefopt.load(model), tmp_path / "out")
    text = (tmp_path / "out" / "graph.nnef").read_text()
    assert "extension tract_registry tract_core;" in text and "some_unknown_op(x)" in text
    nnefopt.load(tmp_path / "out")
