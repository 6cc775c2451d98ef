"""The kernel registry: NNEF op name -> numpy function giving the op its meaning.

Calling convention, shared with the shape rules: `KERNELS[name](*tensors, **attributes)`.
Tensor operands come positionally in the fragment's declaration order as numpy arrays
(a `tensor<>[]` parameter as a list of arrays, a literal passed as a tensor as a 0-d
array, an optional tensor that was left out as None). Attributes come by the spec's
parameter names with defaults filled in; padding is a list of `(front, back)` tuples and
`[]` means automatic padding. A kernel returns an array, a tuple of arrays for several
results (`moments`) or a list for an array result (`split`, `unstack`).
"""

from __future__ import annotations

from collections.abc import Callable

KERNELS: dict[str, Callable] = {}


def kernel(*names: str) -> Callable[[Callable], Callable]:
    """Register the decorated function under every name given."""

    def register(function: Callable) -> Callable:
        for name in names:
            if name in KERNELS:
                raise ValueError(f"kernel {name!r} registered twice")
            KERNELS[name] = function
        return function

    return register
