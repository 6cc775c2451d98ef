"""Weights inside MLIR text, the way MLIR keeps them: a trailing
`{-# dialect_resources: {builtin: {handle: "0x..."}} #-}` section, each blob a 4-byte
little-endian alignment followed by the raw little-endian items, which the
`dense_resource<handle>` of a variable names.

Only a file gets them (a `.mlir` written by `save`): printed to a terminal, weights
would drown the IR. Read back, each blob becomes an array under a fresh handle, so
text read twice, or edited, never touches the arrays of a module already in memory.
"""

from __future__ import annotations

import numpy as np
from xdsl.dialect_interfaces.op_asm import OpAsmDialectInterface
from xdsl.dialects.builtin import Builtin, DenseResourceAttr, ModuleOp, TensorType

from nnefopt.dialects.nnef import from_attribute, weight_attribute, weight_of
from nnefopt.dtypes import item_dtype
from nnefopt.frontend.tensor_file import TensorHeader

def _interface() -> OpAsmDialectInterface:
    return Builtin.get_interface(OpAsmDialectInterface)


def _resources(module: ModuleOp):
    for op in module.walk():
        attr = op.attributes.get("nnef.data")
        if isinstance(attr, DenseResourceAttr):
            yield op, attr


def _item_type(op, attr: DenseResourceAttr) -> np.dtype | None:
    """The items as the tensor file had them (`nnef.item`: a quantized file's 8-bit
    codes stay 8-bit codes), or as the IR's element type says."""
    item = op.attributes.get("nnef.item")
    if item is not None:
        item_type, bits = from_attribute(item)
        return TensorHeader((1, 0), (), bits, item_type, 0).dtype
    type_ = attr.type
    return item_dtype(type_.element_type) if isinstance(type_, TensorType) else None


def declare_weights(module: ModuleOp) -> list[str]:
    """Give xDSL's printer the blob of every weight the module refers to; the handles,
    to forget once printed."""
    storage, declared = _interface()._blob_storage, []  # no public way to set a blob
    for op, attr in _resources(module):
        data, items = weight_of(attr), _item_type(op, attr)
        if data is None or items is None:
            continue
        raw = np.ascontiguousarray(np.asarray(data).astype(items, copy=False)).tobytes()
        key = attr.resource_handle.data
        storage[key] = "0x" + items.alignment.to_bytes(4, "little").hex() + raw.hex()
        declared.append(key)
    return declared


def forget(keys: list[str]) -> None:
    storage = _interface()._blob_storage
    for key in keys:
        storage.pop(key, None)


def adopt_weights(module: ModuleOp) -> None:
    """The blobs the text carried, as arrays under fresh handles."""
    interface = _interface()
    for op, attr in _resources(module):
        key = attr.resource_handle.data
        blob, items = interface.lookup(key), _item_type(op, attr)
        if not blob or items is None:
            continue
        raw = bytes.fromhex(blob[2:])[4:]
        shape = attr.type.get_shape()
        array = np.frombuffer(raw, items).reshape(shape)
        label = from_attribute(op.properties["label"]) if "label" in op.properties else key
        op.attributes["nnef.data"] = weight_attribute(label, array, attr.type)
        interface._blob_storage.pop(key, None)


__all__ = ["declare_weights", "forget", "adopt_weights"]
