"""tract runs what nnefopt writes, with onnxruntime's outputs: every variant of every
shared model. Where tract does not read a form the specification allows (`constant`,
`split`, its own `nearest_upsample`, a unary minus on a tensor, the `deconv` filter
layout), nnefopt writes an equivalent that both tract and the Khronos parser read
(nnefopt/passes/portable.py)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import nnefopt
from nnefopt.errors import NNEFWarning
from tests.models import SHARED, variants
from tests.test_portable import deconv_model
from tests.tract_oracle import run_tract


@pytest.mark.parametrize("name,path", variants(), ids=[v[0] for v in variants()])
def test_tract_runs_the_export(tmp_path, name, path):
    folder = SHARED / name.split("/")[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        nnefopt.save(nnefopt.load(path), tmp_path / "out")
    x = np.load(folder / "input.npy")
    (output,) = run_tract(tmp_path / "out", [x])
    expected = np.load(folder / "output.npy")
    info = json.loads((folder / "info.json").read_text())
    tolerance = info.get("output_tolerance_abs", 1e-4 * float(np.abs(expected).max()))
    assert float(np.abs(output - expected).max()) <= tolerance


DECONVS = {  # filter [C_in, C_out / groups, ...], input shape, attributes
    "upsampling": ((4, 3, 2, 2), (1, 4, 5, 5), ", stride = [2, 2]"),
    "upsampling-grouped": ((4, 3, 2, 3), (1, 4, 5, 5), ", stride = [2, 3], groups = 2"),
    "output-shape": ((4, 3, 3, 3), (1, 4, 5, 5), ", stride = [2, 2], padding = [(1, 1), (1, 1)], "
                                                 "output_shape = [1, 3, 10, 10]"),
    "automatic-padding": ((2, 3, 4, 3), (2, 2, 3, 4), ", stride = [3, 2]"),
    "dilated-grouped": ((4, 2, 3, 2), (1, 4, 4, 6), ", stride = [2, 1], dilation = [2, 3], groups = 2"),
    "cropped": ((2, 2, 2, 2), (1, 2, 4, 4), ", stride = [2, 2], padding = [(2, 3), (0, 2)]"),
    "one-dimensional": ((3, 2, 3), (1, 3, 7), ", stride = [3], padding = [(0, 1)]"),
}


@pytest.mark.parametrize("case", DECONVS)
def test_tract_runs_deconv_as_the_specification_defines_it(tmp_path, case):
    """The interpreter's deconv (specification 4.3) is the reference."""
    filter_shape, input_shape, attribs = DECONVS[case]
    rng = np.random.default_rng(0)
    weights = rng.standard_normal(filter_shape).astype(np.float32)
    groups = 2 if "groups = 2" in attribs else 1
    bias = rng.standard_normal((1, filter_shape[1] * groups)).astype(np.float32)
    x = rng.standard_normal(input_shape).astype(np.float32)
    deconv_model(tmp_path / "in", input_shape, weights, bias, attribs)
    module = nnefopt.load(tmp_path / "in")
    expected = nnefopt.run(module, {"input": x})["output"]
    nnefopt.save(module, tmp_path / "out")
    assert "deconv" not in (tmp_path / "out" / "graph.nnef").read_text()
    (output,) = run_tract(tmp_path / "out", [x])
    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-5)
