"""The Khronos parser (the `nnef` package) loads the quantized exports of every shared
variant: int32 biases written as real tensors with their accumulator-scale entry (it
takes no `variable<integer>` bias), per-channel scales too. A portable export with a
float island dequantizes through `tract_core_cast`, the only dequantization tract 0.23
computes in float (copy, mul by 1.0, add 0.0, select, max, relu and a declared fragment
all stay quantized there or are unknown); it needs tract's registry extension, which the
Khronos parser refuses, as it refuses every extension but its two KHR ones."""

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
    assert "variable<integer>" not in text
    if "extension tract_registry" in text:  # a portable float island (see above)
        assert profile == "portable" and "tract_core_cast(" in text
        with pytest.raises(nnef.Error, match="could not handle extension 'tract_registry'"):
            nnef.load_graph(str(tmp_path / "q"))
    else:
        graph = nnef.load_graph(str(tmp_path / "q"))
        quantized = {name for name, tensor in graph.tensors.items() if tensor.quantization}
        assert any(graph.tensors[op.inputs["bias"]].quantization.get("bits") == 32
                   for op in graph.operations if op.name in ("conv", "linear") and op.inputs["bias"] in quantized)
    # the export reads back and runs as the module does (the real bias, per-channel scales)
    x = np.load(SHARED / model / "input.npy")
    inputs = {next(iter(graph_inputs(module))): x}
    want, got = nnefopt.run(module, inputs), nnefopt.run(nnefopt.load(tmp_path / "q"), inputs)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], atol=1e-6)
