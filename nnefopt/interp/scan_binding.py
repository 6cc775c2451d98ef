"""tract's `tract_core_scan` bound once: its arguments checked against the body fragment
they name, the body compiled once (body_plan), the loop kernels_tract's.

tract writes
    (last, ys) = tract_core_scan(body = "scan_body_0", scan = [("x_t", x, 0, 1)],
        full = [("w", w)], state = [("acc_in", init, "acc_out")],
        output = [("acc_out", "last", 0, 1), ("y_t", "full", 0, 1)], skip = 0, ...);
and reads it (nnef/src/ops/core/scan.rs) by the body's parameters: each is named by a
`scan`, else a `full`, else a `state` tuple; each `output` tuple is one result of the
operation, in order, naming a body result and whether it is its last value or all of
them. Names match as given or escaped into identifiers, as tract matches them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nnefopt.dialects.nnef import OpaqueOp
from nnefopt.errors import Location, NNEFError
from nnefopt.export.from_ir import location_of, opaque_arguments
from nnefopt.frontend import ast
from nnefopt.frontend.binder import is_tensor_type
from nnefopt.frontend.fragments import NoMeaning
from nnefopt.interp.body_plan import Slot, compile_body
from nnefopt.interp.interpreter import ArrayDomain
from nnefopt.interp.kernels_tract import tract_core_scan

_RUN_ERRORS = (ValueError, TypeError, IndexError, ZeroDivisionError, FloatingPointError)

# Each argument's tuples: their arity, and which items are strings, integers or tensors.
_FORMS = {
    "scan": ("string", "tensor", "integer", "integer"),
    "full": ("string", "tensor"),
    "state": ("string", "tensor", "string"),
    "output": ("string", "string", "integer", "integer"),
}


class _Operand:
    """A tensor item of the scan's arguments: the index of the operation's operand."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index


def bind_scan(op: OpaqueOp, operands: list[Callable[[list], object]], shapes: list[tuple | None],
              results: list[int], domain: ArrayDomain) -> Callable[[list], None]:
    """The scan as a step over the plan's values: `operands[i]` reads the i-th operand
    from them, `shapes[i]` is its static shape (None if unknown), `results` are the
    slots of the operation's results. A malformed scan gives a step that raises its
    NNEFError (as an operation without a kernel does)."""
    loc = location_of(op)
    try:
        params, body_results, body, skip = _read(op, shapes, domain, loc)
    except NNEFError as error:
        return _failing(error)
    indices = [p[0] for p in params]
    kinds = [p[1] for p in params]

    def step(values: list) -> None:
        inputs = [operands[i](values) for i in indices]
        try:
            computed = tract_core_scan(body, inputs, kinds, body_results, skip)
        except _RUN_ERRORS as exc:
            raise NNEFError(f"'tract_core_scan' failed at run time: {exc}", loc) from None
        except NoMeaning as exc:
            raise NNEFError(f"nnefopt has no kernel for operation '{exc}' (in the scan body)", loc) from None
        for slot, value in zip(results, computed):
            values[slot] = value
    return step


def _failing(error: NNEFError) -> Callable[[list], None]:
    def step(values: list) -> None:
        raise error
    return step


def _read(op: OpaqueOp, shapes: list, domain: ArrayDomain, loc: Location):
    """(per body parameter: (operand index, kind), per body result: its mapping, the body
    as a function of its arguments, skip)."""
    index = {value: i for i, value in reversed(list(enumerate(op.arguments)))}
    inputs, attribs = opaque_arguments(op, lambda value: _Operand(index[value]))
    args = {**attribs, **inputs}
    name = args.get("body")
    if not isinstance(name, str):
        raise NNEFError("'tract_core_scan' needs the body fragment's name as `body`", loc)
    signature = domain.signatures.get(name)
    if signature is None or signature.body is None:
        raise NNEFError(f"the scan body '{name}' is not a fragment of the document", loc)
    if not all(is_tensor_type(p.type) for p in [*signature.params, *signature.results]) or \
            any(isinstance(p.type, ast.ArrayType) for p in [*signature.params, *signature.results]):
        raise NNEFError(f"the scan body '{name}' must take and give single tensors", loc)
    tuples = {key: _tuples(args, key, loc) for key in _FORMS}
    params = []
    for param in signature.params:
        found = _named(tuples["scan"], param.name)
        if found is not None:
            _, operand, axis, chunk = found
            if chunk == 0:
                raise NNEFError(f"scan input '{param.name}' has a chunk of 0", loc)
            params.append((operand.index, ("scan", axis, chunk)))
            continue
        found = _named(tuples["full"], param.name)
        if found is not None:
            params.append((found[1].index, ("full",)))
            continue
        found = _named(tuples["state"], param.name)
        if found is None:
            raise NNEFError(f"parameter '{param.name}' of the scan body '{name}' is not bound by "
                            "`scan`, `full` or `state`", loc)
        params.append((found[1].index, ("state",)))
    if not any(kind[0] == "scan" for _, kind in params):
        raise NNEFError(f"the scan of body '{name}' scans no input", loc)
    state_names = [item[2] for item in tuples["state"]]
    body_results = []
    for result in signature.results:
        last = _slot(tuples["output"], result.name, "last")
        full = _slot(tuples["output"], result.name, "full")
        axis, chunk = (tuples["output"][full][2], tuples["output"][full][3]) if full is not None else (0, 1)
        body_results.append((_named_in(state_names, result.name), last, full, axis, chunk))
    for item in tuples["output"]:
        if item[1] not in ("full", "last"):
            raise NNEFError(f"scan output '{item[0]}' must be \"full\" or \"last\", found '{item[1]}'", loc)
        if not any(item[0] == r.name or _escape(item[0]) == r.name for r in signature.results):
            raise NNEFError(f"scan output '{item[0]}' is not a result of the body '{name}'", loc)
    states_in = sum(kind[0] == "state" for _, kind in params)
    if states_in != sum(r[0] for r in body_results):
        raise NNEFError(f"the scan of body '{name}' has {states_in} state inputs and "
                        f"{sum(r[0] for r in body_results)} state results", loc)
    slots = [s for r in body_results for s in r[1:3] if s is not None]
    if sorted(slots) != list(range(len(tuples["output"]))):
        raise NNEFError("each scan output must name one body result once", loc)
    if len(op.outputs) != len(tuples["output"]):
        raise NNEFError(f"the scan has {len(tuples['output'])} outputs and {len(op.outputs)} results", loc)
    skip = args.get("skip", 0)
    if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
        raise NNEFError(f"`skip` of the scan must be a non-negative integer, found {skip!r}", loc)
    return params, body_results, _body(domain, signature, params, shapes, loc), skip


def _tuples(args: dict, key: str, loc: Location) -> list[tuple]:
    value = args.get(key, [])
    form = _FORMS[key]
    if not isinstance(value, list):
        raise NNEFError(f"`{key}` of the scan must be an array of tuples", loc)
    for item in value:
        if not isinstance(item, tuple) or len(item) != len(form) or not all(map(_is, item, form)):
            raise NNEFError(f"`{key}` of the scan takes tuples ({', '.join(form)}), found {item!r}", loc)
    return value


def _is(item: object, kind: str) -> bool:
    if kind == "tensor":
        return isinstance(item, _Operand)
    if kind == "integer":
        return isinstance(item, int) and not isinstance(item, bool)
    return isinstance(item, str)


def _escape(name: str) -> str:
    """A name as tract escapes it into an identifier."""
    head = "" if name[:1].isalpha() or name[:1] == "_" else "_"
    return head + "".join(c if c.isalnum() else "_" for c in name)


def _named(items: list[tuple], name: str) -> tuple | None:
    return next((item for item in items if item[0] == name or _escape(item[0]) == name), None)


def _named_in(names: list[str], name: str) -> bool:
    return any(n == name or _escape(n) == name for n in names)


def _slot(outputs: list[tuple], name: str, kind: str) -> int | None:
    return next((i for i, item in enumerate(outputs) if (item[0] == name or _escape(item[0]) == name)
                 and item[1] == kind), None)


def _body(domain: ArrayDomain, signature: ast.Fragment, params: list, shapes: list, loc: Location):
    """The body as a function of its arguments, giving its results as a list: compiled
    once for the shapes of its arguments when they are static, else walked per run."""
    arguments = [Slot(i, _argument_shape(shapes[index], kind)) for i, (index, kind) in enumerate(params)]
    compiled = compile_body(domain, signature, arguments, {}, loc)
    several = len(signature.results) > 1

    def run(values: list) -> list:
        if compiled is not None:
            result = compiled(values)
        else:
            result = domain.run_body(signature, [np.asarray(v) for v in values], {}, loc)
        return list(result) if several else [result]
    return run


def _argument_shape(shape: tuple | None, kind: tuple) -> tuple | None:
    if shape is None or kind[0] != "scan":
        return shape
    axis, chunk = kind[1], kind[2]
    if not 0 <= axis < len(shape):
        return None
    return shape[:axis] + (abs(chunk),) + shape[axis + 1:]
