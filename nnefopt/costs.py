"""Cost rules: how much work an operation is, from its operand and result shapes.

A rule is `rule(operands, results, attribs) -> (macs, flops)`: `operands` are the tensor
operands' shapes in declaration order (a tensor array as a list of shapes, an absent
tensor as None), `results` the result shapes, `attribs` the attributes with defaults
filled in. A multiply-accumulate counts as one MAC and two FLOPs. Bytes read and written
are the operands' and results' sizes; `OpDef.cost` adds them, unless the rule returns a
third item, False: the operation moves no data (a view, as a split into contiguous blocks
is). An operation without a rule of its own does about one FLOP per result element.

Dims may be sympy symbols (a symbolic batch): the counts are then expressions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

COST_RULES: dict[str, Callable] = {}


@dataclass(frozen=True)
class Cost:
    macs: object
    flops: object
    bytes_read: object
    bytes_written: object


def cost_rule(*names: str) -> Callable[[Callable], Callable]:
    """Register the decorated rule under every name given."""
    return lambda rule: COST_RULES.update(dict.fromkeys(names, rule)) or rule


def elements(shape) -> object:
    return math.prod(shape) if shape is not None else 0


def _output(results) -> object:
    return sum(elements(s) for s in results)


def default_cost(operands, results, attribs) -> tuple:
    return 0, _output(results)


def no_work(operands, results, attribs) -> tuple:
    return 0, 0


def _with_bias(macs, operands, results) -> tuple:
    bias = operands[2] if len(operands) > 2 else None
    adds = _output(results) if bias is not None else 0
    return macs, 2 * macs + adds


@cost_rule("conv")
def conv(operands, results, attribs) -> tuple:
    """Each output element sums C_in/groups x kernel products: the filter's shape
    [C_out, C_in/groups, k...] already divides by the groups."""
    filter_ = operands[1]
    return _with_bias(_output(results) * elements(filter_[1:]), operands, results)


@cost_rule("deconv")
def deconv(operands, results, attribs) -> tuple:
    """Each input element scatters into C_out/groups x kernel outputs (filter
    [C_in, C_out/groups, k...])."""
    return _with_bias(elements(operands[0]) * elements(operands[1][1:]), operands, results)


@cost_rule("linear")
def linear(operands, results, attribs) -> tuple:
    """[N, C_in] x [C_out, C_in]^T: C_in products per output element."""
    return _with_bias(_output(results) * operands[1][-1], operands, results)


@cost_rule("matmul")
def matmul(operands, results, attribs) -> tuple:
    a = operands[0]
    inner = a[-2] if attribs.get("transposeA") else a[-1]
    macs = _output(results) * inner
    return macs, 2 * macs


@cost_rule("box", "max_pool", "avg_pool", "rms_pool", "argmax_pool", "debox")
def pool(operands, results, attribs) -> tuple:
    return 0, _output(results) * elements(attribs.get("size") or [1])


@cost_rule("sum_reduce", "mean_reduce", "max_reduce", "min_reduce", "any_reduce", "all_reduce", "argmax_reduce",
           "argmin_reduce")
def reduction(operands, results, attribs) -> tuple:
    return 0, elements(operands[0])


@cost_rule("moments")
def moments(operands, results, attribs) -> tuple:
    return 0, 4 * elements(operands[0])  # a sum, a difference, a square, a sum


@cost_rule("softmax")
def softmax(operands, results, attribs) -> tuple:
    return 0, 5 * elements(operands[0])  # max, subtract, exp, sum, divide


@cost_rule("batch_normalization")
def batch_normalization(operands, results, attribs) -> tuple:
    return 0, 4 * _output(results)  # subtract, divide (by a per-channel root), scale, offset


@cost_rule("layer_normalization", "l1_normalization", "l2_normalization")
def normalization(operands, results, attribs) -> tuple:
    return 0, 8 * elements(operands[0])


@cost_rule("local_response_normalization", "local_mean_normalization", "local_variance_normalization",
           "local_contrast_normalization")
def local_normalization(operands, results, attribs) -> tuple:
    return 0, _output(results) * (2 * elements(attribs.get("size") or [1]) + 2)


def contiguous_blocks(shape, axis: int) -> bool:
    """Whether cutting a row-major tensor of `shape` along `axis` gives contiguous blocks:
    every dim before the axis is 1 (axis 0, the channels of one NCHW image, the columns
    of a single row)."""
    if shape is None or not shape:
        return False
    return math.prod(shape[:axis % len(shape)]) == 1


@cost_rule("split")
def split(operands, results, attribs) -> tuple:
    """A view when each part is a contiguous block of the input: its readers read it
    where it is. Otherwise (a cut under an outer dim) each part is copied out."""
    if contiguous_blocks(operands[0], attribs.get("axis", 0)):
        return 0, 0, False
    return default_cost(operands, results, attribs)


@cost_rule("concat")
def concat(operands, results, attribs) -> tuple:
    """A view when each part is a contiguous block of the result: its producer writes it
    in place (what a memory planner does with a concat's operands). Otherwise a copy.
    The rule sees shapes only: a graph input among the parts would still be copied."""
    if contiguous_blocks(results[0] if results else None, attribs.get("axis", 0)):
        return 0, 0, False
    return default_cost(operands, results, attribs)


def data_bytes(shapes, itemsize: int) -> object:
    total = 0
    for shape in shapes:
        if isinstance(shape, list):
            total += sum(elements(s) for s in shape)
        elif shape is not None:
            total += elements(shape)
    return total * itemsize
