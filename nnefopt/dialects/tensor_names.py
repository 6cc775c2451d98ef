"""Tensor names: each SSA value keeps its exact NNEF name.

xDSL's `name_hint` drops a trailing `_<digits>` (its printer's way of telling values
apart), so it cannot hold `input_0` or `conv_12`. A value's name is its `name_hint`
when that holds it exactly; otherwise `name_hint` is left empty (so that xDSL copies
nothing inexact to other values) and the producing operation lists the exact names of
its results in the discardable attribute `nnef.names` (an empty string: the result's
`name_hint`), which MLIR text prints and reads back.
"""

from __future__ import annotations

from collections.abc import Iterable

from xdsl.dialects.builtin import ArrayAttr, ModuleOp, StringAttr
from xdsl.ir import OpResult, SSAValue

NAMES = "nnef.names"


def tensor_name(value: SSAValue) -> str | None:
    """The NNEF name of the tensor `value` is, None for a value without one."""
    if isinstance(value, OpResult):
        names = value.op.attributes.get(NAMES)
        if isinstance(names, ArrayAttr) and value.index < len(names.data) and names.data[value.index].data:
            return names.data[value.index].data
    return value.name_hint


def set_tensor_name(value: SSAValue, name: str | None) -> None:
    """Name the tensor `value` is (None: no name)."""
    hint = name if _holds_exactly(name) else None
    value.name_hint = hint
    if not isinstance(value, OpResult):
        return
    op, index = value.op, value.index
    names = op.attributes.get(NAMES)
    if names is None and hint == name:
        return  # nothing to list: naming each of 10,000 results stays O(1), not O(results)
    entries = [e.data for e in names.data] if isinstance(names, ArrayAttr) else []
    entries += [""] * (len(op.results) - len(entries))
    entries[index] = "" if hint == name else name
    if any(entries):
        op.attributes[NAMES] = ArrayAttr([StringAttr(e) for e in entries])
    else:
        op.attributes.pop(NAMES, None)


def _holds_exactly(name: str | None) -> bool:
    # xDSL takes any word character in a name hint; MLIR text (and xDSL's lexer) only ASCII
    return name is None or (name.isascii() and SSAValue.is_valid_name(name) and
                            SSAValue.extract_valid_name(name) == name)


def module_tensor_names(module: ModuleOp) -> set[str]:
    return {name for op in module.walk() for r in op.results if (name := tensor_name(r))}


def fresh_name(base: str, taken: set[str], separator: str = "_", tried: dict[str, int] | None = None) -> str:
    """`base`, or else the first of `base_1`, `base_2`, ... not in `taken`; now taken.
    `tried` remembers, per base, the suffixes already found taken: a pass naming 10,000
    tensors after one base would otherwise try 1, 2, ... again for each (quadratic)."""
    n = 0 if tried is None else tried.get(base, 0)
    name = base if n == 0 else f"{base}{separator}{n}"
    while name in taken:
        n += 1
        name = f"{base}{separator}{n}"
    taken.add(name)
    if tried is not None:
        tried[base] = n
    return name


class FreshNames:
    """Names not yet taken: the one way passes and the exporter make new tensor names."""

    def __init__(self, taken: Iterable[str] = ()):
        self.taken = set(taken)
        self.tried: dict[str, int] = {}

    @classmethod
    def of_module(cls, module: ModuleOp) -> FreshNames:
        return cls(module_tensor_names(module))

    def __call__(self, base: str) -> str:
        return fresh_name(base, self.taken, tried=self.tried)
