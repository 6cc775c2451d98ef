"""The layout property: `layout = "nhwc"` on an operation with the ChannelLastCapable
trait means its `input` and its result are stored channel-last, [N, spatial..., C];
its other operands and its attributes keep NNEF's channel-first order. Absent means
NNEF's own layout. It is a property, not a discardable attribute: it changes what the
operation computes."""

from __future__ import annotations

from xdsl.dialects.builtin import StringAttr
from xdsl.ir import Operation

LAYOUT = "layout"
CHANNEL_LAST = StringAttr("nhwc")


def is_channel_last(op: Operation) -> bool:
    """Whether the operation stores its input and result channel-last."""
    return op.properties.get(LAYOUT) == CHANNEL_LAST


def set_channel_last(op: Operation, channel_last: bool) -> None:
    if channel_last:
        op.properties[LAYOUT] = CHANNEL_LAST
    else:
        op.properties.pop(LAYOUT, None)
