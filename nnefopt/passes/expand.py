"""A fragment body as operations of the IR: the third meaning of the shared fragment walk
(after shapes and arrays), where a tensor value is an SSA value and a primitive builds
its operation. Canonicalization uses it to inline small fragments, so that torch-to-nnef's
`hard_tanh` body, `min(max(x, a), b)`, meets the patterns written for standard operations.
"""

from __future__ import annotations

from xdsl.dialects.builtin import TensorType
from xdsl.ir import Operation, SSAValue

from nnefopt.dialects.nnef import OPERATIONS, CallOp, from_attribute, tensor_type, to_attribute
from nnefopt.dtypes import dtype_of_literal
from nnefopt.export.from_ir import location_of
from nnefopt.frontend import ast
from nnefopt.frontend.binder import is_tensor_type
from nnefopt.frontend.evaluate import evaluate_constant
from nnefopt.frontend.fragments import OperationDomain
from nnefopt.passes.rewriting import create, static_shape


class Unexpandable(Exception):
    """The body calls something that is not an operation of the table, or its shapes are
    not static: it stays a call."""


class IRDomain(OperationDomain):
    """Builds the operations a body invokes, detached, in order, into `self.built`."""

    def __init__(self, signatures: dict[str, ast.Fragment]):
        super().__init__(signatures, lambda name: name if name in OPERATIONS else None)  # built as itself
        self.built: list[Operation] = []

    def is_tensor(self, value: object) -> bool:
        return isinstance(value, SSAValue)

    def shape_of(self, value: SSAValue) -> list:
        shape = static_shape(value)
        if shape is None:
            raise Unexpandable
        return list(shape)

    def operand(self, value: object) -> object:
        if isinstance(value, list):
            return [self.operand(v) for v in value]
        if isinstance(value, (bool, int, float)):
            dtype = dtype_of_literal(value)
            literal = OPERATIONS["constant"](properties={"shape": to_attribute([]), "value": to_attribute([value])},
                                             result_types=[tensor_type(dtype, ())])
            self.built.append(literal)
            return literal.results[0]
        return value

    def call(self, primitive, signature, operands, attribs, type_arg, loc) -> object:
        if signature.body is not None and OPERATIONS[signature.name].OP_DEF.shape_rule is None:
            raise Unexpandable  # a compound without a rule: its result types are unknown here
        try:
            op = create(signature.name, operands, attribs)
        except Exception:  # the shape rule refuses, or the operands are not static
            raise Unexpandable from None
        self.built.append(op)
        return op.results[0] if len(op.results) == 1 else list(op.results)


def expand_call(call: CallOp, signature: ast.Fragment, signatures: dict[str, ast.Fragment]) -> tuple[list, list] | None:
    """The operations of the called fragment's body, detached, and the values that replace
    the call's results; None when the body cannot be expressed in table operations."""
    given = dict(zip([n.data for n in call.operand_names.data], call.arguments))
    args = dict(call.args.data)
    domain = IRDomain(signatures)
    inputs, attribs = [], {}
    for param in signature.params:
        if is_tensor_type(param.type):
            value = given.get(param.name)
            if value is None:
                if param.default is None:
                    return None
                value = domain.operand(evaluate_constant(param.default))
            inputs.append(value)
        elif param.name in args:
            attribs[param.name] = from_attribute(args[param.name], param.type)
        elif param.default is not None:
            attribs[param.name] = evaluate_constant(param.default)
        else:
            return None
    try:
        results = domain.run_body(signature, inputs, attribs, location_of(call))
    except Exception:  # Unexpandable, or the body's own checks: the call stays as it is
        discard(domain.built)
        return None
    results = list(results) if isinstance(results, tuple) else [results]
    flat = [v for r in results for v in (r if isinstance(r, list) else [r])]
    if len(flat) != len(call.outputs) or not all(isinstance(v, SSAValue) for v in flat) \
            or any(isinstance(v.type, TensorType) and v.type != r.type for v, r in zip(flat, call.outputs)):
        discard(domain.built)
        return None
    return domain.built, flat


def discard(built: list[Operation]) -> None:
    """Operations built aside and not used: they must not stay users of real values."""
    for op in reversed(built):
        op.erase(safe_erase=False)

