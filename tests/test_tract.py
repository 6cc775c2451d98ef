"""tract runs what nnefopt writes, with onnxruntime's outputs. Where tract cannot read a
form the specification allows, the test records tract's error and the reason; the
reference interpreter is then the judge of the numbers (tests/test_roundtrip.py)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import nnefopt
from nnefopt.errors import NNEFWarning
from tests.models import SHARED, variants
from tests.tract_oracle import TractError, run_tract

# Gaps in tract 0.23.9, not in the written NNEF:
KNOWN_TRACT_GAPS = {
    # Specification 4.1 defines `constant`; tract has no such operation.
    "mobilenetv2_035/kt": "constant",
    "tiny_vit/kt": "constant",
    # Specification 4.3: a deconv filter is [C_in, C_out / groups, ...]; tract reads
    # [C_out, C_in / groups, ...], so no deconv is right for both.
    "tiny_unet/kt": "kernel channels",
    "tiny_unet/t2n": "kernel channels",
    "tiny_unet/tract": "kernel channels",
}


@pytest.mark.parametrize("name,path", variants(), ids=[v[0] for v in variants()])
def test_tract_runs_the_export(tmp_path, name, path):
    folder = SHARED / name.split("/")[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        nnefopt.save(nnefopt.load(path), tmp_path / "out")
    x = np.load(folder / "input.npy")
    if name in KNOWN_TRACT_GAPS:
        with pytest.raises(TractError, match=KNOWN_TRACT_GAPS[name]):
            run_tract(tmp_path / "out", [x])
        return
    (output,) = run_tract(tmp_path / "out", [x])
    expected = np.load(folder / "output.npy")
    info = json.loads((folder / "info.json").read_text())
    tolerance = info.get("output_tolerance_abs", 1e-4 * float(np.abs(expected).max()))
    assert float(np.abs(output - expected).max()) <= tolerance
