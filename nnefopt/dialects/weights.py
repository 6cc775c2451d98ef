"""Weights: `nnef.variable` refers to its data by a `dense_resource` attribute, and the
array (memory-mapped where large) belongs to that attribute object.

An attribute object is shared by a module and its clones and dropped with the last
operation holding it, so a weight lives exactly as long as some IR refers to it; two
modules read from the same text each have their own attribute objects, hence their own
arrays. The handle is only the name the text shows: derived from the variable's label
(`conv1/weight` → `conv1_weight`), it is the same in every process. Handles are made
unique within a module where the text is printed (`mlir_weights.unique_handles`).
"""

from __future__ import annotations

import re
import weakref
from pathlib import Path
from typing import NamedTuple

import numpy as np
from xdsl.dialects.builtin import DenseResourceAttr, TensorType

from nnefopt.errors import Location, NNEFError


class _Weight(NamedTuple):
    attribute: weakref.ref
    data: np.ndarray
    origin: Path | None  # the tensor file it was read from, while no pass has changed it


# id of a live attribute -> its weight. Attributes compare equal by handle and type, so
# the key is the object's identity, released when the object goes (weakref.finalize).
_WEIGHTS: dict[int, _Weight] = {}


def handle_for(label: str) -> str:
    """The label as a bare MLIR identifier (what a resource handle may be)."""
    handle = re.sub(r"[^A-Za-z0-9_.$]", "_", label)
    return handle if re.match(r"[A-Za-z_]", handle) else f"_{handle}"


def weight_attribute(label: str, data: np.ndarray, type_: TensorType, origin: Path | None = None,
                     *, handle: str | None = None) -> DenseResourceAttr:
    """A new attribute carrying `data` (and the file it came from, to copy on export)."""
    attr = DenseResourceAttr.from_params(handle or handle_for(label), type_)
    attach_weight(attr, data, origin)
    return attr


def attach_weight(attr: DenseResourceAttr, data: np.ndarray, origin: Path | None = None) -> None:
    """Make `attr` carry `data` (a parsed attribute, the array its blob held): the array
    lives as long as that attribute object."""
    key = id(attr)
    _WEIGHTS[key] = _Weight(weakref.ref(attr), data, origin)
    weakref.finalize(attr, _WEIGHTS.pop, key, None)


def _entry(attr: DenseResourceAttr) -> _Weight | None:
    entry = _WEIGHTS.get(id(attr))
    return entry if entry is not None and entry.attribute() is attr else None


def weight_of(attr: DenseResourceAttr) -> np.ndarray | None:
    entry = _entry(attr)
    return None if entry is None else entry.data


def origin_of(attr: DenseResourceAttr) -> Path | None:
    entry = _entry(attr)
    return None if entry is None else entry.origin


def missing_weight(label: str, loc: Location) -> NNEFError:
    """The error for a variable whose data is not there (MLIR text without its
    dialect_resources section, or an NNEF graph read without its tensor files)."""
    return NNEFError(f"variable '{label}' has no data (read from MLIR printed without its weights?)", loc)

