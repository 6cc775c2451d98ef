"""Matching the arguments of an invocation to a fragment's parameters, and checking
attribute values against their declared types."""

from __future__ import annotations

from typing import Callable

import sympy

from nnefopt.errors import Location, NNEFError
from nnefopt.frontend import ast

Lenient = Callable[[str, Location], None]  # warns in lenient dialects, raises in strict mode


def is_tensor_type(type_: ast.Type) -> bool:
    while isinstance(type_, ast.ArrayType):
        type_ = type_.item
    return isinstance(type_, ast.TensorType)


def bind_arguments(call: ast.Invocation, fragment: ast.Fragment, lenient: Lenient) -> dict[str, ast.Argument]:
    """Parameter name → the argument given for it; parameters left out are absent."""
    params = fragment.params
    bound: dict[str, ast.Argument] = {}
    seen_named = False
    for index, arg in enumerate(call.args):
        if arg.name is None:
            if seen_named:
                raise NNEFError(f"positional argument after named ones in call to '{call.name}'", arg.loc)
            if index >= len(params):
                # torch-to-nnef calls its own one-parameter gelu as gelu(x, 0.0)
                lenient(f"too many arguments to '{call.name}': it takes {len(params)}; the rest are ignored", arg.loc)
                break
            param = params[index]
            if not is_tensor_type(param.type):
                lenient(
                    f"attribute '{param.name}' of '{call.name}' given by position; "
                    f"the specification requires '{param.name} = ...'",
                    arg.loc,
                )
        else:
            seen_named = True
            param = fragment.param(arg.name)
            if param is None:
                names = ", ".join(p.name for p in params) or "none"
                raise NNEFError(
                    f"'{call.name}' has no parameter '{arg.name}' (parameters: {names})", arg.loc
                )
            if param.name in bound:
                raise NNEFError(f"argument '{param.name}' of '{call.name}' given twice", arg.loc)
        bound[param.name] = arg
    for param in params:
        if param.name not in bound and param.default is None:
            raise NNEFError(f"missing argument '{param.name}' of '{call.name}'", call.loc)
    return bound


def resolve_generic(type_: ast.Type, binding: str | None) -> ast.Type:
    """`type_` with the generic placeholder `?` replaced by `binding`."""
    if binding is None:
        return type_
    if isinstance(type_, ast.PrimitiveType):
        return ast.PrimitiveType(binding) if type_.name == "?" else type_
    if isinstance(type_, ast.TensorType):
        return ast.TensorType(resolve_generic(type_.item, binding))
    if isinstance(type_, ast.ArrayType):
        return ast.ArrayType(resolve_generic(type_.item, binding))
    return ast.TupleType(tuple(resolve_generic(t, binding) for t in type_.items))


def describe_value(value: object) -> str:
    kind = {bool: "logical", int: "integer", float: "scalar", str: "string", list: "array", tuple: "tuple"}
    return f"{kind.get(type(value), type(value).__name__)} {value!r}"


def coerce_value(value: object, type_: ast.Type) -> object:
    """`value` converted to `type_` (an integer is a valid scalar), or TypeError."""
    if isinstance(type_, ast.PrimitiveType):
        name = type_.name
        if name in ("?", ""):
            if isinstance(value, (bool, int, float, str)):
                return value
        elif name == "scalar":
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        elif name == "integer":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, sympy.Expr) and value.is_integer:  # a symbolic dimension
                return value
        elif name == "logical":
            if isinstance(value, bool):
                return value
        elif name == "string":
            if isinstance(value, str):
                return value
        raise TypeError
    if isinstance(type_, ast.ArrayType):
        if not isinstance(value, list):
            raise TypeError
        return [coerce_value(item, type_.item) for item in value]
    if isinstance(type_, ast.TupleType):
        if not isinstance(value, tuple) or len(value) != len(type_.items):
            raise TypeError
        return tuple(coerce_value(item, t) for item, t in zip(value, type_.items))
    raise TypeError  # a tensor type: not an attribute


def check_attribute(value: object, type_: ast.Type, what: str, loc: Location) -> object:
    try:
        return coerce_value(value, type_)
    except TypeError:
        raise NNEFError(f"{what} must be of type {type_}, found {describe_value(value)}", loc) from None


def is_absent(expr: ast.Expr | None) -> bool:
    """tract declares optional tensors with a default of `false`: left out, they are absent."""
    return isinstance(expr, ast.Literal) and expr.kind == "logical" and expr.value is False


def evaluate_arguments(call: ast.Invocation, signature: ast.Fragment, evaluator, lenient: Lenient,
                       attribute_hook=None) -> tuple[dict, dict, set]:
    """Tensor arguments and checked attribute values of `call`, defaults filled in, and
    the names of the parameters the call gave. `attribute_hook(param, value, loc)` may
    rewrite an attribute value before its type is checked."""
    bound = bind_arguments(call, signature, lenient)
    inputs: dict[str, object] = {}
    attribs: dict[str, object] = {}
    for param in signature.params:
        arg = bound.get(param.name)
        expr, loc = (arg.value, arg.loc) if arg is not None else (param.default, call.loc)
        if is_tensor_type(param.type):
            inputs[param.name] = None if arg is None and is_absent(expr) else evaluator.eval(expr)
            continue
        value = evaluator.eval(expr)
        if attribute_hook is not None:
            value = attribute_hook(param, value, loc)
        attribs[param.name] = check_attribute(value, param.type, f"argument '{param.name}' of '{call.name}'", loc)
    return inputs, attribs, set(bound)
