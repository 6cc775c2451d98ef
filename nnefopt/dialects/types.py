"""Tensor types of the `nnef` dialect: NNEF dtypes as element types, shapes as dims, a
symbolic dim as `?`."""

from __future__ import annotations

import functools

from xdsl.dialects.builtin import DYNAMIC_INDEX, NoneType, TensorType
from xdsl.ir import Attribute

from nnefopt.dtypes import ELEMENT_TYPES, dtype_of_element



def tensor_type(dtype: str, shape: tuple | None) -> TensorType:
    """NNEF dtype and shape as a tensor type; a symbolic dim is `?` (its expression is
    kept in the producing operation's `nnef.dims`)."""
    return _tensor_type(dtype, tuple(d if isinstance(d, int) else DYNAMIC_INDEX for d in (shape or ())))


@functools.lru_cache(maxsize=4096)
def _tensor_type(dtype: str, dims: tuple[int, ...]) -> TensorType:
    # Attributes are immutable, and xDSL verifies each one it builds: build each once.
    return TensorType(ELEMENT_TYPES.get(dtype, NoneType()), list(dims))


def dtype_of(type_: Attribute) -> str:
    element = type_.element_type if isinstance(type_, TensorType) else None
    return dtype_of_element(element)



DYNAMIC = object()


def static_type_shape(type_: Attribute):
    if not isinstance(type_, TensorType):
        return DYNAMIC
    shape = type_.get_shape()
    return DYNAMIC if DYNAMIC_INDEX in shape else tuple(shape)
