"""Shapes of every tensor of a Model, from the shape rules of the op table's entries.

An operation without a rule of its own (a fragment the document defines, or a compound
standard operation) gets its shapes by evaluating its body over shapes. An operation
nnefopt knows nothing about leaves its results' shapes unknown (None), and so do the
operations that depend on them.
"""

from __future__ import annotations

import numpy as np
import sympy

from nnefopt.errors import Location, NNEFError, warn
from nnefopt.frontend.fragments import NoMeaning, OperationDomain
from nnefopt.frontend.model import Model, Operation, TensorRef
from nnefopt.frontend.repairs import repairs_before
from nnefopt.frontend.stdlib import known_operations
from nnefopt.ops import shape_rule_of


class Shape(tuple):
    """A tensor's shape as a value inside a fragment body (tuples there are NNEF tuples)."""

    __slots__ = ()


class ShapeDomain(OperationDomain):
    def __init__(self, model: Model):
        super().__init__({**known_operations(model.extensions), **model.fragments}, shape_rule_of)

    def is_tensor(self, value: object) -> bool:
        return isinstance(value, Shape)

    def shape_of(self, value: Shape) -> list:
        return list(value)

    def operand(self, value: object) -> object:
        return _as_shape(value)

    def result(self, value: object) -> object:
        return _wrap(value)

    def call(self, rule, signature, operands, attribs, type_arg, loc) -> object:
        try:
            return rule(*operands, **attribs)
        except (ValueError, TypeError, IndexError, ZeroDivisionError) as exc:
            raise NNEFError(f"'{signature.name}': {exc}", loc) from None


def _as_shape(value: object) -> object:
    if value is None or isinstance(value, np.ndarray):  # absent, or data for a value-dependent rule
        return value
    if isinstance(value, Shape):
        return tuple(value)
    if isinstance(value, list):
        return [_as_shape(v) for v in value]
    if isinstance(value, tuple):  # already a plain shape from the graph
        return value
    return ()  # a literal used as a tensor has rank 0


def _wrap(result: object) -> object:
    """A rule's result as body values: shapes become Shape, arrays and tuples of them too."""
    if isinstance(result, list):
        return [Shape(r) for r in result]
    if isinstance(result, tuple) and result and isinstance(result[0], tuple):
        return tuple(Shape(r) for r in result)
    return Shape(result)


def infer_shapes(model: Model, strict: bool = False) -> None:
    domain = ShapeDomain(model)
    tensors = model.tensors
    unknown: set[str] = set()
    operations = []
    for op in model.operations:
        operations.extend(repairs_before(model, op, strict))
        operations.append(op)
        inputs = [_input_shape(value, tensors) for value in op.inputs.values()]
        value_params = getattr(shape_rule_of(op.name), "value_params", ())
        for index, key in enumerate(op.inputs):
            if key in value_params and isinstance(op.inputs[key], TensorRef):
                data = tensors[op.inputs[key]].data
                inputs[index] = _UNKNOWN if data is None else np.asarray(data)
        if op.signature is None or any(_has_unknown(v) for v in inputs):
            unknown.update(op.output_names())
            continue
        try:
            result = domain.run(op.signature, inputs, op.attribs, op.loc)
        except NoMeaning:
            unknown.update(op.output_names())
            continue
        _store(op, result, tensors)
    model.operations[:] = operations
    if unknown:
        first = sorted(unknown)[0]
        warn(f"shapes of {len(unknown)} tensors are unknown (first: '{first}'): no shape rule for their operations",
             Location(model.file))


_UNKNOWN = object()  # an input whose shape could not be inferred (None means: absent)


def _input_shape(value: object, tensors) -> object:
    if isinstance(value, TensorRef):
        shape = tensors[value].shape
        return _UNKNOWN if shape is None else shape
    if isinstance(value, list):
        return [_input_shape(v, tensors) for v in value]
    return None if value is None else ()


def _has_unknown(value: object) -> bool:
    if isinstance(value, list):
        return any(map(_has_unknown, value))
    return value is _UNKNOWN


def _store(op: Operation, result: object, tensors) -> None:
    outputs = list(op.outputs.values())
    results = [result] if len(outputs) == 1 else list(result)
    for refs, shape in zip(outputs, results):
        if not isinstance(refs, list):
            tensors[refs].shape = _simplify(shape)
            continue
        if len(refs) != len(shape):
            raise NNEFError(f"'{op.name}' gives {len(shape)} results but {len(refs)} names are assigned", op.loc)
        for ref, item in zip(refs, shape):
            tensors[ref].shape = _simplify(item)


def _simplify(shape) -> tuple:
    return tuple(int(d) if isinstance(d, sympy.Integer) else d for d in shape)
