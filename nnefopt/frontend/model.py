"""A loaded NNEF model as flat data: tensors and the operations between them.

This is what the frontend hands to the importer (and what the tests compare with the
Khronos parser's graph): every invocation bound to its signature, nested expressions
flattened into operations, defaults filled in, weights memory-mapped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnefopt.errors import Location
from nnefopt.frontend import ast
from nnefopt.frontend.tensor_file import TensorHeader


EXPLICIT_TYPE = "<>"  # in Operation.explicit: the source wrote the generic type, as in `variable<scalar>`


class TensorRef(str):
    """A tensor named in an operation's inputs (a plain str there is never a tensor)."""

    __slots__ = ()


@dataclass
class Quantization:
    algorithm: str  # e.g. "zero_point_linear_quantize"
    attributes: dict[str, object]
    loc: Location


@dataclass
class Tensor:
    name: str
    dtype: str  # "scalar", "integer", "logical", or "?" when an extension op leaves it open
    shape: tuple | None = None  # dims are ints or sympy expressions; None: not inferred
    data: np.ndarray | None = None  # variables (memory-mapped from their .dat) and constants
    quant: Quantization | None = None
    header: TensorHeader | None = None  # that file's header: item type and width to write back
    origin: Path | None = None  # the .dat file the data is, while it stays on disk: copied on export
    loc: Location = field(default_factory=lambda: ast.NOWHERE)


@dataclass
class Operation:
    name: str
    type_arg: str | None  # what the generic `?` of the signature is bound to
    inputs: dict[str, object]  # tensor parameters: TensorRef, a literal, a list of them, or None (absent)
    attribs: dict[str, object]  # other parameters, defaults filled in
    outputs: dict[str, object]  # result name → TensorRef, or a list of them for array results
    loc: Location
    explicit: frozenset[str] = frozenset()  # parameters the source gave (the rest are defaults)
    signature: ast.Fragment | None = None  # None: an extension op nnefopt does not know

    def output_names(self) -> list[str]:
        return [ref for value in self.outputs.values() for ref in _refs(value)]


def _refs(value: object) -> list[str]:
    if isinstance(value, TensorRef):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, TensorRef)]
    return []


@dataclass
class Model:
    name: str
    inputs: list[str]
    outputs: list[str]
    tensors: dict[str, Tensor]
    operations: list[Operation]
    fragments: dict[str, ast.Fragment]  # fragments the document defines or declares itself
    extensions: list[ast.Extension]
    version: tuple[int, int]
    file: str  # the graph file, as the user names it
