"""Computations that exporters spell out in elementary operations, recognised from the
value they compute. Each matcher walks up the use-def chains from a candidate result and
returns what the one operation needs, plus the operations the spelling consists of, so
that the caller can check that nothing outside uses an intermediate value.

- layer normalization: nnef-tools writes mean_reduce/sub/pow/mean_reduce/add/sqrt/div;
  torch-to-nnef's fragment body, sum_reduce(normalize)/sub/sqr/sum_reduce/add/rsqrt/mul;
- gelu as x * Phi(x): the product of x, 0.5 and 1 + erf(x / sqrt(2)), in any order
  and association, with `erf` the operation or a fragment of that name.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from xdsl.ir import Operation, SSAValue

from nnefopt.dialects.nnef import CallOp
from nnefopt.passes.rewriting import attribute, is_op, known_value, op_named


class LayerNorm(NamedTuple):
    input: SSAValue
    axes: list[int]
    epsilon: float
    ops: list[Operation]  # the spelling, the final operation first
    scale: SSAValue | None = None
    offset: SSAValue | None = None


class Gelu(NamedTuple):
    input: SSAValue
    ops: list[Operation]


def _scalar(value: SSAValue) -> float | None:
    known = known_value(value)
    return float(known.reshape(())) if known is not None and known.size == 1 else None


def _mean(value: SSAValue) -> tuple[SSAValue, list[int], Operation] | None:
    """(source, axes, op) when `value` is a mean over some axes."""
    op = op_named(value, "mean_reduce", "sum_reduce")
    if op is None or (is_op(op, "sum_reduce") and not attribute(op, "normalize")):
        return None
    return op.input, sorted(attribute(op, "axes")), op


def _square_of(value: SSAValue) -> tuple[SSAValue, Operation] | None:
    op = op_named(value, "sqr", "pow", "mul")
    if op is None:
        return None
    if is_op(op, "sqr"):
        return op.operands[0], op
    x, y = op.operands
    if is_op(op, "pow"):
        return (x, op) if _scalar(y) == 2.0 else None
    return (x, op) if x is y else None


def _split_scalar(op: Operation) -> tuple[SSAValue, float] | None:
    x, y = op.operands
    for value, other in ((x, y), (y, x)):
        scalar = _scalar(other)
        if scalar is not None and known_value(value) is None:
            return value, scalar
    return None


def match_layer_norm(value: SSAValue) -> LayerNorm | None:
    """(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps), or times rsqrt(...)."""
    top = op_named(value, "div", "mul")
    if top is None:
        return None
    centered, root = top.operands
    if is_op(top, "div"):
        root_op = op_named(root, "sqrt")
    else:
        root_op = op_named(root, "rsqrt") or op_named(centered, "rsqrt")
        if root_op is not None and root_op.results[0] is centered:
            centered, root = root, centered
    if root_op is None:
        return None
    shifted = op_named(root_op.operands[0], "add")
    split = _split_scalar(shifted) if shifted is not None else None
    if split is None:
        return None
    variance, epsilon = split
    mean_of_square = _mean(variance)
    square = _square_of(mean_of_square[0]) if mean_of_square else None
    if square is None or square[0] is not centered:
        return None
    difference = op_named(centered, "sub")
    mean_of_input = _mean(difference.operands[1]) if difference is not None else None
    if mean_of_input is None or mean_of_input[0] is not difference.operands[0] \
            or mean_of_input[1] != mean_of_square[1]:
        return None
    ops = [top, root_op, shifted, mean_of_square[2], square[1], difference, mean_of_input[2]]
    return LayerNorm(difference.operands[0], mean_of_square[1], epsilon, _unique(ops))


def match_affine_layer_norm(value: SSAValue) -> LayerNorm | None:
    """A layer normalization, then optionally `* scale` and `+ offset` (torch-to-nnef's
    fragment body ends so)."""
    op = op_named(value, "add", "mul")
    for operand, other in ((op.operands[0], op.operands[1]), (op.operands[1], op.operands[0])) if op else ():
        if is_op(op, "add"):
            inner = match_affine_layer_norm(operand)
            if inner is not None and inner.offset is None and operand.has_one_use():
                return inner._replace(ops=[op, *inner.ops], offset=other)
        else:
            inner = match_layer_norm(operand)
            if inner is not None and operand.has_one_use():
                return inner._replace(ops=[op, *inner.ops], scale=other)
    return match_layer_norm(value)


def _factors(value: SSAValue, ops: list[Operation], root: bool) -> list[SSAValue]:
    """The factors of a product tree whose inner products nobody else uses."""
    op = op_named(value, "mul")
    if op is None or (not root and not value.has_one_use()):
        return [value]
    ops.append(op)
    return [f for operand in op.operands for f in _factors(operand, ops, False)]


def _is_erf(op: Operation | None) -> bool:
    return op is not None and (is_op(op, "erf", "tract_core_erf")
                               or (isinstance(op, CallOp) and op.callee.data == "erf"))


def _scaled_by_inverse_sqrt2(value: SSAValue) -> tuple[SSAValue, Operation] | None:
    op = op_named(value, "mul", "div")
    split = _split_scalar(op) if op is not None else None
    if split is None:
        return None
    x, scalar = split
    wanted = math.sqrt(2.0) if is_op(op, "div") else 1 / math.sqrt(2.0)
    if is_op(op, "div") and op.operands[0] is not x:
        return None
    return (x, op) if math.isclose(scalar, wanted, rel_tol=1e-5) else None


def match_gelu(value: SSAValue) -> Gelu | None:
    ops: list[Operation] = []
    factors = _factors(value, ops, True)
    if len(factors) != 3:
        return None
    for one_plus in factors:
        add = op_named(one_plus, "add")
        split = _split_scalar(add) if add is not None else None
        if split is None or split[1] != 1.0 or not one_plus.has_one_use():
            continue
        erf = split[0].owner if isinstance(split[0].owner, Operation) else None
        if not _is_erf(erf) or len(erf.operands) != 1:
            continue
        scaled = _scaled_by_inverse_sqrt2(erf.operands[0])
        if scaled is None:
            continue
        x = scaled[0]
        rest = [f for f in factors if f is not one_plus]
        halves = [f for f in rest if f is not x and _scalar(f) is not None and np.isclose(_scalar(f), 0.5)]
        if len(halves) == 1 and any(f is x for f in rest):
            return Gelu(x, _unique([*ops, add, erf, scaled[1]]))
    return None


def _unique(ops: list[Operation]) -> list[Operation]:
    seen: list[Operation] = []
    for op in ops:
        if op not in seen:
            seen.append(op)
    return seen


def used_only_inside(ops: list[Operation]) -> bool:
    """Whether every value the spelling computes, but its final one, stays inside it."""
    inside = set(ops)
    return all(use.operation in inside for op in ops[1:] for r in op.results for use in r.uses)
