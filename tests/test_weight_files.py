"""Weights on export: a file no pass changed is copied byte for byte; new weights (what
passes computed) are encoded; an archive's files, gone after loading, are encoded."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from xdsl.dialects.builtin import StringAttr

import nnefopt
from nnefopt.errors import NNEFError, NNEFWarning
from nnefopt.export import folder
from tests.models import SHARED


def _load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        return nnefopt.load(path)


@pytest.fixture
def encoded(monkeypatch):
    """The labels of the weights the export encoded rather than copied."""
    labels = []
    original = folder.write_tensor

    def recording(path, *args, **kwargs):
        labels.append(path.stem)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(folder, "write_tensor", recording)
    return labels


def test_unchanged_weights_are_copied(tmp_path, encoded):
    source = SHARED / "resnet8" / "kt"
    nnefopt.save(_load(source), tmp_path / "out")
    assert encoded == []
    for dat in source.glob("*.dat"):
        assert (tmp_path / "out" / dat.name).read_bytes() == dat.read_bytes()


def test_weights_a_pass_made_are_encoded_and_the_rest_copied(tmp_path, encoded):
    source = SHARED / "resnet8" / "t2n"
    nnefopt.save(nnefopt.optimize(_load(source), "default"), tmp_path / "out")
    assert encoded and all(label.endswith("_fused") or label.endswith("_1") for label in encoded)
    assert (tmp_path / "out" / "fc.weight.dat").read_bytes() == (source / "fc.weight.dat").read_bytes()
    assert "fc.weight" not in encoded


def test_an_archives_weights_are_encoded_alike(tmp_path, encoded):
    nnefopt.save(_load(SHARED / "mlp_digits" / "tract.nnef.tgz"), tmp_path / "out")
    assert len(encoded) == len(list((tmp_path / "out").glob("*.dat"))) > 0


@pytest.mark.parametrize("model,variant", [("resnet8", "t2n"), ("cnn_digits_q8", "tract.nnef.tgz"),
                                           ("tiny_vit", "kt")])
def test_an_mlir_file_carries_the_weights(tmp_path, model, variant):
    """A stage saved as .mlir, optimized weights included, reads back to the same numbers
    under the same handles (named after the labels), with arrays of its own (nothing
    shared with the module in memory)."""
    import numpy as np

    from nnefopt.dialects.nnef import weight_of

    folder = SHARED / model
    module = nnefopt.optimize(_load(folder / variant), "default")
    inputs = {"input": np.load(folder / "input.npy")}
    nnefopt.save(module, tmp_path / "stage.mlir", emit="mlir")
    text = (tmp_path / "stage.mlir").read_text()
    assert "dialect_resources" in text
    again = nnefopt.load(tmp_path / "stage.mlir")
    handles = {op.attributes["nnef.data"].resource_handle.data for op in again.walk() if "nnef.data" in op.attributes}
    originals = {op.attributes["nnef.data"].resource_handle.data for op in module.walk() if "nnef.data" in op.attributes}
    assert handles and handles == originals
    arrays = [weight_of(op.attributes["nnef.data"]) for op in module.walk() if "nnef.data" in op.attributes]
    assert not any(np.shares_memory(weight_of(op.attributes["nnef.data"]), array)
                   for op in again.walk() if "nnef.data" in op.attributes for array in arrays)
    assert all(weight_of(op.attributes["nnef.data"]) is not None for op in again.walk() if "nnef.data" in op.attributes)
    (expected,) = nnefopt.run(module, inputs).values()
    (output,) = nnefopt.run(again, inputs).values()
    np.testing.assert_array_equal(output, expected)
    assert "dialect_resources" not in nnefopt.to_mlir(again)  # a terminal gets the IR alone


@pytest.mark.parametrize("label", ["../escaped", "/tmp/nnefopt-escaped", "a/../../escaped", ""])
def test_a_label_that_leaves_the_folder_is_refused_and_nothing_is_written(tmp_path, label):
    """A label comes from the model (NNEF text, MLIR): it names a file inside the output."""
    module = nnefopt.load(SHARED / "mlp_digits" / "t2n")
    variable = next(op for op in module.walk() if op.name == "nnef.variable")
    variable.properties["label"] = StringAttr(label)
    out = tmp_path / "out" / "model"
    with pytest.raises(NNEFError, match="must name a file inside the model folder"):
        nnefopt.save(module, out)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    assert not Path("/tmp/nnefopt-escaped.dat").exists() and not (tmp_path / "out" / "escaped.dat").exists()
