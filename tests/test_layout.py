"""The layout pass: channel-last convolution and pooling, transposes only where the
graph needs them, channel-first NNEF again when written."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest

import nnefopt
from nnefopt.cli import main
from nnefopt.errors import NNEFError, NNEFWarning
from nnefopt.dialects.layout import LAYOUT, is_channel_last
from nnefopt.passes.layout import channel_first, eligible
from nnefopt.traits import AxesReduction, ChannelLastCapable, ElementWise
from tests.models import SHARED, variants
from tests.test_roundtrip import assert_same_graph, khronos_load

CONV_MODELS = ("resnet8", "mobilenetv2_035", "tiny_unet", "cnn_digits", "cnn_digits_q8")
CONV_VARIANTS = [(name, path) for name, path in variants() if name.split("/")[0] in CONV_MODELS]
IDS = [name for name, _ in CONV_VARIANTS]

# Transposes left after `layout`: one after the input and one before the first operation
# that needs channel-first data (the reshape before the classifier, or the output).
# torch-to-nnef's mobilenet (and tract's, made from it) calls its `hard_tanh` fragment
# 35 times, a barrier each (canonicalize inlines it: then 2); its tiny_unet upsamples by
# reshape/tile/reshape, and tract's by a resize that lower-tract makes standard.
TRANSPOSES = {"mobilenetv2_035/t2n": 72, "mobilenetv2_035/tract": 72, "tiny_unet/t2n": 5, "tiny_unet/tract": 6}


def load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        return nnefopt.load(path)


def graph_ops(module):
    graph = next(op for op in module.ops if op.name == "nnef.graph")
    return list(graph.body.block.ops)


def _absorbs(op) -> bool:
    """Operations a transpose moves through: tagged ones take channel-last data."""
    name = op.name.removeprefix("nnef.")
    return is_channel_last(op) or op.has_trait(ElementWise) or op.has_trait(AxesReduction) \
        or name in ("concat", "transpose")


def _from_inputs(value) -> bool:
    """Computed from graph inputs and weights alone, without a layout operation (tract's
    input quantization, say)."""
    owner = value.owner
    if owner.name in ("nnef.external", "nnef.tract_core_external", "nnef.constant", "nnef.variable"):
        return True
    return not is_channel_last(owner) and owner.name != "nnef.transpose" and _absorbs(owner) \
        and all(_from_inputs(v) for v in owner.operands)


def _barrier(op) -> bool:
    """An operation that takes channel-first data: no layout operation, or an element-wise
    one or concat with an operand straight from such an operation."""
    if op.name == "nnef.return" or not _absorbs(op):
        return True
    return not is_channel_last(op) and any(
        not _absorbs(v.owner) and v.owner.name not in ("nnef.constant", "nnef.variable") for v in op.operands)


def _stuck_at_barrier(transpose) -> bool:
    """A transpose may stay next to a graph input or output, or next to a barrier."""
    value = transpose.operands[0]
    return _from_inputs(value) or _barrier(value.owner) or any(_barrier(u.operation) for u in transpose.results[0].uses)


@pytest.mark.parametrize("name,path", CONV_VARIANTS, ids=IDS)
def test_transposes_stay_only_at_the_graphs_edges_and_barriers(name, path):
    module = load(path)
    eligible_ops = sum(eligible(op) for op in graph_ops(module))
    nnefopt.optimize(module, "layout")
    ops = graph_ops(module)
    tagged = [op for op in ops if is_channel_last(op)]
    transposes = [op for op in ops if op.name == "nnef.transpose"]
    assert eligible_ops > 0 and len(tagged) == eligible_ops
    assert not any(eligible(op) for op in ops)
    assert all(op.has_trait(ChannelLastCapable) for op in tagged)
    assert len(transposes) == TRANSPOSES.get(name, 2)
    assert all(_stuck_at_barrier(t) for t in transposes)


def test_resnet8_keeps_one_transpose_after_the_input_and_one_before_the_reshape():
    module = nnefopt.optimize(load(variants_path("resnet8/kt")), "layout")
    first, last = (op for op in graph_ops(module) if op.name == "nnef.transpose")
    assert first.operands[0].owner.name == "nnef.external"
    assert list(first.results[0].type.get_shape()) == [1, 32, 32, 3]
    assert [u.operation.name for u in first.results[0].uses] == ["nnef.conv"]
    assert last.operands[0].owner.name == "nnef.mean_reduce" and not is_channel_last(last.operands[0].owner)
    assert [u.operation.name for u in last.results[0].uses] == ["nnef.reshape"]
    assert list(last.results[0].type.get_shape()) == [1, 64, 1, 1]


def variants_path(name):
    return dict(variants())[name]


@pytest.mark.parametrize("name,path", CONV_VARIANTS, ids=IDS)
def test_nchw_after_nhwc_gives_the_original_operations_back(name, path):
    module = load(path)
    before = Counter(op.name for op in graph_ops(module))
    nnefopt.optimize(module, "layout,layout{to=nchw}")
    ops = graph_ops(module)
    assert not any(is_channel_last(op) for op in ops)
    assert Counter(op.name for op in ops) == before


@pytest.mark.parametrize("name,path", CONV_VARIANTS, ids=IDS)
def test_written_model_is_the_same_with_or_without_layout(tmp_path, name, path):
    """The exporter restores channel-first operations, tensor names, graph.quant entries."""
    assert main([str(path), "-o", str(tmp_path / "plain"), "-q"]) == 0
    assert main([str(path), "-p", "layout", "-o", str(tmp_path / "layout"), "-q"]) == 0
    for file in ("graph.nnef", "graph.quant"):
        plain, laid = tmp_path / "plain" / file, tmp_path / "layout" / file
        assert plain.exists() == laid.exists()
        if plain.exists():
            assert laid.read_text() == plain.read_text()


KT_CONV = [(name, path) for name, path in CONV_VARIANTS if name.endswith("/kt")]


@pytest.mark.parametrize("name,path", KT_CONV, ids=[n for n, _ in KT_CONV])
def test_written_model_loads_in_khronos(tmp_path, name, path):
    """Khronos' parser reads what is written after `layout`, with the shapes it infers, as
    the same graph as what is written without it."""
    assert main([str(path), "-p", "layout", "-o", str(tmp_path / "out"), "-q"]) == 0
    assert main([str(path), "-o", str(tmp_path / "plain"), "-q"]) == 0
    assert_same_graph(khronos_load(tmp_path / "out"), khronos_load(tmp_path / "plain"))


SMALL = """version 1.0;

graph G( a ) -> ( y, m, s )
{
    a = external<scalar>(shape = [2, 3, 6, 5]);
    w = constant<scalar>(shape = [4, 3, 3, 3], value = [0.5]);
    k = constant<scalar>(shape = [1, 4], value = [1.0, -2.0, 3.0, -4.0]);
    q = constant<scalar>(shape = [1, 1, 6, 5], value = [0.25]);
    c1 = conv(a, w, padding = [(1, 1), (1, 1)]);
    r = leaky_relu(sub(c1, k), alpha = 0.5);
    p = avg_pool(r, size = [1, 1, 2, 2], stride = [1, 1, 1, 1], padding = [(0, 0), (0, 0), (1, 0), (0, 1)], border = 'ignore');
    b = mul(p, q);
    g = concat([b, clamp(r, -1.0, 1.0)], axis = 1);
    y = nearest_upsample(g, factor = [2, 1]);
    m = max_reduce(r, axes = [1, 3]);
    s = reshape(g, shape = [2, -1]);
}
"""


@pytest.mark.parametrize("weights", ["constant", "variable"])
def test_layout_keeps_the_numbers_of_every_rewrite(tmp_path, weights):
    """Per-channel and spatial constants (or variables with data, as the writer makes
    them), sub, clamp, concat, a reduction, resampling and a padded pooling, checked
    against the channel-first model on random inputs."""
    (tmp_path / "graph.nnef").write_text(SMALL)
    module = load(tmp_path)
    if weights == "variable":
        nnefopt.save(module, tmp_path / "saved")
        module = load(tmp_path / "saved")
    x = np.random.default_rng(3).standard_normal((2, 3, 6, 5)).astype(np.float32)
    before = nnefopt.run(module, {"a": x})
    # what the writer makes of nearest_upsample (reshape, tile, reshape) is no layout operation
    upsample = {op.name for op in graph_ops(module)} & {"nnef.nearest_upsample"}
    nnefopt.optimize(module, "layout")
    ops = graph_ops(module)
    # in; out of y (or before its reshape, with s's), of m, before s's reshape
    assert sum(op.name == "nnef.transpose" for op in ops) == (4 if upsample else 3)
    assert {op.name for op in ops if is_channel_last(op)} == {"nnef.conv", "nnef.avg_pool", *upsample}
    permuted = {op.results[0].name_hint: list(op.results[0].type.get_shape()) for op in ops
                if op.name == f"nnef.{weights}" and op.results[0].name_hint in ("k_nhwc", "q_nhwc")}
    assert permuted == {"k_nhwc": [1, 1, 1, 4], "q_nhwc": [1, 6, 5]}
    after = nnefopt.run(module, {"a": x})
    for key in before:
        np.testing.assert_allclose(after[key], before[key], rtol=1e-5, atol=1e-6)
    restored = nnefopt.run(nnefopt.optimize(module, "layout{to=nchw}"), {"a": x})
    for key in before:
        np.testing.assert_allclose(restored[key], before[key], rtol=1e-5, atol=1e-6)
    assert not any(op.name == "nnef.transpose" for op in graph_ops(module))


def test_channel_first_leaves_an_untagged_module_alone():
    module = load(variants_path("cnn_digits/kt"))
    assert channel_first(module) is module
    nnefopt.optimize(module, "layout")
    copy = channel_first(module)
    assert copy is not module and not any(is_channel_last(op) for op in copy.walk())
    assert any(is_channel_last(op) for op in module.walk())  # the caller's module is unchanged


def test_verifier_reads_tagged_shapes_channel_last():
    module = nnefopt.optimize(load(variants_path("cnn_digits/kt")), "layout")
    module.verify()
    conv = next(op for op in graph_ops(module) if op.name == "nnef.conv")
    del conv.properties[LAYOUT]
    with pytest.raises(Exception, match="differ"):
        conv.verify()


def test_bad_direction_is_an_error():
    with pytest.raises(NNEFError, match="nhwc or nchw"):
        nnefopt.optimize(load(variants_path("cnn_digits/kt")), "layout{to=nhcw}")


@pytest.mark.parametrize("model", ["resnet8/kt", "mobilenetv2_035/t2n", "tiny_unet/kt"])
def test_layout_after_the_other_passes_takes_fused_convolutions_too(model):
    """After fuse, a convolution carries its activation (conv_relu, conv_clamp...): it is
    channel-last like a convolution, and only the two edge transposes remain."""
    module = load(variants_path(model))
    inputs = {"input": np.load(SHARED / model.split("/")[0] / "input.npy")}
    before = nnefopt.run(module, inputs)
    nnefopt.optimize(module, "fold-constants,canonicalize,fuse,canonicalize,layout")
    ops = graph_ops(module)
    assert any(op.name.startswith("nnef.conv_") and is_channel_last(op) for op in ops)
    assert sum(op.name == "nnef.transpose" for op in ops) == 2
    after = nnefopt.run(module, inputs)
    np.testing.assert_allclose(after["output"], before["output"], rtol=1e-4, atol=1e-5)
