"""Repairs of known exporter mistakes, made where shape inference meets them.

torch-to-nnef (KhronosNNEF target) gives batch_normalization its per-channel
statistics as [1, 1, 1, C]: no broadcasting maps that onto channel axis 1 of an
NCHW input, so the Khronos parser refuses the model. The intent is unambiguous
(one value per channel), so such an operand is reshaped to the specified [1, C].
"""

from __future__ import annotations

from nnefopt.errors import NNEFError, warn
from nnefopt.frontend.model import Model, Operation, Tensor, TensorRef
from nnefopt.frontend.stdlib import standard_operations

_PER_CHANNEL_OPERANDS = ("mean", "variance", "offset", "scale")


def repair_batch_norm(model: Model, op: Operation, strict: bool) -> list[Operation]:
    """Reshape operations to insert before `op` so that it is valid."""
    if op.name != "batch_normalization" or op.signature is not standard_operations()["batch_normalization"]:
        return []
    data = model.tensors[op.inputs["input"]].shape
    if data is None or len(data) < 2:
        return []
    channels = data[1]
    inserted = []
    for key in _PER_CHANNEL_OPERANDS:
        ref = op.inputs.get(key)
        if not isinstance(ref, TensorRef):
            continue
        shape = model.tensors[ref].shape
        if shape is None or not _misplaced_channels(shape, channels):
            continue
        message = (f"'{key}' of batch_normalization has shape {list(shape)}; "
                   f"per-channel values of [1, {channels}] assumed")
        if strict:
            raise NNEFError(message, op.loc)
        warn(message, op.loc)
        inserted.append(_reshape(model, op, key, ref, [1, channels]))
    return inserted


def _misplaced_channels(shape: tuple, channels) -> bool:
    big = [d for d in shape if d != 1]
    return len(shape) >= 2 and big == [channels] and shape[1] != channels


def _reshape(model: Model, op: Operation, key: str, ref: TensorRef, shape: list) -> Operation:
    name = f"{ref}_per_channel"
    while name in model.tensors:
        name += "_"
    source = model.tensors[ref]
    model.tensors[name] = Tensor(name, source.dtype, tuple(shape), loc=op.loc)
    op.inputs[key] = TensorRef(name)
    return Operation(
        "reshape", None, {"input": ref}, {"shape": shape, "axis_start": 0, "axis_count": -1},
        {"output": TensorRef(name)}, op.loc,
        frozenset({"input", "shape"}), standard_operations()["reshape"],
    )
