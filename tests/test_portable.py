"""portable-spelling: what it writes computes what the original computes.

Each rewritten deconv runs through the reference interpreter before the pass (its
deconv kernel, the specification's meaning) and after (conv, pad, reshape, ...), over
random geometries: strides 1-3, kernels 1-4, explicit and automatic padding, dilation,
groups, an explicit output_shape, one and two spatial dimensions."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

import nnefopt
from nnefopt.errors import NNEFWarning
from nnefopt.export.nnef_text import format_model
from nnefopt.frontend.tensor_file import write_tensor


def _load(folder: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        return nnefopt.load(folder)


def _operations(module) -> list[str]:
    graph = next(op for op in module.ops if op.name == "nnef.graph")
    return [op.name.removeprefix("nnef.") for op in graph.body.block.ops if op.name != "nnef.return"]


def deconv_model(folder: Path, x_shape, weights, bias, attribs: str) -> None:
    """A graph of one deconv; `bias` is an array (a variable), a number (a literal) or None."""
    folder.mkdir(parents=True, exist_ok=True)
    write_tensor(folder / "w.dat", weights)
    lines = [f"    w = variable<scalar>(shape = {list(weights.shape)}, label = 'w');"]
    bias_arg = ""
    if isinstance(bias, np.ndarray):
        write_tensor(folder / "b.dat", bias)
        lines.append(f"    b = variable<scalar>(shape = {list(bias.shape)}, label = 'b');")
        bias_arg = ", b"
    elif bias is not None:
        bias_arg = f", {float(bias)}"
    (folder / "graph.nnef").write_text(
        "version 1.0;\n\ngraph g( input ) -> ( output )\n{\n"
        f"    input = external<scalar>(shape = {list(x_shape)});\n" + "\n".join(lines) + "\n"
        f"    output = deconv(input, w{bias_arg}{attribs});\n}}\n")


@st.composite
def deconv_cases(draw):
    rank = draw(st.integers(1, 2))
    groups = draw(st.sampled_from([1, 2, 0]))  # 0: one group per input channel
    c_in = draw(st.integers(1, 3)) * (groups or 1)
    c_out_per_group = draw(st.integers(1, 3)) if groups else 1  # with groups 0, output_shape needs 1
    stride = [draw(st.integers(1, 3)) for _ in range(rank)]
    extents = [draw(st.integers(1, 4)) for _ in range(rank)]
    auto = draw(st.booleans())
    if draw(st.integers(0, 3)) == 0:  # the learned upsampling: kernel == stride, no padding
        size, dilation = list(stride), [1] * rank
        padding = [] if auto else [(0, 0)] * rank
    else:
        size = [draw(st.integers(1, 4)) for _ in range(rank)]
        dilation = [draw(st.integers(1, 2)) for _ in range(rank)]
        padding = [] if auto else [(draw(st.integers(0, (k - 1) * d + 1)), draw(st.integers(0, (k - 1) * d + 1)))
                                   for k, d in zip(size, dilation)]
    dilated = [(k - 1) * d + 1 for k, d in zip(size, dilation)]
    natural = [(n - 1) * s + f - p - q for n, s, f, (p, q) in zip(extents, stride, dilated, padding or [(0, 0)] * rank)]
    output_shape = []
    if draw(st.booleans()):  # any extent that maps back to the input's: X + p + q - f_d in [(n-1)s, ns)
        if auto:
            spatial = [n * s - draw(st.integers(0, s - 1)) for n, s in zip(extents, stride)]
        else:
            spatial = [m + draw(st.integers(0, s - 1)) for m, s in zip(natural, stride)]
        assume(all(m >= 1 for m in spatial))
        output_shape = [1, c_out_per_group * (groups or c_in), *spatial]
    elif not auto:
        assume(all(m >= 1 for m in natural))
    groups_count = groups or c_in
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((c_in, c_out_per_group, *size)).astype(np.float32)
    bias_kind = draw(st.sampled_from(["none", "literal", "vector"]))
    bias = {"none": None, "literal": 0.5,
            "vector": rng.standard_normal((1, c_out_per_group * groups_count)).astype(np.float32)}[bias_kind]
    x = rng.standard_normal((1, c_in, *extents)).astype(np.float32)
    attribs = f", stride = {stride}, dilation = {dilation}, groups = {groups}"
    if padding:
        attribs += ", padding = [" + ", ".join(f"({p}, {q})" for p, q in padding) + "]"
    if output_shape:
        attribs += f", output_shape = {output_shape}"
    attribs += draw(st.sampled_from(["", ", border = 'ignore'"]))
    return x, weights, bias, attribs


@settings(max_examples=200, deadline=None)
@given(deconv_cases())
def test_deconv_spellings_compute_the_deconv(case):
    x, weights, bias, attribs = case
    with tempfile.TemporaryDirectory() as tmp:
        deconv_model(Path(tmp), x.shape, weights, bias, attribs)
        module = _load(tmp)
        expected = nnefopt.run(module, {"input": x})["output"]
        nnefopt.optimize(module, "portable-spelling")
    operations = _operations(module)
    assert "deconv" not in operations
    event("zeros inserted" if "pad" in operations else "depth to space" if "transpose" in operations else "conv")
    event("cropped" if "slice" in operations else "padded")
    got = nnefopt.run(module, {"input": x})["output"]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("groups", [1, 2])
def test_kernel_as_stride_is_a_pointwise_conv_and_a_depth_to_space(tmp_path, rank, groups):
    """The cheap spelling: as many multiply-adds as the deconv, and no zeros."""
    rng = np.random.default_rng(rank)
    stride = [2, 3, 2][:rank]
    weights = rng.standard_normal((4, 3, *stride)).astype(np.float32)
    bias = rng.standard_normal((1, 3 * groups)).astype(np.float32)
    x = rng.standard_normal((2, 4, *[3] * rank)).astype(np.float32)
    deconv_model(tmp_path, x.shape, weights, bias, f", stride = {stride}, groups = {groups}")
    module = _load(tmp_path)
    expected = nnefopt.run(module, {"input": x})["output"]
    nnefopt.optimize(module, "portable-spelling")
    assert [o for o in _operations(module) if o not in ("external", "variable")] == \
        ["conv", "reshape", "transpose", "reshape"]
    np.testing.assert_allclose(nnefopt.run(module, {"input": x})["output"], expected, rtol=1e-5, atol=1e-5)


def test_deconv_stays_where_no_spelling_is_known(tmp_path):
    (tmp_path / "graph.nnef").write_text("""version 1.0;
graph g( input, filter ) -> ( a, b )
{
    input = external<scalar>(shape = [1, 2, 4, 4]);
    filter = external<scalar>(shape = [2, 3, 3, 3]);
    a = deconv(input, filter, stride = [2, 2]);
    w = constant<scalar>(shape = [2, 3, 3, 3], value = [0.5]);
    b = deconv(input, w, stride = [2, 2], border = 'replicate');
}
""")
    module = nnefopt.optimize(_load(tmp_path), "portable-spelling")
    assert _operations(module).count("deconv") == 2  # a computed filter; a replicated border


def test_constants(tmp_path):
    (tmp_path / "graph.nnef").write_text("""version 1.0;
graph g( input ) -> ( output, six, table )
{
    input = external<scalar>(shape = [1, 4]);
    six = constant<scalar>(shape = [], value = [6.0]);
    table = constant<scalar>(shape = [1, 4], value = [1.0, 2.0, 3.0, 4.0]);
    output = clamp(input + table, 0.0, six);
}
""")
    module = _load(tmp_path)
    x = np.linspace(-5, 5, 4, dtype=np.float32).reshape(1, 4)
    expected = nnefopt.run(module, {"input": x})
    nnefopt.save(module, tmp_path / "out")
    text = (tmp_path / "out" / "graph.nnef").read_text()
    assert "constant" not in text
    assert "six = copy<scalar>(6.0);" in text
    assert "table = variable<scalar>(shape = [1, 4], label = 'table');" in text
    assert "clamp(t1, 0.0, six)" in text  # the literal stays a literal
    assert "graph g( input ) -> ( output, six, table )" in text
    written = _load(tmp_path / "out")
    for name, value in nnefopt.run(written, {"input": x}).items():
        np.testing.assert_array_equal(value, expected[name])
    nnefopt.save(module, tmp_path / "kept", keep_spelling=True)
    assert "table = constant<scalar>(shape = [1, 4], value = [1.0, 2.0, 3.0, 4.0]);" in \
        (tmp_path / "kept" / "graph.nnef").read_text()
    assert "constant" in nnefopt.to_mlir(module)  # save rewrites a copy


def test_unary_minus_on_tensors_in_fragments(tmp_path):
    (tmp_path / "graph.nnef").write_text("""version 1.0;
extension KHR_enable_fragment_definitions;
extension KHR_enable_operator_expressions;

fragment f( x: tensor<scalar>, k: integer ) -> ( y: tensor<scalar> )
{
    m = -k;
    z = x * x;
    y = -z + pad(-x, padding = [(0, 0), (0, -m)]) * -2.0;
}

graph g( input ) -> ( output )
{
    input = external<scalar>(shape = [1, 4]);
    output = f(input, k = 0);
}
""")
    module = _load(tmp_path)
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    expected = nnefopt.run(module, {"input": x})["output"]
    nnefopt.optimize(module, "portable-spelling")
    text = format_model(nnefopt.api.standard_model(module, portable=False))
    assert "m = -k;" in text  # an integer: no tensor operation
    assert "y = neg(z) + pad(neg(x), padding = [(0, 0), (0, -m)]) * -2.0;" in text
    np.testing.assert_array_equal(nnefopt.run(module, {"input": x})["output"], expected)


def linear_model(folder: Path, x_shape, filter_, bias) -> dict[str, np.ndarray]:
    """A graph of one linear on `input`. The filter and the bias are arrays (variables),
    shapes (tuples: externals, computed), a number (a literal bias) or None (no bias);
    the arrays the externals other than `input` are fed with."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(x_shape))
    inputs, lines, args = {}, [], ["input"]
    for name, value in (("w", filter_), ("b", bias)):
        if isinstance(value, np.ndarray):
            write_tensor(folder / f"{name}.dat", value)
            lines.append(f"    {name} = variable<scalar>(shape = {list(value.shape)}, label = '{name}');")
        elif isinstance(value, tuple):
            inputs[name] = rng.standard_normal(value).astype(np.float32)
            lines.append(f"    {name} = external<scalar>(shape = {list(value)});")
        args.append(name if isinstance(value, (np.ndarray, tuple)) else "" if value is None else f"{float(value)}")
    (folder / "graph.nnef").write_text(
        f"version 1.0;\n\ngraph g( {', '.join(['input', *inputs])} ) -> ( output )\n{{\n"
        f"    input = external<scalar>(shape = {list(x_shape)});\n" + "\n".join(lines) + "\n"
        f"    output = linear({', '.join(a for a in args if a)});\n}}\n")
    return inputs


@pytest.mark.parametrize("rank", [3, 4])
@pytest.mark.parametrize("filter_kind", ["weight", "computed"])
@pytest.mark.parametrize("bias_kind", ["none", "literal", "[O]", "[1, O]", "aligned", "[1]", "computed [O]",
                                       "computed, more leading 1s"])
def test_batched_linear_is_its_body(tmp_path, rank, filter_kind, bias_kind):
    """linear on [B, T, C] (torch-to-nnef's, for tract) → matmul(transposeB) + a bias of
    the input's rank, channels last: what the interpreter's linear computes, and what
    the Khronos parser infers shapes for (its linear takes rank 2 only)."""
    from tests.test_roundtrip import khronos_load

    rng = np.random.default_rng(rank)
    c_in, c_out = 4, 3
    x_shape = (2, 5, c_in) if rank == 3 else (2, 3, 5, c_in)
    filter_shape = (1,) * (rank - 2) + (c_out, c_in)
    filter_ = rng.standard_normal(filter_shape).astype(np.float32) if filter_kind == "weight" else filter_shape
    vector = rng.standard_normal(c_out).astype(np.float32)
    bias = {"none": None, "literal": 0.5, "[O]": vector, "[1, O]": vector.reshape(1, -1),
            "aligned": vector.reshape((1,) * (rank - 1) + (-1,)), "[1]": np.array([0.25], np.float32),
            "computed [O]": (c_out,), "computed, more leading 1s": (1,) * rank + (c_out,)}[bias_kind]
    inputs = linear_model(tmp_path / "in", x_shape, filter_, bias)
    inputs["input"] = rng.standard_normal(x_shape).astype(np.float32)
    module = _load(tmp_path / "in")
    expected = nnefopt.run(module, inputs)["output"]
    nnefopt.save(module, tmp_path / "out")  # a copy, respelled
    nnefopt.optimize(module, "portable-spelling")
    operations = [o for o in _operations(module) if o not in ("external", "variable", "constant")]  # a literal
    layout = {"computed [O]": ["unsqueeze"], "computed, more leading 1s": ["reshape"]}.get(bias_kind, [])
    assert operations == layout + ["matmul"] + (["add"] if bias is not None else [])
    got = nnefopt.run(module, inputs)["output"]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    graph = khronos_load(tmp_path / "out")
    assert graph.tensors["output"].shape == list(expected.shape)
    np.testing.assert_allclose(nnefopt.run(_load(tmp_path / "out"), inputs)["output"], expected, rtol=1e-5, atol=1e-5)
