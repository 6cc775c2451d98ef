"""A fragment body compiled once into bound steps, for the IR interpreter's plan.

Walking a body with the Evaluator on every run redoes, per operation, the argument
binding, the attribute arithmetic and the operator dispatch, whose outcome depends only
on the call's attributes. So the plan walks the body once, by the same walk
(`OperationDomain.run_body`, the Evaluator), over placeholders instead of arrays: each
primitive the walk reaches is recorded as a step (its kernel, operands, attributes), and
a run then only calls those steps through `ArrayDomain.call`, as the walk would have.

A body the walk cannot take over placeholders (one asking the shape of a computed
tensor, or a primitive with an array of results) is not compiled: `compile_body`
gives None and the caller walks it per run, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter

import numpy as np

from nnefopt.errors import NNEFError
from nnefopt.frontend.fragments import NoMeaning, OperationDomain
from nnefopt.interp.interpreter import ArrayDomain


class _Untraceable(Exception):
    """The body needs something a placeholder does not know."""


class _Placeholder:
    """A tensor of the body: its index among the run's local values, its shape if known."""

    __slots__ = ("index", "shape")

    def __init__(self, index: int, shape: tuple | None = None):
        self.index, self.shape = index, shape


class _Tracer(OperationDomain):
    """The body's walk with primitives recorded rather than called."""

    def __init__(self, domain: ArrayDomain, count: int):
        super().__init__(domain.signatures, domain.primitive_of)
        self.arrays = domain
        self.count = count
        self.steps: list[tuple] = []

    def is_tensor(self, value: object) -> bool:
        return isinstance(value, (_Placeholder, np.ndarray))

    def shape_of(self, value: object) -> list:
        if isinstance(value, np.ndarray):
            return list(value.shape)
        if value.shape is None:
            raise _Untraceable
        return list(value.shape)

    def operand(self, value: object) -> object:
        return self.arrays.operand(value)

    def call(self, kernel, signature, operands, attribs, type_arg, loc) -> object:
        if any(_is_array_type(r.type) for r in signature.results):
            raise _Untraceable  # how many results, only the run knows
        results = [self._new() for _ in signature.results]
        self.steps.append((kernel, signature, operands, attribs, type_arg, loc, [r.index for r in results]))
        return results[0] if len(results) == 1 else tuple(results)

    def _new(self) -> _Placeholder:
        self.count += 1
        return _Placeholder(self.count - 1)


class Slot:
    """A tensor operand of the call: the index of its value in the plan's values, its
    static shape (None if unknown)."""

    __slots__ = ("slot", "shape")

    def __init__(self, slot: int, shape: tuple | None):
        self.slot, self.shape = slot, shape


def compile_body(domain: ArrayDomain, signature, operands: list, attribs: dict, loc) -> Callable[[list], object] | None:
    """The body of `signature` called with `operands` (a `Slot` for each tensor read from
    the plan's values, else the literal value itself, nested as the parameters are) and
    the call's `attribs`, as a function of the plan's values; None if the walk cannot be
    done ahead of the run."""
    slots: list[int] = []

    def placeholder(item: object) -> object:
        if isinstance(item, Slot):
            slots.append(item.slot)
            return _Placeholder(len(slots) - 1, item.shape)
        if isinstance(item, list):
            return [placeholder(i) for i in item]
        return item

    inputs = [placeholder(o) for o in operands]
    tracer = _Tracer(domain, len(slots))
    try:
        result = tracer.run_body(signature, inputs, dict(attribs), loc)
    except (_Untraceable, NoMeaning, NNEFError):
        return None  # the walk at run time says what is wrong, when it is
    steps = [_bound(domain, *step) for step in tracer.steps]
    size = tracer.count
    output = _reader(result)
    read = itemgetter(*slots) if len(slots) > 1 else (lambda values: (values[slots[0]],)) if slots else (lambda values: ())

    def run(values: list) -> object:
        local = [*read(values), *[None] * (size - len(slots))]
        for step in steps:
            step(local)
        return output(local)

    return run


def _bound(domain: ArrayDomain, kernel, signature, operands, attribs, type_arg, loc, outputs) -> Callable[[list], None]:
    """One recorded primitive as a step over the local values; its kernel prepared for
    the shapes of its first run (a prepared kernel checks them and falls back)."""
    gather = _reader(list(operands))
    call = domain.call
    prepared: list = []
    single = outputs[0] if len(outputs) == 1 else None

    def compute(local: list) -> object:
        values = gather(local)
        if prepared:
            function = prepared[0]
            return call(kernel, signature, values, attribs, type_arg, loc) if function is None else \
                call(function, signature, values, {}, None, loc)
        prepared.append(_prepare(kernel, signature, operands, values, attribs))
        return call(kernel, signature, values, attribs, type_arg, loc)

    if single is not None:
        def step(local: list) -> None:
            local[single] = compute(local)
    else:
        def step(local: list) -> None:
            for index, value in zip(outputs, compute(local)):
                local[index] = value
    return step


def _prepare(kernel, signature, operands, values, attribs):
    prepare = getattr(kernel, "prepare", None)
    if prepare is None or signature.name in ("cast", "constant"):
        return None
    if not all(isinstance(v, np.ndarray) for v in values):
        return None
    known = [(v.shape, v.dtype, v if not isinstance(o, _Placeholder) else None) for o, v in zip(operands, values)]
    return prepare(known, attribs)


def _reader(item: object) -> Callable[[list], object]:
    """A function from the local values to `item` with its placeholders filled in."""
    if isinstance(item, _Placeholder):
        index = item.index
        return lambda local: local[index]
    if isinstance(item, (list, tuple)):
        parts = [_reader(i) for i in item]
        kind = type(item)
        return lambda local: kind(part(local) for part in parts)
    return lambda local: item


def _is_array_type(type_) -> bool:
    from nnefopt.frontend import ast

    return isinstance(type_, ast.ArrayType)
