"""What graph.quant means to the interpreter.

A quantization entry says a tensor's values are those of its quantize operation
(e.g. zero_point_linear_quantize: round, clamp to the integer range, scale back).
The interpreter computes in real numbers and then applies that operation to each
quantized tensor, which gives the numbers an integer engine gives, up to rounding
of the accumulator: within one quantization step of the output.

Weights stored as integers are codes: their real value is (code - zero_point) * scale.
An integer bias without an entry of its own is in the accumulator's scale, the
product of its operation's input and filter scales (the convention of PyTorch, tract
and onnxruntime).
"""

from __future__ import annotations

import numpy as np

from nnefopt.broadcasting import aligned
from nnefopt.errors import NNEFError
from nnefopt.frontend.model import Model, Operation, Quantization, TensorRef
from nnefopt.ops import has_trait
from nnefopt.traits import Biased


def _scale_and_zero(quant: Quantization) -> tuple[np.ndarray, np.ndarray]:
    if quant.algorithm != "zero_point_linear_quantize":
        raise NNEFError(f"integer codes quantized by '{quant.algorithm}' are not supported", quant.loc)
    return (np.asarray(quant.attributes["scale"], np.float32),
            np.asarray(quant.attributes["zero_point"], np.float32))


def real_weight(model: Model, name: str, data: np.ndarray) -> np.ndarray:
    """A variable's real values: integer codes are scaled back by their entry."""
    return real_codes(model.tensors[name].quant, data)


def real_codes(quant: Quantization | None, data: np.ndarray) -> np.ndarray:
    """Stored values under a quantization entry: integer codes become real numbers."""
    if quant is None or data.dtype.kind == "f":
        return data
    # Per-channel (tensor-valued) scales broadcast as NNEF does, from the left: along axis 0.
    scale, zero = (aligned(p, data.ndim) for p in _scale_and_zero(quant))
    return ((data.astype(np.float32) - zero) * scale).astype(np.float32)


def real_bias(model: Model, op: Operation, values: dict) -> None:
    """Rescale an integer bias in the accumulator's scale (input scale x filter scale)."""
    if not has_trait(op.name, Biased) or not isinstance(op.inputs.get("bias"), TensorRef):
        return
    bias = model.tensors[op.inputs["bias"]]
    operands = [model.tensors.get(op.inputs.get(key)) for key in ("input", "filter")]
    if bias.quant is not None or bias.data is None or bias.data.dtype.kind not in "iu":
        return
    if any(t is None or t.quant is None for t in operands):
        return
    values[op.inputs["bias"]] = accumulator_bias(bias.data, [t.quant for t in operands])


def has_accumulator_bias(name: str) -> bool:
    """Whether an integer bias of the operation is in its accumulator's scale."""
    return has_trait(name, Biased)


def accumulator_bias(codes: np.ndarray, operand_quants: list[Quantization]) -> np.ndarray:
    """An integer bias in the accumulator's scale: the product of its operands' scales."""
    # Element-wise: a per-channel filter scale gives one accumulator scale per channel.
    scale = np.ones(1, np.float32)
    for quant in operand_quants:
        scale = scale * _scale_and_zero(quant)[0].reshape(-1)
    scale = scale.reshape(()) if scale.size == 1 else scale
    return (np.asarray(codes, np.float32) * scale).astype(np.float32)


def settle(model: Model, name: str, array: np.ndarray, domain, signatures: dict) -> np.ndarray:
    """A computed tensor's value as its quantization entry makes it."""
    return settle_entry(model.tensors[name].quant, array, domain, signatures)


def settle_entry(quant: Quantization | None, array: np.ndarray, domain, signatures: dict) -> np.ndarray:
    """`array` as the quantization entry makes it (its quantize operation applied)."""
    if quant is None or not isinstance(array, np.ndarray) or array.dtype.kind != "f":
        return array
    return bind_settle(quant, domain, signatures)(array)


def bind_settle(quant: Quantization, domain, signatures: dict):
    """The function applying the entry's quantize operation to a real-valued array, its
    signature, parameters and kernel looked up once (the IR interpreter's plan keeps one
    per quantized value)."""
    from nnefopt.frontend.fragments import known_operations_of

    signature = signatures.get(quant.algorithm)
    if signature is None:
        raise NNEFError(f"unknown quantization algorithm '{quant.algorithm}'", quant.loc)
    tensor_params = [p.name for p in signature.params[1:] if p.name in quant.attributes and _is_tensor(p)]
    params = [np.asarray(quant.attributes[p], np.float32) for p in tensor_params]
    attribs = {k: v for k, v in quant.attributes.items() if k not in tensor_params}
    kernel = domain.primitive_of(signature.name)
    direct = kernel is not None and (signature.body is None or signature is known_operations_of(signature.name))

    def settled(array: np.ndarray) -> np.ndarray:
        if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
            return array
        if direct:
            return domain.call(kernel, signature, [array, *params], attribs, None, quant.loc)
        return domain.run(signature, [array, *params], dict(attribs), quant.loc)

    return settled


def _is_tensor(param) -> bool:
    from nnefopt.frontend.binder import is_tensor_type

    return is_tensor_type(param.type)
