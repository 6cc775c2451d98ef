"""NNEF's broadcasting rule, in one place: shapes align from the LEFT.

A tensor of lower rank gets trailing singleton dimensions (a `[1, C]` bias meets
`[N, C, H, W]` as `[1, C, 1, 1]`), unlike numpy, which aligns from the right; then along
each axis the extents agree or are 1. Shape inference, the kernels and the passes that
compute with known values all go through these functions.
"""

from __future__ import annotations

import operator

import numpy as np


def aligned_shape(shape, rank: int) -> tuple:
    """`shape` with trailing 1s up to `rank` (unchanged if it has that many axes)."""
    shape = tuple(shape)
    return shape + (1,) * (rank - len(shape))


def aligned(value: np.ndarray, rank: int) -> np.ndarray:
    """An array as it broadcasts against a tensor of rank `rank`."""
    value = np.asarray(value)
    return value.reshape(aligned_shape(value.shape, rank)) if value.ndim < rank else value


def align(*values) -> list[np.ndarray]:
    """Arrays padded with trailing singleton dimensions to their common rank."""
    arrays = [np.asarray(v) for v in values]
    rank = max(a.ndim for a in arrays)
    return [aligned(a, rank) for a in arrays]


def broadcast_shape(*shapes, same=operator.eq) -> tuple | None:
    """The shape of an element-wise result, or None when the shapes do not broadcast.
    `same` compares two extents that are not 1 (symbolic extents may be equal without
    being the same object); a known extent says more than a symbol."""
    rank = max(map(len, shapes), default=0)
    result = []
    for extents in zip(*(aligned_shape(s, rank) for s in shapes)):
        dim = 1
        for d in extents:
            if d == 1:
                continue
            if dim != 1 and not same(dim, d):
                return None
            if dim == 1 or isinstance(d, int):
                dim = d
        result.append(dim)
    return tuple(result)
