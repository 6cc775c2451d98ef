"""profile=portable: operations tract computes in integers only when spelled otherwise.

tract 0.23 runs a quantized graph in integer arithmetic, and in standard NNEF a value it
holds quantized stays quantized: no standard operation gives it back as float (a copy,
a multiplication by 1.0, a select all keep the quantized type). So the portable profile
quantizes the whole way to the outputs (nnefopt.quant.assign closes it), and writes the
operations whose int8 form tract lacks as ones it has, each meaning the same:

- before assignment, in float (exact): a deconv whose filter is known as the portable
  spelling's conv (a 1x1 conv and a depth to space, or a conv of the zero-inserted
  input), which tract quantizes as any conv; tract reads a quantized deconv's filter
  in another layout;
- after the entries are chosen, each as the depthwise conv an int8 engine computes it
  with, whose int32 accumulator is requantized into the result's entry:
  - a quantized `mean_reduce` over axes from 2 on: a conv whose window is the reduced
    extent, every weight 1 / count (int8 code 127). tract casts a quantized mean's
    count to the codes' type and refuses it, and averages a pool only on its operand's
    scale, which costs the mean the finer entry of its own (1.6-3.5 dB on resnet8 and
    mobilenetv2_035);
  - a quantized `leaky_relu(x, alpha)`, which tract does not evaluate on codes:
    `max(x, conv(x, alpha))`, the 1x1 conv's result on x's entry (the negative branch
    requantized by alpha).
"""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.rewriter import InsertPoint, Rewriter

from nnefopt.dialects.quantization import quantization_of
from nnefopt.dialects.tensor_names import FreshNames, set_tensor_name
from nnefopt.export.from_ir import graph_of
from nnefopt.ops import register_slot
from nnefopt.passes.portable import deconvs_as_convs
from nnefopt.passes.rewriting import Weights, attribute, create, is_op, static_shape, take_place


def spell_before_assignment(module: ModuleOp) -> None:
    deconvs_as_convs(module)


# the most items an int32 accumulator sums at 255 x 127 each: (x - zero point) x code 127
MAX_MEAN_COUNT = (2**31 - 1) // (255 * 127)


def mean_as_conv_possible(op: Operation) -> bool:
    shape, axes = static_shape(op.operands[0]), attribute(op, "axes")
    return shape is not None and len(shape) >= 3 and all(a >= 2 for a in axes) \
        and int(np.prod([shape[a] for a in axes])) <= MAX_MEAN_COUNT


def _depthwise(x, weights: np.ndarray, result_type, like: Operation, fresh: Weights, name: str) -> Operation:
    """conv(x, weights [C, 1, window...], zero bias, groups = C) typed `result_type`."""
    channels, spatial = weights.shape[0], weights.ndim - 2
    filter_ = fresh.new(weights.astype(np.float32), f"{name}_filter", like=like)
    bias = fresh.new(np.zeros((1, channels), np.float32), f"{name}_bias", like=like)
    conv = create("conv", [x, filter_.results[0], bias.results[0]],
                  {"padding": [(0, 0)] * spatial, "stride": [1] * spatial, "dilation": [1] * spatial,
                   "groups": channels}, result_types=[result_type], like=like)
    for new in (filter_, bias, conv):
        Rewriter.insert_op(new, InsertPoint.before(like))
    return conv


def means_as_convs(module: ModuleOp) -> list[Operation]:
    """Each quantized spatial mean as a depthwise conv by 1 / count on its own entry;
    returns the convs, for the weight quantization."""
    weights = Weights(module)
    convs = []
    for op in list(graph_of(module).body.block.ops):
        if not is_op(op, "mean_reduce") or quantization_of(op.results[0]) is None or not mean_as_conv_possible(op):
            continue
        shape, axes = static_shape(op.operands[0]), set(attribute(op, "axes"))
        window = [n if a in axes else 1 for a, n in enumerate(shape)][2:]
        count = int(np.prod(window))
        conv = _depthwise(op.operands[0], np.full((shape[1], 1, *window), 1.0 / count), op.results[0].type, op,
                          weights, "mean")
        op.results[0].replace_all_uses_with(take_place(op.results[0], conv.results[0]))
        Rewriter.erase_op(op)
        convs.append(conv)
    return convs


def leaky_relu_as_conv_possible(op: Operation) -> bool:
    shape = static_shape(op.operands[0])
    return shape is not None and len(shape) >= 3


def leaky_relus_as_max(module: ModuleOp) -> list[Operation]:
    """Each quantized leaky_relu as max(x, depthwise conv of x by alpha); returns the
    convs, layers whose float filter and bias the weight quantization turns to codes."""
    weights, names = Weights(module), FreshNames.of_module(module)
    convs = []
    for op in list(graph_of(module).body.block.ops):
        if not is_op(op, "leaky_relu") or quantization_of(op.results[0]) is None:
            continue
        x = op.operands[0]
        shape = static_shape(x)
        alpha = np.float32(attribute(op, "alpha"))
        conv = _depthwise(x, np.full((shape[1], 1) + (1,) * (len(shape) - 2), alpha), x.type, op, weights, "leaky")
        set_tensor_name(conv.results[0], names("leaky_negative"))
        larger = create("max", [x, conv.results[0]], result_types=[op.results[0].type], like=op)
        Rewriter.insert_op(larger, InsertPoint.before(op))
        op.results[0].replace_all_uses_with(take_place(op.results[0], larger.results[0]))
        Rewriter.erase_op(op)
        convs.append(conv)
    return convs


def _mean_problem(op: Operation) -> str | None:
    return None if mean_as_conv_possible(op) else \
        "tract refuses a quantized mean_reduce; one over axes from 2 with static shapes (and at most " \
        f"{MAX_MEAN_COUNT} items) is written as a conv"


def _leaky_problem(op: Operation) -> str | None:
    return None if leaky_relu_as_conv_possible(op) else \
        "tract has no int8 leaky_relu; one of rank >= 3 with a static shape is written with a depthwise conv"


register_slot("matmul", "portable_int8_problem", lambda op: "tract refuses an entry on a matmul output")
register_slot("deconv", "portable_int8_problem", lambda op: "tract reads a quantized deconv's filter in another layout")
register_slot("mean_reduce", "portable_int8_problem", _mean_problem)
register_slot("leaky_relu", "portable_int8_problem", _leaky_problem)
