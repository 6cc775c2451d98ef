"""The verifier of every generated operation: attributes of their declared types, results
of the shapes the shape rule gives."""

from __future__ import annotations

from xdsl.irdl import (
    IRDLOperation,
)
from xdsl.utils.exceptions import VerifyException

from nnefopt.dialects.attributes import from_attribute
from nnefopt.dialects.layout import CHANNEL_LAST, LAYOUT, is_channel_last
from nnefopt.dialects.names import field_name
from nnefopt.dialects.types import DYNAMIC, static_type_shape
from nnefopt.frontend.binder import coerce_value, is_absent
from nnefopt.frontend.evaluate import evaluate_constant
from nnefopt.ops import OpDef


def verify_operation(op: IRDLOperation) -> None:
    """Attributes of their declared types, and results of the shapes the rule gives."""
    entry: OpDef = op.OP_DEF
    attribs = {}
    for param in entry.attribute_params:
        prop = op.properties.get(field_name(param.name))
        if prop is None:
            continue
        try:
            attribs[param.name] = coerce_value(from_attribute(prop, param.type), param.type)
        except TypeError:
            raise VerifyException(f"{op.name}: '{param.name}' must be of type {param.type}, found {prop}") from None
    layout = op.properties.get(LAYOUT)
    if layout is not None and layout != CHANNEL_LAST:
        raise VerifyException(f"{op.name}: '{LAYOUT}' must be \"nhwc\" (or absent), found {layout}")
    rule = entry.shape_rule
    if rule is None or getattr(rule, "value_params", ()) or len(attribs) < len(
            [p for p in entry.attribute_params if p.default is None]):
        return
    shapes = []
    for param in entry.tensor_params:
        operand = getattr(op, field_name(param.name))
        if operand is None:
            if param.default is None or is_absent(param.default):
                shapes.append(None)
                continue
            shapes.append(())  # the literal default (bias = 0.0) is a rank-0 tensor
        elif isinstance(operand, tuple):
            shapes.append([static_type_shape(v.type) for v in operand])
        else:
            shapes.append(static_type_shape(operand.type))
    if any(s is DYNAMIC or (isinstance(s, list) and DYNAMIC in s) for s in shapes):
        return
    # `layout = "nhwc"` (the layout pass): input and results are stored channel-last
    channel_last = is_channel_last(op)
    if channel_last:
        if not shapes or not isinstance(shapes[0], tuple) or len(shapes[0]) < 3:
            raise VerifyException(f"{op.name}: '{LAYOUT}' needs an input of rank 3 or more")
        shapes[0] = channel_first_shape(shapes[0])
    defaults = {p.name: evaluate_constant(p.default) for p in entry.attribute_params
                if p.name not in attribs and p.default is not None}
    try:
        expected = rule(*shapes, **defaults, **attribs)
    except (ValueError, TypeError, IndexError, ZeroDivisionError) as exc:
        raise VerifyException(f"{op.name}: {exc}") from None
    expected = [expected] if len(entry.results) == 1 and not isinstance(expected, list) else expected
    actual = [static_type_shape(r.type) for r in op.results]
    if channel_last:
        actual = [s if s is DYNAMIC else channel_first_shape(s) for s in actual]
    flat = [tuple(int(d) if isinstance(d, int) else d for d in s) for s in flatten_shapes(expected)]
    for got, want in zip(actual, flat):
        if got is not DYNAMIC and all(isinstance(d, int) for d in want) and tuple(got) != want:
            raise VerifyException(f"{op.name}: result shape {list(got)} differs from {list(want)}, "
                                  f"which its operands and attributes give")


def channel_first_shape(shape: tuple) -> tuple:
    return (shape[0], shape[-1], *shape[1:-1])


def flatten_shapes(result) -> list:
    if isinstance(result, list):
        return list(result)
    if isinstance(result, tuple) and result and isinstance(result[0], tuple):
        return list(result)
    return [result]
