"""Empirical bias correction: a quantized layer's output is off by a mean error per
channel (rounding its weights is biased for the inputs it meets, and errors upstream
shift its inputs); on the calibration inputs, that mean is measured against the float
model and taken out of the layer's int32 bias.

The error is measured before the layer's own entry rounds and clips its output (a relu
folded into it would count as error): a copy of the quantized module without those
entries is run (its activations downstream keep theirs), next to the float module, and
every layer is corrected at once. An output that another layer reads keeps its entry:
that layer's bias is in its scale.
"""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation

from nnefopt.dialects.layout import is_channel_last
from nnefopt.dialects.nnef import from_attribute, weight_attribute, weight_of
from nnefopt.dialects.quantization import quantization_of, set_quantization
from nnefopt.export.from_ir import graph_of, tensor_names
from nnefopt.traits import Biased, ChannelLastCapable

INT32 = (-(2**31 - 1), 2**31 - 1)


def quantized_layers(module: ModuleOp) -> list[Operation]:
    """The Biased operations whose input and filter are quantized and whose bias is an
    int32 variable in the accumulator's scale."""
    layers = []
    for op in graph_of(module).body.block.ops:
        if not op.has_trait(Biased) or len(op.operands) < 3:
            continue
        bias = op.operands[2]
        if quantization_of(op.operands[0]) is None or quantization_of(op.operands[1]) is None:
            continue
        if getattr(bias.owner, "name", "") == "nnef.variable" and quantization_of(bias) is None:
            layers.append(op)
    return layers


def channel_axis(op: Operation, rank: int) -> int:
    """Where a layer's output channels are: axis 1 of a convolution's NCHW output (last
    when the layout pass made it channel-last), the last axis of a linear's."""
    return 1 if op.has_trait(ChannelLastCapable) and not is_channel_last(op) else rank - 1


def correct_biases(reference: ModuleOp, module: ModuleOp, batches: list[dict[str, np.ndarray]]) -> int:
    """Correct the biases of `module`'s quantized layers against the float `reference`
    (same tensor names) on `batches`; returns how many layers were corrected."""
    from nnefopt.api import run

    layers = quantized_layers(module)
    if not layers or not batches:
        return 0
    names = tensor_names(module)
    wanted = [names[op.results[0]] for op in layers]
    probe = module.clone()
    for op in quantized_layers(probe):
        # A layer reading this output needs its entry (its int32 bias is in that scale):
        # there the error is measured after the output's rounding.
        if not any(use.operation.has_trait(Biased) for use in op.results[0].uses):
            set_quantization(op.results[0], None)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for batch in batches:
        ref, got = run(reference, batch, record=True), run(probe, batch, record=True)
        for op, name in zip(layers, wanted):
            if name not in ref or name not in got or ref[name].shape != got[name].shape:
                continue
            axis = channel_axis(op, ref[name].ndim)
            error = np.asarray(got[name], np.float64) - np.asarray(ref[name], np.float64)
            others = tuple(i for i in range(error.ndim) if i != axis)
            sums[name] = sums.get(name, 0.0) + error.sum(axis=others)
            counts[name] = counts.get(name, 0) + error.size // error.shape[axis]
    corrected = 0
    for op, name in zip(layers, wanted):
        if name not in sums:
            continue
        mean = sums[name] / counts[name]
        scale = float(quantization_of(op.operands[0]).params()["scale"]) * \
            np.asarray(quantization_of(op.operands[1]).params()["scale"], np.float64)
        variable = op.operands[2].owner
        data = variable.attributes["nnef.data"]
        codes = np.asarray(weight_of(data))
        step = np.rint(mean / scale).reshape(1, -1)
        new = np.clip(codes.astype(np.int64) - step.astype(np.int64), *INT32).astype(np.int32).reshape(codes.shape)
        variable.attributes["nnef.data"] = weight_attribute(from_attribute(variable.properties["label"]), new, data.type)
        corrected += 1
    return corrected
