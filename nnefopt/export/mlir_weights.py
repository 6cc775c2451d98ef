"""Weights inside MLIR text, the way MLIR keeps them: a trailing
`{-# dialect_resources: {builtin: {handle: "0x..."}} #-}` section, each blob a 4-byte
little-endian alignment followed by the raw little-endian items, which the
`dense_resource<handle>` of a variable names.

A file gets them (a `.mlir` written by `save`, or standard output when it is not a
terminal); printed to a terminal, weights would drown the IR. Read back, each blob
becomes an array of the parsed attribute's own, so text read twice, or edited, never
touches the arrays of a module already in memory. xDSL's builtin dialect keeps blobs
and handles in one process-wide table: they are there only while printing or parsing.
"""

from __future__ import annotations

import numpy as np
from xdsl.dialect_interfaces.op_asm import OpAsmDialectInterface
from xdsl.dialects.builtin import Builtin, DenseResourceAttr, ModuleOp, TensorType

from nnefopt.dialects.nnef import from_attribute
from nnefopt.dialects.tensor_names import fresh_name
from nnefopt.dialects.weights import attach_weight, missing_weight, origin_of, weight_attribute, weight_of
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


def unique_handles(module: ModuleOp) -> None:
    """Rename, in place, a handle that variables of different labels share (labels that
    differ only in characters a handle cannot hold), so that the text names each weight
    once. Variables of one label are one tensor file: they keep one handle."""
    taken: set[str] = set()
    given: dict[str, str] = {}  # label -> its handle
    for op, attr in _resources(module):
        label = from_attribute(op.properties["label"]) if "label" in op.properties else attr.resource_handle.data
        handle = given.get(label)
        if handle is None:
            handle = given[label] = fresh_name(attr.resource_handle.data, taken)
        if handle != attr.resource_handle.data:
            data = weight_of(attr)
            op.attributes["nnef.data"] = DenseResourceAttr.from_params(handle, attr.type) if data is None else \
                weight_attribute(label, data, attr.type, origin_of(attr), handle=handle)


def declare_weights(module: ModuleOp) -> list[str]:
    """Give xDSL's printer the blob of every weight the module refers to; the handles,
    to forget once printed."""
    storage, declared = _interface()._blob_storage, []  # no public way to set a blob
    for op, attr in _resources(module):
        data, items = weight_of(attr), _item_type(op, attr)
        key = attr.resource_handle.data
        if data is None or items is None or key in declared:
            continue
        raw = np.ascontiguousarray(np.asarray(data).astype(items, copy=False)).tobytes()
        storage[key] = "0x" + items.alignment.to_bytes(4, "little").hex() + raw.hex()
        declared.append(key)
    return declared


def require_weights(module: ModuleOp) -> None:
    """Refuse to write a model any of whose variables has no data, naming the first."""
    from nnefopt.export.from_ir import location_of

    for op in module.walk():
        if op.name == "nnef.variable" and weight_of(op.attributes.get("nnef.data")) is None:
            label = from_attribute(op.properties["label"])
            raise missing_weight(label, location_of(op))


def forget(keys) -> None:
    storage = _interface()._blob_storage
    for key in keys:
        storage.pop(key, None)


def adopt_weights(module: ModuleOp) -> None:
    """The blobs the text carried, as the arrays of the attributes naming them (one
    array per blob, however many variables name it)."""
    interface, arrays = _interface(), {}
    for op, attr in _resources(module):
        key = attr.resource_handle.data
        blob, items = interface.lookup(key), _item_type(op, attr)
        if not blob or items is None:
            continue
        shape = tuple(attr.type.get_shape())
        if (key, items, shape) not in arrays:
            raw = bytes.fromhex(blob[2:])[4:]
            arrays[key, items, shape] = np.frombuffer(raw, items).reshape(shape)
        attach_weight(attr, arrays[key, items, shape])


__all__ = ["declare_weights", "forget", "adopt_weights", "require_weights", "unique_handles"]
