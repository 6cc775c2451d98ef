"""Weights: `nnef.variable` refers to its data by a `dense_resource` handle; the array
(memory-mapped where large) lives here."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import (
    DenseResourceAttr,
    TensorType,
)

WEIGHTS: dict[str, np.ndarray] = {}
# The tensor file a weight was read from, while no pass has changed it: export copies it.
ORIGINS: dict[str, Path] = {}
_handles = itertools.count()


def weight_attribute(label: str, data: np.ndarray, type_: TensorType, origin: Path | None = None) -> DenseResourceAttr:
    handle = f"{label}.{next(_handles)}"
    WEIGHTS[handle] = data
    if origin is not None:
        ORIGINS[handle] = origin
    return DenseResourceAttr.from_params(handle, type_)


def weight_of(attr: DenseResourceAttr) -> np.ndarray | None:
    return WEIGHTS.get(attr.resource_handle.data)


def origin_of(attr: DenseResourceAttr) -> Path | None:
    return ORIGINS.get(attr.resource_handle.data)

