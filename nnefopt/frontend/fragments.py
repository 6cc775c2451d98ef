"""Running an operation over some kind of tensor value: a primitive by its function,
anything else by evaluating its fragment body.

Shape inference runs operations over shapes (primitives: the op-table entries' shape
rules); the interpreter runs them over numpy arrays (primitives: the entries' kernels). Everything else,
binding arguments, defaults, operators inside bodies, recursion, is this one walk.
"""

from __future__ import annotations

from typing import Callable

from nnefopt.errors import Location, NNEFError
from nnefopt.frontend import ast
from nnefopt.frontend.binder import evaluate_arguments
from nnefopt.frontend.evaluate import Evaluator
from nnefopt.frontend.stdlib import extra_operations, standard_operations

MAX_FRAGMENT_DEPTH = 64


def known_operations_of(name: str) -> ast.Fragment | None:
    return standard_operations().get(name) or extra_operations().get(name)


class NoMeaning(Exception):
    """Neither a primitive nor a body: nothing says what the operation computes."""


def _strict(message: str, loc: Location) -> None:
    raise NNEFError(message, loc)


class OperationDomain:
    """Subclasses say what a tensor value is and how a primitive is called on it."""

    def __init__(self, signatures: dict[str, ast.Fragment], primitive_of: Callable[[str], Callable | None]):
        """`primitive_of(name)`: the function computing operation `name` directly, or None."""
        self.signatures = signatures
        self.primitive_of = primitive_of
        self.depth = 0

    # ---- what subclasses define -------------------------------------------------------

    def is_tensor(self, value: object) -> bool:
        raise NotImplementedError

    def shape_of(self, value: object) -> list:
        raise NotImplementedError

    def operand(self, value: object) -> object:
        """A value from a body or the graph as the primitive takes it."""
        return value

    def result(self, value: object) -> object:
        """A primitive's result as a body value."""
        return value

    def call(self, primitive: Callable, signature: ast.Fragment, operands: list, attribs: dict,
             type_arg: str | None, loc: Location) -> object:
        return primitive(*operands, **attribs)

    # ---- the shared walk ----------------------------------------------------------------

    def invoke(self, call: ast.Invocation, evaluator: Evaluator) -> object:
        signature = self.signatures.get(call.name)
        if signature is None:
            raise NNEFError(f"unknown operation '{call.name}'", call.loc)
        inputs, attribs, _ = evaluate_arguments(call, signature, evaluator, _strict)
        return self.run(signature, list(inputs.values()), attribs, call.loc, call.type_arg)

    def apply(self, op: str, inputs: list, loc: Location) -> object:
        return self.run(self.signatures[op], inputs, {}, loc)

    def run(self, signature: ast.Fragment, inputs: list, attribs: dict, loc: Location,
            type_arg: str | None = None) -> object:
        primitive = self.primitive_of(signature.name)
        # A fragment the document defines with a body means what its body says, even
        # when it takes a standard name (torch-to-nnef's gelu); a bare declaration
        # (nnef-tools' `erf`, tract's operations) and nnefopt's own libraries mean what
        # nnefopt's primitive computes.
        if primitive is not None and (signature.body is None or signature is known_operations_of(signature.name)):
            operands = [self.operand(value) for value in inputs]
            return self.result(self.call(primitive, signature, operands, attribs, type_arg, loc))
        if signature.body is None:
            raise NoMeaning(signature.name)
        return self.run_body(signature, inputs, attribs, loc)

    def run_body(self, signature: ast.Fragment, inputs: list, attribs: dict, loc: Location) -> object:
        self.depth += 1
        if self.depth > MAX_FRAGMENT_DEPTH:
            raise NNEFError(f"fragment '{signature.name}' calls itself too deeply", loc)
        env = dict(attribs)
        tensor_params = [p for p in signature.params if p.name not in attribs]
        env.update((p.name, self.result(v) if v is not None else None) for p, v in zip(tensor_params, inputs))
        evaluator = Evaluator(env, self)
        try:
            for stmt in signature.body:
                _bind(stmt.lhs, evaluator.eval(stmt.rhs), env, stmt.loc)
        finally:
            self.depth -= 1
        results = [env[r.name] for r in signature.results]
        return results[0] if len(results) == 1 else tuple(results)


def _bind(lhs: ast.Expr, value: object, env: dict, loc: Location) -> None:
    if isinstance(lhs, ast.Identifier):
        env[lhs.name] = value
        return
    if not isinstance(value, (list, tuple)) or len(value) != len(lhs.items):
        raise NNEFError("the left-hand side does not match the value assigned", loc)
    for item, part in zip(lhs.items, value):
        _bind(item, part, env, loc)
