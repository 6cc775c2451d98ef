"""NNEF attribute values (the frontend's Python form) as xDSL attributes, and back; named
dimensions as sympy symbols."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence

import sympy
from sympy.parsing.sympy_parser import parse_expr
from xdsl.dialects.builtin import (
    ArrayAttr,
    DictionaryAttr,
    FloatAttr,
    IntegerAttr,
    StringAttr,
    f64,
    i1,
    i64,
)
from xdsl.ir import Attribute

from nnefopt.frontend import ast


def to_attribute(value: object) -> Attribute:
    """An NNEF attribute value (the frontend's Python form) as an xDSL attribute."""
    if isinstance(value, (bool, int, float, str)):
        return _scalar_attribute(type(value), value)
    if isinstance(value, sympy.Expr):
        return DictionaryAttr({"dim": StringAttr(str(value))})
    if isinstance(value, (list, tuple)):
        key = _key(value)
        return _array_attribute(key) if key is not None else ArrayAttr([to_attribute(v) for v in value])
    raise TypeError(f"no attribute for {value!r}")


def tuple_preserving_attribute(value: object, operand: Callable[[object], int | None] | None = None) -> Attribute:
    """As to_attribute, with each tuple as {tuple = [...]}: for the arguments of an
    operation nnefopt has no declaration of, whose types cannot tell tuples from arrays
    (tract's `output = [("acc_out", "last", 0, 1)]`). `operand` gives the index among
    the operation's operands of an item that is a tensor (None for a literal): such an
    item is kept as {operand = index}, so the tensor is an SSA operand the passes see
    used (tract's `scan = [("x_t", input, 0, 1)]`)."""
    if operand is not None and not isinstance(value, (list, tuple)):
        index = operand(value)
        if index is not None:
            return DictionaryAttr({_OPERAND: IntegerAttr(index, i64)})
    if isinstance(value, tuple):
        return DictionaryAttr({_TUPLE: ArrayAttr([tuple_preserving_attribute(v, operand) for v in value])})
    if isinstance(value, list):
        return ArrayAttr([tuple_preserving_attribute(v, operand) for v in value])
    return to_attribute(value)


_TUPLE = "tuple"
_OPERAND = "operand"


def operand_index(attr: Attribute) -> int | None:
    """The operand index an {operand = i} item stands for, else None."""
    if isinstance(attr, DictionaryAttr) and set(attr.data) == {_OPERAND} and isinstance(attr.data[_OPERAND], IntegerAttr):
        return attr.data[_OPERAND].value.data
    return None


def operand_indices(attr: Attribute) -> list[int]:
    """Every operand index an attribute refers to, in order."""
    found, stack = [], [attr]
    while stack:  # iterative: a deeply nested attribute must not exhaust the stack
        item = stack.pop()
        index = operand_index(item)
        if index is not None:
            found.append(index)
        elif isinstance(item, ArrayAttr):
            stack.extend(reversed(item.data))
        elif isinstance(item, DictionaryAttr) and _TUPLE in item.data:
            stack.append(item.data[_TUPLE])
    return found


def _key(value: object) -> tuple | None:
    """A hashable key telling apart what to_attribute tells apart (True, 1 and 1.0 are
    equal in Python, not as attributes); None for what is not worth a key."""
    if isinstance(value, (list, tuple)):
        items = [_key(v) for v in value]
        return None if None in items else (list, tuple(items))
    if isinstance(value, (bool, int, float, str)):
        return (type(value), value)
    return None


@functools.lru_cache(maxsize=65536)
def _array_attribute(key: tuple) -> ArrayAttr:
    # Shapes, strides, paddings and argument lists repeat across a model's operations:
    # one immutable attribute each, built (and verified) once, shared by all.
    return ArrayAttr([_array_attribute(k) if k[0] is list else _scalar_attribute(*k) for k in key[1]])


@functools.lru_cache(maxsize=4096)
def _scalar_attribute(kind: type, value: object) -> Attribute:
    # The kind is part of the key: True and 1 are equal keys, not equal attributes.
    if kind is bool:
        return IntegerAttr(int(value), i1)
    if kind is int:
        return IntegerAttr(value, i64)
    if kind is float:
        return FloatAttr(value, f64)
    return StringAttr(value)


def from_attribute(attr: Attribute, type_: ast.Type | None = None, operands: Sequence | None = None) -> object:
    """The Python value of an attribute; the declared type tells tuples from arrays. An
    {operand = i} item is `operands[i]` (TypeError without operands or out of range)."""
    index = operand_index(attr)
    if index is not None:
        if operands is None or not 0 <= index < len(operands):
            raise TypeError(f"operand {index} of {0 if operands is None else len(operands)} operands")
        return operands[index]
    if isinstance(attr, IntegerAttr):
        value = attr.value.data
        return bool(value) if attr.type == i1 else value
    if isinstance(attr, FloatAttr):
        return float(attr.value.data)
    if isinstance(attr, StringAttr):
        return attr.data
    if isinstance(attr, DictionaryAttr) and "dim" in attr.data:
        return symbolic_dim(attr.data["dim"].data)
    if isinstance(attr, DictionaryAttr) and _TUPLE in attr.data and isinstance(attr.data[_TUPLE], ArrayAttr):
        items = attr.data[_TUPLE].data
        types = type_.items if isinstance(type_, ast.TupleType) else [None] * len(items)
        return tuple(from_attribute(a, t, operands) for a, t in zip(items, types))
    if isinstance(attr, ArrayAttr):
        if isinstance(type_, ast.TupleType):
            return tuple(from_attribute(a, t, operands) for a, t in zip(attr.data, type_.items))
        item = type_.item if isinstance(type_, ast.ArrayType) else None
        return [from_attribute(a, item, operands) for a in attr.data]
    raise TypeError(f"not an NNEF attribute value: {attr}")


def dim_symbol(name: str) -> sympy.Symbol:
    """A named dimension (tract's `extension tract_symbol N`): a positive integer."""
    return sympy.Symbol(name, integer=True, positive=True)


def symbolic_dim(text: str) -> sympy.Expr:
    # Every name is a dimension symbol, never a sympy function of the same name (N, E, S...).
    names = {name: dim_symbol(name) for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text)}
    return parse_expr(text, local_dict=names, evaluate=True)

