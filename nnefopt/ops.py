"""The op table: everything nnefopt knows about each operation, in one entry.

The signature (operands, attributes, defaults, results) is the operation's fragment in
the shipped NNEF libraries; the shape rule and the numpy kernel are looked up by name.
The dialect, the importer, the exporter, shape inference and the interpreter all read
this table, so adding an operation means one declaration and its two functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property
from typing import Callable

from nnefopt.frontend import ast
from nnefopt.frontend.binder import is_tensor_type
from nnefopt.frontend.evaluate import evaluate_constant
from nnefopt.frontend.stdlib import extra_operations, standard_operations, tract_operations
from nnefopt.interp.kernels import KERNELS
from nnefopt.shapes import SHAPE_RULES


@dataclass(frozen=True)
class OpDef:
    name: str
    signature: ast.Fragment
    shape_rule: Callable | None
    kernel: Callable | None

    # Computed once: passes ask for them on every operation they visit.
    @cached_property
    def tensor_params(self) -> list[ast.Param]:
        return [p for p in self.signature.params if is_tensor_type(p.type)]

    @cached_property
    def attribute_params(self) -> list[ast.Param]:
        return [p for p in self.signature.params if not is_tensor_type(p.type)]

    @cached_property
    def attribute_defaults(self) -> dict[str, object]:
        """Each attribute parameter's default value (None where it has none)."""
        return {p.name: None if p.default is None else evaluate_constant(p.default) for p in self.attribute_params}

    @property
    def results(self) -> list[ast.Result]:
        return self.signature.results


@cache
def op_table() -> dict[str, OpDef]:
    signatures = {**standard_operations(), **extra_operations(), **tract_operations()}
    return {
        name: OpDef(name, signature, SHAPE_RULES.get(name), KERNELS.get(name))
        for name, signature in signatures.items()
    }
