"""profile=portable: operations tract computes in integers only when spelled otherwise.

tract 0.23 runs a quantized graph in integer arithmetic, and in standard NNEF a value it
holds quantized stays quantized: no standard operation gives it back as float (a copy,
a multiplication by 1.0, a select all keep the quantized type). So the portable profile
quantizes the whole way to the outputs (nnefopt.quant.assign closes it), and writes the
operations whose int8 form tract lacks as ones it has, each meaning the same:

- before assignment, in float (exact):
  - a deconv whose filter is known: the portable spelling's conv (a 1x1 conv and a
    depth to space, or a conv of the zero-inserted input), which tract quantizes as
    any conv; tract reads a quantized deconv's filter in another layout;
  - a mean over axes from 2 on, as an `avg_pool` whose window is the reduced extent:
    tract casts a quantized `mean_reduce`'s count to the codes' type and refuses it,
    and averages a pool on its operand's scale (within one step of the interpreter);
- after the entries are chosen: a quantized `leaky_relu(x, alpha)`, which tract does
  not evaluate on codes, as `max(x, conv(x, alpha))`, the conv depthwise 1x1 with
  alpha's int8 code 127 and its result on x's entry (what an int8 engine does: the
  negative branch requantized by alpha).
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
    means_as_avg_pools(module)


def mean_as_avg_pool_possible(op: Operation) -> bool:
    shape = static_shape(op.operands[0])
    return shape is not None and len(shape) >= 3 and all(a >= 2 for a in attribute(op, "axes"))


def means_as_avg_pools(module: ModuleOp) -> int:
    made = 0
    for op in list(graph_of(module).body.block.ops):
        if not is_op(op, "mean_reduce") or not mean_as_avg_pool_possible(op):
            continue
        shape, axes = static_shape(op.operands[0]), set(attribute(op, "axes"))
        rank = len(shape)
        window = [n if a in axes else 1 for a, n in enumerate(shape)]
        pool = create("avg_pool", [op.operands[0]],
                      {"size": window, "border": "constant", "padding": [(0, 0)] * rank, "stride": [1] * rank,
                       "dilation": [1] * rank}, result_types=[op.results[0].type], like=op)
        Rewriter.insert_op(pool, InsertPoint.before(op))
        op.results[0].replace_all_uses_with(take_place(op.results[0], pool.results[0]))
        Rewriter.erase_op(op)
        made += 1
    return made


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
        channels, rank = shape[1], len(shape)
        alpha = float(attribute(op, "alpha"))
        filter_ = weights.new(np.full((channels,) + (1,) * (rank - 1), alpha, np.float32), "leaky_alpha", like=op)
        bias = weights.new(np.zeros((1, channels), np.float32), "leaky_bias", like=op)
        conv = create("conv", [x, filter_.results[0], bias.results[0]],
                      {"padding": [(0, 0)] * (rank - 2), "stride": [1] * (rank - 2), "dilation": [1] * (rank - 2),
                       "groups": channels}, result_types=[x.type], like=op)
        set_tensor_name(conv.results[0], names("leaky_negative"))
        larger = create("max", [x, conv.results[0]], result_types=[op.results[0].type], like=op)
        for new in (filter_, bias, conv, larger):
            Rewriter.insert_op(new, InsertPoint.before(op))
        op.results[0].replace_all_uses_with(take_place(op.results[0], larger.results[0]))
        Rewriter.erase_op(op)
        convs.append(conv)
    return convs


def _mean_problem(op: Operation) -> str | None:
    return None if mean_as_avg_pool_possible(op) else \
        "tract refuses a quantized mean_reduce; one over axes from 2 with static shapes is written as avg_pool"


def _leaky_problem(op: Operation) -> str | None:
    return None if leaky_relu_as_conv_possible(op) else \
        "tract has no int8 leaky_relu; one of rank >= 3 with a static shape is written with a depthwise conv"


register_slot("matmul", "portable_int8_problem", lambda op: "tract refuses an entry on a matmul output")
register_slot("deconv", "portable_int8_problem", lambda op: "tract reads a quantized deconv's filter in another layout")
register_slot("mean_reduce", "portable_int8_problem", _mean_problem)
register_slot("leaky_relu", "portable_int8_problem", _leaky_problem)
