"""The Khronos parser (the `nnef` package) loads the quantized exports of every shared
variant: int32 biases written as real tensors with their accumulator-scale entry (it
takes no `variable<integer>` bias), per-channel scales too. A portable export needs no
tract extension: it is int8 up to the outputs (no float operation reads an int8 value),
which tract runs in standard NNEF, so nothing needs `tract_core_cast`, which the
Khronos parser, refusing every extension but its two KHR ones, would refuse."""

from __future__ import annotations

import io
import warnings
from contextlib import redirect_stderr

import nnef
import numpy as np
import pytest

import nnefopt
from nnefopt.quant.observe import graph_inputs
from tests.models import SHARED, variants

VARIANTS = [(name, path) for name, path in variants() if not name.startswith("cnn_digits_q8")]
PROFILES = {"portable": "", "per-channel": "per-channel=true profile=generic"}


def _export(path, model: str, extra: str, folder):
    calib = SHARED / model / "calib.npy"
    options = (f'calib="{calib}" ' if calib.is_file() else "") + f"samples=2 {extra}"
    module = nnefopt.load(path)
    with warnings.catch_warnings(), redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        nnefopt.optimize(module, f"fuse,quantize{{{options.strip()}}}")
    nnefopt.save(module, folder)
    return module


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name,path", VARIANTS, ids=[n for n, _ in VARIANTS])
def test_khronos_parser_loads_the_quantized_export(name, path, profile, tmp_path):
    model = name.split("/")[0]
    module = _export(path, model, PROFILES[profile], tmp_path / "q")
    text = (tmp_path / "q" / "graph.nnef").read_text()
    assert "variable<integer>" not in text and "extension tract_" not in text and "tract_core" not in text
    graph = nnef.load_graph(str(tmp_path / "q"))
    quantized = {name for name, tensor in graph.tensors.items() if tensor.quantization}
    assert any(graph.tensors[op.inputs["bias"]].quantization.get("bits") == 32
               for op in graph.operations if op.name in ("conv", "linear") and op.inputs["bias"] in quantized)
    if profile == "portable":  # int8 to the outputs: no float operation reads a quantized tensor
        for op in graph.operations:
            reads = [name for value in op.inputs.values() for name in (value if isinstance(value, list) else [value])
                     if isinstance(name, str) and name in quantized]
            outputs = [name for value in op.outputs.values() for name in (value if isinstance(value, list) else [value])]
            assert not reads or any(name in quantized for name in outputs) or op.name == "copy", (op.name, reads)
    # the export reads back and runs as the module does (the real bias, per-channel scales)
    x = np.load(SHARED / model / "input.npy")
    inputs = {next(iter(graph_inputs(module))): x}
    want, got = nnefopt.run(module, inputs), nnefopt.run(nnefopt.load(tmp_path / "q"), inputs)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], atol=1e-6)
