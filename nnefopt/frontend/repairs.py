"""Repairs of known exporter mistakes and dialect readings, made where shape inference
meets them (the inserted operations are inferred before the one they feed).

torch-to-nnef (KhronosNNEF target) gives batch_normalization its per-channel
statistics as [1, 1, 1, C]: no broadcasting maps that onto channel axis 1 of an
NCHW input, so the Khronos parser refuses the model. The intent is unambiguous
(one value per channel), so such an operand is reshaped to the specified [1, C].
"""

from __future__ import annotations

from nnefopt.errors import NNEFError, warn
from nnefopt.frontend.model import Model, Operation, Tensor, TensorRef
from nnefopt.frontend.stdlib import is_tract_dialect, standard_operations

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
        reshape = {"shape": [1, channels], "axis_start": 0, "axis_count": -1}
        inserted.append(_insert(model, op, key, ref, "reshape", reshape, (1, channels), "_per_channel"))
    return inserted


def _misplaced_channels(shape: tuple, channels) -> bool:
    big = [d for d in shape if d != 1]
    return len(shape) >= 2 and big == [channels] and shape[1] != channels


def _insert(model: Model, op: Operation, key: str, ref: TensorRef, name: str, attribs: dict, shape: tuple,
            suffix: str) -> Operation:
    """An operation `name` between `ref` and `op`'s input `key`, giving a tensor of `shape`."""
    new = f"{ref}{suffix}"
    while new in model.tensors:
        new += "_"
    model.tensors[new] = Tensor(new, model.tensors[ref].dtype, tuple(shape), loc=op.loc)
    op.inputs[key] = TensorRef(new)
    signature = standard_operations()[name]
    return Operation(name, None, {signature.params[0].name: ref}, attribs, {signature.results[0].name: TensorRef(new)},
                     op.loc, frozenset({signature.params[0].name, *attribs}), signature)


def repair_tract_deconv(model: Model, op: Operation) -> list[Operation]:
    """tract reads a deconv filter as [C_out, C_in, ...] where the specification has
    [C_in, C_out, ...]; a model written for tract means tract's reading."""
    if op.name != "deconv" or not is_tract_dialect(model.extensions):
        return []
    if op.attribs.get("groups") != 1 or not isinstance(op.inputs.get("filter"), TensorRef):
        return []
    ref = op.inputs["filter"]
    shape = model.tensors[ref].shape
    if shape is None or len(shape) < 3:
        return []
    warn(f"tract model: deconv filter '{ref}' read as [C_out, C_in, ...] and transposed to the "
         f"specification's [C_in, C_out, ...]", op.loc)
    axes = [1, 0, *range(2, len(shape))]
    new_shape = tuple(shape[a] for a in axes)
    return [_insert(model, op, "filter", ref, "transpose", {"axes": axes}, new_shape, "_as_spec")]


def repairs_before(model: Model, op: Operation, strict: bool) -> list[Operation]:
    return repair_batch_norm(model, op, strict) + repair_tract_deconv(model, op)
