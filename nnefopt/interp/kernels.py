"""The numpy reference kernels: the meaning of every NNEF operation.

`KERNELS` maps an op name to its kernel (calling convention in `registry`). The kernels
live in families, one module each; importing those modules here fills the registry.
"""

from __future__ import annotations

from . import (  # noqa: F401
    kernels_elementwise, kernels_reduce, kernels_resize, kernels_roi, kernels_tensor, kernels_tract, kernels_window,
)
from .registry import KERNELS, kernel

__all__ = ["KERNELS", "kernel"]
