"""Cross-layer equalization (nnefopt.quant.equalize, pass `equalize`): the outputs stay
what they were on every shared model variant, fused or not, and the per-channel weight
ranges become more alike."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import nnefopt
from nnefopt.quant.equalize import equalize, find_pairs
from nnefopt.quant.observe import graph_inputs
from tests.models import SHARED, variants

VARIANTS = [(name, path) for name, path in variants() if not name.startswith("cnn_digits_q8")]


def _load(path, pipeline: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = nnefopt.load(path)
    if pipeline:
        nnefopt.optimize(module, pipeline)
    return module


def _inputs(module) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {name: rng.standard_normal([d or 1 for d in shape]).astype(np.float32)
            for name, (shape, _, _) in graph_inputs(module).items()}


@pytest.mark.parametrize("pipeline", ["", "fuse"])
@pytest.mark.parametrize("name,path", VARIANTS, ids=[name for name, _ in VARIANTS])
def test_outputs_unchanged(name, path, pipeline):
    module = _load(path, pipeline)
    inputs = _inputs(module)
    before = nnefopt.run(module, inputs)
    equalize(module)
    module.verify()
    after = nnefopt.run(module, inputs)
    for key, expected in before.items():
        scale = float(np.max(np.abs(expected))) or 1.0
        assert float(np.max(np.abs(after[key] - expected))) <= 1e-4 * scale, key


@pytest.mark.parametrize("model", ["cnn_digits", "mlp_digits", "resnet8", "mobilenetv2_035", "tiny_unet"])
def test_chains_are_found(model):
    """conv-relu-conv, linear-relu-linear, conv-relu-pool-flatten-linear, relu6 chains
    with depthwise convs (fused into conv_clamp by `fuse`: split back into conv, clamp)."""
    module = _load(SHARED / model / "kt", "fuse")
    pairs = find_pairs(module)
    assert pairs
    if model == "mobilenetv2_035":
        assert any(pair.second.groups > 1 for pair in pairs)  # into a depthwise conv
        assert any(pair.first.groups > 1 for pair in pairs)  # out of one
        assert any(pair.clamp is not None for pair in pairs)
    if model == "cnn_digits":
        assert any(pair.block > 1 for pair in pairs)  # through max_pool and the flatten
    assert equalize(module) == len(pairs)
    assert len(find_pairs(module)) == len(pairs)  # the chains are still chains


def _range_ratios(module) -> np.ndarray:
    """min / max of the per-output-channel weight ranges of each pair's first layer."""
    ratios = []
    for pair in find_pairs(module):
        ranges = np.abs(pair.first.filter.reshape(pair.first.channels, -1)).max(axis=1)
        ratios.append(ranges.min() / ranges.max())
    return np.array(ratios)


def test_ranges_become_uniform_on_mobilenet():
    module = _load(SHARED / "mobilenetv2_035" / "kt", "fuse")
    before = _range_ratios(module)
    equalize(module)
    after = _range_ratios(module)
    print(f"mobilenetv2_035 min/max channel range ratio: median {np.median(before):.3f} -> {np.median(after):.3f}, "
          f"worst {before.min():.4f} -> {after.min():.4f}")
    assert np.median(after) > 1.5 * np.median(before)
    assert after.min() > 2 * before.min()
    assert np.all(after >= before - 1e-6)


def test_equalize_pass():
    module = _load(SHARED / "resnet8" / "kt", "")
    inputs = _inputs(module)
    before = nnefopt.run(module, inputs)
    nnefopt.optimize(module, "equalize")
    after = nnefopt.run(module, inputs)
    assert any("equalized" in op.properties["label"].data for op in module.walk() if op.name == "nnef.variable")
    np.testing.assert_allclose(after["output"], before["output"], rtol=1e-4, atol=1e-4 * np.abs(before["output"]).max())
