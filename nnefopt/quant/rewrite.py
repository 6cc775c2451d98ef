"""The quantized graph made explicit, as cnn_digits_q8 (PyTorch + torch-to-nnef for
tract) has it: an entry on the tensor type of every quantized activation, int8 filter
codes (`nnef.item` = quantized integer) in variables whose type carries the filter's
entry, int32 biases without an entry (in the accumulator's scale), and a `copy` where a
float value is quantized or a value is requantized into a shared scale.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import StringAttr
from xdsl.ir import Operation, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter

from nnefopt.dialects.nnef import OPERATIONS, tensor_type, to_attribute, weight_attribute
from nnefopt.dialects.quantization import (
    QuantAttr,
    quantization,
    quantization_of,
    set_quantization,
    unquantized,
    with_quantization,
)
from nnefopt.dialects.tensor_names import fresh_name, set_tensor_name
from nnefopt.export.from_ir import tensor_names
from nnefopt.frontend.tensor_file import INT, QINT
from nnefopt.passes.rewriting import (
    Weights,
    erase_dead_producers,
    known_value,
)
from nnefopt.quant.assign import Assignment
from nnefopt.quant.bias_correction import channel_axis
from nnefopt.quant.weights import quantize_layer

ALGORITHM = "zero_point_linear_quantize"


def activation_entry(scale: float, zero_point: int, bits: int) -> QuantAttr:
    """Asymmetric unsigned codes: what tract's (and qnnpack's) integer conv reads."""
    return quantization(ALGORITHM, {"zero_point": int(zero_point), "scale": float(scale), "bits": bits,
                                    "signed": False, "symmetric": False})


def filter_entry(scale, bits: int) -> QuantAttr:
    scale = [float(s) for s in scale] if isinstance(scale, np.ndarray) else float(scale)
    return quantization(ALGORITHM, {"zero_point": 0, "scale": scale, "bits": bits, "signed": True, "symmetric": True})


@dataclass
class QuantizedLayer:
    name: str
    per_channel: bool
    raised: bool  # the filter scale was raised so the bias fits int32


def insert_copies(module, plan: Assignment, entries: dict[int, QuantAttr]) -> int:
    """The planned copies, each giving its source's value the entry of its group, read by
    its consumers; a requantization into the entry its source already has is left out."""
    taken = set(tensor_names(module).values())
    names = tensor_names(module)
    made = 0
    for copy in plan.copies:
        entry = entries[plan.find(copy.group)]
        source = copy.source
        if source in plan.group_of and entries[plan.find(plan.group_of[source])] == entry:
            continue
        op = OPERATIONS["copy"](operands=[source], result_types=[_with_entry(source, entry)])
        op.location = source.owner.location
        set_tensor_name(op.results[0], fresh_name(f"{names.get(source, 'input')}_q", taken))
        Rewriter.insert_op(op, InsertPoint.after(source.owner))
        for consumer in copy.consumers:
            consumer.operands = [op.results[0] if v is source else v for v in consumer.operands]
        made += 1
    return made


def _with_entry(value: SSAValue, entry: QuantAttr):
    return with_quantization(unquantized(value.type), entry)


def set_entries(plan: Assignment, entries: dict[int, QuantAttr]) -> None:
    for group, values in plan.members().items():
        for value in values:
            set_quantization(value, entries[group])


def quantize_weights(module, layers: list[Operation], *, bits: int, per_channel: bool,
                     broadcast: bool = False) -> list[QuantizedLayer]:
    """Integer filter and bias variables for each layer (whose input has its entry now);
    with `broadcast`, per-channel scales that all hold the per-tensor scale."""
    weights = Weights(module)
    names = tensor_names(module)
    done = []
    for op in layers:
        input_, filter_, bias = op.operands[0], op.operands[1], op.operands[2]
        real_filter = np.asarray(known_value(filter_), np.float64)
        real_bias = np.asarray(known_value(bias), np.float64)
        out_shape = op.results[0].type.get_shape()
        channels = out_shape[channel_axis(op, len(out_shape))]
        by_channel = per_channel and op.OP_DEF.slot("output_channel_axis", 0) == 0 and real_filter.shape[0] == channels
        input_scale = float(quantization_of(input_).params()["scale"])
        codes = quantize_layer(real_filter, real_bias, input_scale, channels, bits=bits, per_channel=by_channel,
                               broadcast=broadcast)
        if real_bias.size == channels:  # the bias's own shape (a batched linear's is [1, 1, C])
            codes = codes._replace(bias_codes=codes.bias_codes.reshape(real_bias.shape))
        base = names.get(op.results[0], "layer")
        new_filter = _variable(weights, codes.filter_codes, weights.hint(filter_, "q8") if _is_variable(filter_)
                               else f"{base}_weight_q8", filter_entry(codes.filter_scale, bits), QINT, op)
        new_bias = _variable(weights, codes.bias_codes, f"{base}_bias_q32", None, INT, op)
        for new in (new_filter, new_bias):
            Rewriter.insert_op(new, InsertPoint.before(op))
        op.operands = [input_, new_filter.results[0], new_bias.results[0], *op.operands[3:]]
        erase_dead_producers([filter_, bias], Rewriter.erase_op)
        done.append(QuantizedLayer(base, by_channel and not broadcast, codes.raised))
    return done


def _is_variable(value: SSAValue) -> bool:
    return isinstance(value.owner, Operation) and value.owner.name == "nnef.variable"


def _variable(weights: Weights, codes: np.ndarray, hint: str, entry: QuantAttr | None, item_type: int,
              like: Operation) -> Operation:
    """A variable of integer codes: typed as its real values are (a quantized filter is
    `scalar` with its entry; an accumulator-scale bias `integer`), its file of codes."""
    label = weights.label(hint)
    dtype = "scalar" if entry is not None else "integer"
    data_type = tensor_type(dtype, codes.shape)
    type_ = with_quantization(data_type, entry)
    op = OPERATIONS["variable"](properties={"shape": to_attribute(list(codes.shape)), "label": StringAttr(label)},
                                result_types=[type_])
    op.attributes["nnef.data"] = weight_attribute(label, np.ascontiguousarray(codes), data_type)
    op.attributes["nnef.item"] = to_attribute([item_type, codes.dtype.itemsize * 8])
    set_tensor_name(op.results[0], re.sub(r"\W", "_", label))
    op.location = like.location
    return op
