"""Small quantized NNEF models in the representation the quantize pass makes: weights as
integer codes under their entry, int32 biases without one (in the accumulator's scale),
activations as reals under `zero_point_linear_quantize` entries.

Not a test file: the semantics tests build their modules here.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

import nnefopt
from nnefopt.errors import NNEFWarning
from nnefopt.frontend.tensor_file import write_tensor


def entry(scale, zero_point=0, bits=8, signed=False) -> dict:
    return {"scale": scale, "zero_point": zero_point, "bits": bits, "signed": signed}


def _quant_line(name: str, q: dict) -> str:
    def text(v):
        return "[" + ", ".join(repr(float(x)) if isinstance(x, float) else str(int(x)) for x in v) + "]" \
            if isinstance(v, (list, tuple)) else (repr(float(v)) if isinstance(v, float) else str(v))

    return (f'"{name}": zero_point_linear_quantize(zero_point = {text(q["zero_point"])}, scale = {text(q["scale"])}, '
            f'bits = {q["bits"]}, signed = {str(q["signed"]).lower()}, symmetric = false);')


def write_model(folder: Path, inputs: dict[str, list[int]], body: list[str], outputs: list[str],
                quant: dict[str, dict], weights: dict[str, np.ndarray]) -> Path:
    """An NNEF folder: `inputs` by name and shape, `body` lines (variables are declared
    from `weights`: integer arrays as quantized codes), graph.quant from `quant`."""
    folder.mkdir(parents=True)
    lines = [f"    {name} = external(shape = {shape});" for name, shape in inputs.items()]
    for name, array in weights.items():
        kind = "scalar" if name in quant or array.dtype.kind == "f" else "integer"
        lines.append(f"    {name} = variable<{kind}>(shape = {list(array.shape)}, label = '{name}');")
        write_tensor(folder / f"{name}.dat", array, quantized=array.dtype.kind in "iu" and name in quant)
    lines += [f"    {line};" for line in body]
    graph = f"version 1.0;\n\ngraph G( {', '.join(inputs)} ) -> ( {', '.join(outputs)} )\n{{\n" + "\n".join(lines) + "\n}\n"
    (folder / "graph.nnef").write_text(graph)
    (folder / "graph.quant").write_text("\n".join(_quant_line(n, q) for n, q in quant.items()) + "\n")
    return folder


def load(folder: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        return nnefopt.load(folder)


RNG_SEED = 11


def conv_per_channel(folder: Path, scales: list[float] | float = (0.011, 0.023, 0.0047, 0.017)) -> Path:
    """conv over signed int8 activations with a nonzero zero point, per-channel weight
    scales, an int32 bias and an output zero point; then relu under the same entry."""
    rng = np.random.default_rng(RNG_SEED)
    scales = list(scales) if isinstance(scales, tuple) else scales
    quant = {"xq": entry(0.031, -3, signed=True), "w": entry(scales, 0, signed=True),
             "c": entry(0.043, 5, signed=True), "r": entry(0.043, 5, signed=True)}
    weights = {"w": rng.integers(-127, 128, (4, 2, 3, 3)).astype(np.int8),
               "b": rng.integers(-3000, 3000, (4,)).astype(np.int32)}
    body = ["xq = copy(x)", "c = conv(xq, w, b, padding = [(1, 1), (1, 1)])", "r = relu(c)"]
    return write_model(folder, {"x": [1, 2, 6, 6]}, body, ["r"], quant, weights)


def conv_signed(folder: Path) -> Path:
    """conv_per_channel with one weight scale (what tract takes)."""
    return conv_per_channel(folder, 0.017)


def linear_no_bias(folder: Path) -> Path:
    """linear over unsigned activations with a zero point, per-tensor weights, no bias."""
    rng = np.random.default_rng(RNG_SEED + 1)
    quant = {"xq": entry(0.02, 120), "w": entry(0.006, 0, signed=True), "y": entry(0.09, 131)}
    weights = {"w": rng.integers(-127, 128, (7, 12)).astype(np.int8)}
    return write_model(folder, {"x": [3, 12]}, ["xq = copy(x)", "y = linear(xq, w)"], ["y"], quant, weights)


def matmul_activations(folder: Path) -> Path:
    """matmul of two quantized activations (signed and unsigned, with zero points), B
    transposed."""
    quant = {"aq": entry(0.05, 7, signed=True), "bq": entry(0.03, 100), "m": entry(0.21, -10, signed=True)}
    body = ["aq = copy(a)", "bq = copy(b)", "m = matmul(aq, bq, transposeB = true)"]
    return write_model(folder, {"a": [4, 9], "b": [5, 9]}, body, ["m"], quant, {})


def depthwise_no_bias(folder: Path) -> Path:
    """A depthwise conv (groups = 0) without a bias, strided."""
    rng = np.random.default_rng(RNG_SEED + 2)
    quant = {"xq": entry(0.025, 128), "w": entry(0.013, 0, signed=True), "c": entry(0.05, 0)}
    weights = {"w": rng.integers(-127, 128, (3, 1, 3, 3)).astype(np.int8)}
    body = ["xq = copy(x)", "c = conv(xq, w, groups = 0, stride = [2, 2], padding = [(1, 1), (1, 1)])"]
    return write_model(folder, {"x": [1, 3, 7, 7]}, body, ["c"], quant, weights)


def ties_conv(folder: Path) -> Path:
    """Unit input and filter scales, output scale 2 and an odd output zero point: on
    integer inputs half the accumulators are exact ties, and where the zero point is
    added (before or after rounding) decides them."""
    rng = np.random.default_rng(RNG_SEED + 3)
    quant = {"xq": entry(1.0, 0, signed=True), "w": entry(1.0, 0, signed=True), "c": entry(2.0, 5, signed=True)}
    weights = {"w": rng.integers(-3, 4, (4, 2, 3, 3)).astype(np.int8)}
    return write_model(folder, {"x": [1, 2, 5, 5]}, ["xq = copy(x)", "c = conv(xq, w, padding = [(1, 1), (1, 1)])"],
                       ["c"], quant, weights)


def ties_linear(folder: Path) -> Path:
    """ties_conv's scales for a linear."""
    rng = np.random.default_rng(RNG_SEED + 4)
    quant = {"xq": entry(1.0, 0, signed=True), "w": entry(1.0, 0, signed=True), "y": entry(2.0, 5, signed=True)}
    weights = {"w": rng.integers(-3, 4, (6, 10)).astype(np.int8)}
    return write_model(folder, {"x": [4, 10]}, ["xq = copy(x)", "y = linear(xq, w)"], ["y"], quant, weights)


TIES = {"ties_conv": ties_conv, "ties_linear": ties_linear}

SMALL = {"conv_per_channel": conv_per_channel, "conv_signed": conv_signed, "linear_no_bias": linear_no_bias,
         "matmul_activations": matmul_activations, "depthwise_no_bias": depthwise_no_bias}
