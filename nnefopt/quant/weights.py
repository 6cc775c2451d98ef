"""Integer codes of a quantized layer's weights: the filter symmetric int8 (zero point 0),
per tensor or per output channel (axis 0), the bias int32 in the accumulator's scale
(input scale x filter scale), as int8 engines (tract, onnxruntime, TFLite) expect.

A bias whose code would not fit int32 (a tiny input or filter scale against a large
bias) raises the filter scale until it fits: the filter loses resolution, the bias
stays right, rather than wrapping around.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from nnefopt.ops import register_slot

INT32_MAX = 2**31 - 1
_TINY = float(np.finfo(np.float32).tiny)

# A filter's output channels are on axis 0 (conv, linear), except deconv's [C_in, C_out/groups, ...]:
# per-channel scales lie along axis 0 only, so deconv keeps one scale.
register_slot("deconv", "output_channel_axis", 1)


class LayerCodes(NamedTuple):
    filter_codes: np.ndarray  # int8, the filter's shape
    filter_scale: float | np.ndarray  # one scale, or one per output channel (float32 values)
    bias_codes: np.ndarray  # int32, shape [1, C]
    raised: bool  # whether the filter scale was raised to fit the bias


def symmetric_scale(filter_: np.ndarray, bits: int, per_channel: bool) -> np.ndarray:
    """max |w| / (2^(bits-1) - 1), over the tensor or each output channel (axis 0); a
    zero filter (or channel) gets scale 1: any scale represents it."""
    top = 2 ** (bits - 1) - 1
    magnitude = np.abs(np.asarray(filter_, np.float64))
    peak = magnitude.reshape(magnitude.shape[0], -1).max(axis=1) if per_channel else np.asarray(magnitude.max())
    scale = peak / top
    return np.where(scale > 0, np.maximum(scale, _TINY), 1.0).astype(np.float32)


def filter_codes(filter_: np.ndarray, scale: np.ndarray, bits: int) -> np.ndarray:
    top = 2 ** (bits - 1) - 1
    scale = np.asarray(scale, np.float64)
    if scale.ndim:  # per output channel: along axis 0
        scale = scale.reshape((-1,) + (1,) * (filter_.ndim - 1))
    return np.clip(np.rint(np.asarray(filter_, np.float64) / scale), -top, top).astype(np.int8)


def quantize_layer(filter_: np.ndarray, bias: np.ndarray, input_scale: float, channels: int, *,
                   bits: int = 8, per_channel: bool = False, broadcast: bool = False) -> LayerCodes:
    """The filter's and the bias's codes for an input of scale `input_scale`; `bias`
    holds the real bias (any shape broadcasting to [1, channels]). With `broadcast`
    (and `per_channel`), the per-tensor scale is written once per output channel."""
    scale = symmetric_scale(filter_, bits, per_channel and not broadcast)
    if per_channel and broadcast:
        scale = np.full(filter_.shape[0], scale, np.float32)
    real_bias = np.broadcast_to(np.asarray(bias, np.float64).reshape(-1), (channels,)).reshape(1, channels)
    # The smallest accumulator scale whose int32 codes hold the bias.
    needed = np.abs(real_bias[0]) / (INT32_MAX * float(input_scale))
    if not per_channel:
        needed = np.asarray(needed.max())
    raised = bool(np.any(needed > scale))
    if raised:
        scale = np.maximum(scale, np.nextafter(needed.astype(np.float32), np.float32(np.inf)))
    accumulator = float(input_scale) * np.asarray(scale, np.float64)
    codes = np.clip(np.rint(real_bias / accumulator), -INT32_MAX, INT32_MAX).astype(np.int32)
    filter_scale = float(scale) if scale.ndim == 0 else scale
    return LayerCodes(filter_codes(filter_, scale, bits), filter_scale, codes, raised)
