"""NNEF's tensor dtypes in one table: each with its numpy item type and its element type
in the IR. Every conversion between the three spellings reads this table.

tract's datum types (`f16`, `i8`, ...) are numpy item types too, for `cast` and
`tract_core_cast`; they have no NNEF dtype of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import f32, i1, i32
from xdsl.ir import Attribute


@dataclass(frozen=True)
class DType:
    name: str  # as NNEF writes it: tensor<scalar>
    numpy: type  # the item type arrays of it hold
    element: Attribute  # the element type of its tensors in the IR
    kinds: str  # numpy dtype kinds whose arrays are of this dtype


TABLE = (
    DType("scalar", np.float32, f32, "f"),
    DType("integer", np.int32, i32, "iu"),
    DType("logical", np.bool_, i1, "b"),
)

NUMPY_TYPES = {d.name: d.numpy for d in TABLE}
ELEMENT_TYPES = {d.name: d.element for d in TABLE}
_BY_ELEMENT = {d.element: d for d in TABLE}
_BY_KIND = {kind: d.name for d in TABLE for kind in d.kinds}

TRACT_DATUM_TYPES = {
    "f16": np.float16, "f32": np.float32, "f64": np.float64,
    "i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64,
    "u8": np.uint8, "u16": np.uint16, "u32": np.uint32, "u64": np.uint64, "bool": np.bool_,
}


def dtype_of_element(element: Attribute | None) -> str:
    """The NNEF dtype of an IR element type; `?` for one NNEF has none for."""
    found = _BY_ELEMENT.get(element)
    return found.name if found is not None else "?"


def dtype_of_array(array: np.ndarray) -> str:
    """The NNEF dtype that holds an array's values (floats, and anything else, as scalar)."""
    return _BY_KIND.get(np.asarray(array).dtype.kind, "scalar")


def dtype_of_literal(value: object) -> str:
    """The dtype of a Python literal: bool is logical (before int, its base class)."""
    return "logical" if isinstance(value, bool) else "integer" if isinstance(value, int) else "scalar"


def item_dtype(element: Attribute | None) -> np.dtype | None:
    """The little-endian numpy item type of an IR element type, as weights are stored."""
    found = _BY_ELEMENT.get(element)
    return np.dtype(found.numpy).newbyteorder("<") if found is not None else None
