"""The one internal form of a rewrite rule, whichever way it was written.

A rule is `lhs => rhs` over named pattern variables, with guards:

- a pattern is a tree: `OpPattern` (an operation of the op table, a pattern per tensor
  parameter and per attribute parameter, defaults filled in as NNEF reads an omitted
  argument), `Var` (a pattern variable), `Lit` (a literal: in a tensor place it matches a
  constant of that one value), `ListPattern` (a tensor array, item by item) and, on the
  right-hand side and in guards only, `Computed` (an NNEF expression over the variables);
- a variable is a tensor (it binds an SSA value) or an attribute of an NNEF type
  (`scalar`, `integer[]`, ...): it binds an attribute's value, or, in a tensor place, the
  one value of a constant;
- a guard is an NNEF expression (or a Python callable) over the bindings, evaluated by
  the frontend's evaluator: `rank(x)`, `shape_of(x)`, `is_constant(x)` on tensors.

The form is plain data over op names, so that any engine (the greedy one in `greedy.py`,
an e-graph later) can read it: `match` binds a pattern against IR values, `instantiate`
builds a right-hand side through the dialect, shapes inferred by the op table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from xdsl.dialects.builtin import TensorType
from xdsl.ir import Attribute, Operation, SSAValue

from nnefopt.dialects.nnef import LAYOUT, OPERATIONS, field_name, to_attribute
from nnefopt.errors import Location, NNEFError
from nnefopt.frontend import ast
from nnefopt.frontend.evaluate import Evaluator
from nnefopt.passes.rewriting import attribute, known_value, static_shape

NOWHERE = Location("<rule>")


# ---- patterns ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Var:
    name: str


@dataclass(frozen=True)
class Lit:
    value: object  # float, int, bool, str, or a list/tuple of them


@dataclass(frozen=True, eq=False)
class Computed:
    """A value computed from the bindings: an NNEF expression (right-hand sides, guards)."""

    expr: ast.Expr
    text: str


@dataclass(frozen=True)
class ListPattern:
    items: tuple


@dataclass(frozen=True)
class OpPattern:
    op: str
    operands: tuple  # (param name, pattern or None for an absent optional tensor), declaration order
    attributes: tuple  # (param name, pattern), declaration order, defaults filled in

    def attribute(self, name: str):
        return dict(self.attributes)[name]


Pattern = Var | Lit | Computed | ListPattern | OpPattern


@dataclass(frozen=True)
class VarType:
    """A pattern variable's type: `tensor`, or an attribute type (`scalar`, `integer`,
    `logical`, `string`), possibly an array of it."""

    kind: str
    array: bool = False
    item: str = "scalar"  # a tensor's item type

    @property
    def is_tensor(self) -> bool:
        return self.kind == "tensor"

    def __str__(self) -> str:
        base = f"tensor<{self.item}>" if self.is_tensor else self.kind
        return base + "[]" * self.array


TENSOR = VarType("tensor")


@dataclass(frozen=True, eq=False)
class Guard:
    text: str
    check: Callable[["Env"], object]
    expr: ast.Expr | None = None  # the NNEF expression, when written as one


@dataclass(frozen=True, eq=False)
class Rule:
    name: str
    lhs: OpPattern
    rhs: Pattern
    guards: tuple[Guard, ...] = ()
    exact: bool | None = None  # set by the verifier: exact, or only up to float reassociation
    variables: dict[str, VarType] = field(default_factory=dict)
    loc: Location = NOWHERE
    origin: str = ""  # where it came from: a file, `stdlib`, `python`

    @classmethod
    def from_functions(cls, lhs: Callable, rhs: Callable, **options) -> "Rule":
        """A rule from two Python functions of its variables (see python_api)."""
        from nnefopt.rules.python_api import from_functions

        return from_functions(lhs, rhs, **options)

    def with_exactness(self, exact: bool) -> "Rule":
        return replace(self, exact=exact)

    @property
    def text(self) -> str:
        guards = "".join(f" where {g.text}" for g in self.guards)
        return f"{render(self.lhs)} => {render(self.rhs)}{guards}"


def render(pattern: Pattern) -> str:
    """A pattern as the NNEF expression it stands for (omitted defaults left out)."""
    from nnefopt.ops import entry_of

    if isinstance(pattern, Var):
        return pattern.name
    if isinstance(pattern, Lit):
        return _literal_text(pattern.value)
    if isinstance(pattern, Computed):
        return f"({pattern.text})"
    if isinstance(pattern, ListPattern):
        return "[" + ", ".join(render(p) for p in pattern.items) + "]"
    defaults = entry_of(pattern.op).attribute_defaults
    args = [render(p) for _, p in pattern.operands if p is not None]
    args += [f"{name} = {render(p)}" for name, p in pattern.attributes
             if not (isinstance(p, Lit) and defaults.get(name) is not None and p.value == defaults[name])]
    return f"{pattern.op}({', '.join(args)})"


def _literal_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_literal_text(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(_literal_text(v) for v in value) + ")"
    return repr(value)


def variables_of(pattern: Pattern) -> list[str]:
    """The variables a pattern mentions, in first-seen order (Computed ones included)."""
    found: list[str] = []

    def visit(p):
        if isinstance(p, Var):
            found.append(p.name)
        elif isinstance(p, Computed):
            found.extend(n.name for n in ast.walk(p.expr) if isinstance(n, ast.Identifier))
        elif isinstance(p, ListPattern):
            for item in p.items:
                visit(item)
        elif isinstance(p, OpPattern):
            for _, sub in (*p.operands, *p.attributes):
                if sub is not None:
                    visit(sub)

    visit(pattern)
    return list(dict.fromkeys(found))


def op_nodes(pattern: Pattern) -> list[OpPattern]:
    """The operation nodes of a pattern, root first."""
    nodes, stack = [], [pattern]
    while stack:
        p = stack.pop(0)
        if isinstance(p, OpPattern):
            nodes.append(p)
            stack.extend(sub for _, sub in p.operands if sub is not None)
        elif isinstance(p, ListPattern):
            stack.extend(p.items)
    return nodes


# ---- guards and computed values ---------------------------------------------------------


class Env:
    """What guards and computed values see: attribute values by name; for a tensor,
    its shape (None when not static) and whether it is a known constant."""

    def __init__(self, values: dict[str, object], shapes: dict[str, tuple | None],
                 constant: Callable[[str], bool] = lambda name: True):
        self.values, self.shapes, self.constant = values, shapes, constant

    def shape(self, name: str) -> tuple:
        shape = self.shapes[name]
        if shape is None:
            raise _Unknown()
        return shape

    def rank(self, name: str) -> int:
        return len(self.shape(name))

    def value(self, name: str) -> object:
        return self.values[name]


class _Unknown(Exception):
    """A guard asked what is not known statically (a dynamic shape): it does not hold."""


@dataclass(frozen=True)
class _TensorRef:
    name: str


class _GuardDomain:
    """The evaluator's view of tensor variables: their shape, rank and constness."""

    def __init__(self, env: Env):
        self.env = env

    def is_tensor(self, value: object) -> bool:
        return isinstance(value, _TensorRef)

    def shape_of(self, value: _TensorRef) -> list:
        return list(self.env.shape(value.name))

    def invoke(self, call: ast.Invocation, evaluator: Evaluator) -> object:
        if call.name in ("rank", "is_constant") and len(call.args) == 1:
            value = evaluator.eval(call.args[0].value)
            if not isinstance(value, _TensorRef):
                raise NNEFError(f"'{call.name}' takes a tensor variable", call.loc)
            return self.env.rank(value.name) if call.name == "rank" else bool(self.env.constant(value.name))
        raise NNEFError(f"'{call.name}' cannot be evaluated in a guard or an attribute", call.loc)

    def apply(self, op: str, inputs: list, loc: Location) -> object:
        raise NNEFError(f"a tensor operation ('{op}') cannot be evaluated in a guard or an attribute", loc)


def evaluate(expr: ast.Expr, env: Env) -> object:
    """An NNEF expression over the bindings (attributes as values, tensors by shape)."""
    scope = {**env.values, **{name: _TensorRef(name) for name in env.shapes}}
    return Evaluator(scope, _GuardDomain(env)).eval(expr)


def expression_guard(expr: ast.Expr, text: str) -> Guard:
    return Guard(text, lambda env: evaluate(expr, env), expr)


def guards_hold(rule: Rule, env: Env) -> bool:
    for guard in rule.guards:
        try:
            if not guard.check(env):
                return False
        except (_Unknown, NNEFError, IndexError, KeyError, TypeError, ValueError):
            return False  # a guard that cannot be evaluated here (shape_of(x)[3] of a matrix) does not hold
    return True


def value_of(pattern: Pattern, env: Env) -> object:
    """An attribute pattern's value under the bindings."""
    if isinstance(pattern, Lit):
        return pattern.value
    if isinstance(pattern, Var):
        return env.value(pattern.name)
    if isinstance(pattern, Computed):
        return evaluate(pattern.expr, env)
    raise TypeError(f"not an attribute pattern: {pattern}")


# ---- matching against the IR -------------------------------------------------------------


@dataclass
class Match:
    """A match of a rule's left-hand side: the bindings and the operations matched."""

    values: dict[str, SSAValue] = field(default_factory=dict)  # tensor variables
    attributes: dict[str, object] = field(default_factory=dict)  # attribute variables
    ops: list[Operation] = field(default_factory=list)  # matched operations, the root first

    def env(self) -> Env:
        return Env(self.attributes, {n: static_shape(v) for n, v in self.values.items()},
                   lambda name: known_value(self.values[name]) is not None)


def match(rule: Rule, op: Operation) -> Match | None:
    """The bindings of `rule.lhs` rooted at `op` (its first result), the guards holding."""
    found = Match()
    if not op.results or not _match(rule.lhs, op.results[0], rule, found):
        return None
    return found if guards_hold(rule, found.env()) else None


def _match(pattern: Pattern, value: SSAValue, rule: Rule, found: Match) -> bool:
    if isinstance(pattern, Var):
        if rule.variables[pattern.name].is_tensor:
            bound = found.values.setdefault(pattern.name, value)
            return bound is value
        one = _as_kind(_one_value(value), rule.variables[pattern.name].kind)
        if one is None or not _bind_attribute(pattern.name, one, found):
            return False
        found.ops.append(value.owner)  # the constant: gone with the match when only it reads it
        return True
    if isinstance(pattern, Lit):
        one = _one_value(value)
        if one is None or not _same_literal(one, pattern.value):
            return False
        found.ops.append(value.owner)
        return True
    if not isinstance(pattern, OpPattern):
        return False
    owner = value.owner
    if not isinstance(owner, OPERATIONS[pattern.op]) or owner.results[0] is not value:
        return False
    if LAYOUT in owner.properties:  # channel-last: the rule's NNEF meaning is channel-first
        return False
    found.ops.append(owner)
    for name, sub in pattern.operands:
        operand = getattr(owner, field_name(name))
        if not _match_operand(sub, operand, name, owner, rule, found):
            return False
    for name, sub in pattern.attributes:
        actual = attribute(owner, name)
        if isinstance(sub, Lit):
            if not same_value(actual, sub.value):
                return False
        elif isinstance(sub, Var):
            if not _bind_attribute(sub.name, actual, found):
                return False
        else:
            return False
    return True


def _match_operand(sub, operand, name: str, owner: Operation, rule: Rule, found: Match) -> bool:
    if isinstance(sub, ListPattern):
        items = list(operand) if isinstance(operand, (list, tuple)) else None
        return items is not None and len(items) == len(sub.items) and \
            all(_match(p, v, rule, found) for p, v in zip(sub.items, items))
    if isinstance(operand, (list, tuple)):  # a variadic operand is a list pattern
        return False
    if sub is None:  # absent in the pattern: the IR's operand is absent or the default
        if operand is None:
            return True
        default = owner.OP_DEF.signature.param(name).default
        one = _one_value(operand)
        return isinstance(default, ast.Literal) and one is not None and _same_literal(one, default.value)
    return operand is not None and _match(sub, operand, rule, found)


def _one_value(value: SSAValue) -> object:
    """The one value a known constant holds (as a Python number), else None."""
    return one_value(known_value(value))


def one_value(array: np.ndarray | None) -> object:
    """The one value an array holds (as a Python number), else None."""
    if array is None or array.size == 0:
        return None
    first = array.reshape(-1)[0]
    if array.size > 1 and not np.all(array == first):
        return None
    if array.dtype == np.float32:  # 0.1 as written, not float32's 0.10000000149011612
        return float(str(first))
    return first.item()


def _as_kind(value: object, kind: str) -> object:
    """A constant's value as an attribute variable of `kind` holds it (None: it cannot)."""
    if value is None or isinstance(value, bool) != (kind == "logical"):
        return None
    if kind == "scalar":
        return float(value)
    if kind == "integer":
        return int(value) if float(value).is_integer() else None
    return value if kind == "logical" else None


def _same_literal(value: object, literal: object) -> bool:
    """A constant's value against a pattern's literal, as float32 holds both (1.702 is not
    exactly float32's 1.702, and a float32 constant is what the model stores)."""
    if isinstance(value, float) or isinstance(literal, float):
        if isinstance(value, bool) or isinstance(literal, bool) or isinstance(literal, (str, list, tuple)):
            return False
        return bool(np.float32(value) == np.float32(literal))
    return same_value(value, literal)


def same_value(a: object, b: object) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):  # true is not 1 in NNEF
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def _bind_attribute(name: str, value: object, found: Match) -> bool:
    if name in found.attributes:
        return same_value(found.attributes[name], value)
    found.attributes[name] = value
    return True


# ---- building the right-hand side ---------------------------------------------------------


def instantiate(pattern: Pattern, found: Match, element_type: Attribute) -> tuple[SSAValue, list[Operation]]:
    """The right-hand side built under the bindings: its value and the new operations (not
    inserted, in dependency order). A literal or computed value in a tensor place becomes
    a rank-0 `constant` of `element_type`."""
    new_ops: list[Operation] = []
    env = found.env()
    value = _build(pattern, found, env, element_type, new_ops)
    return value, new_ops


def _build(pattern, found: Match, env: Env, element_type: Attribute, new_ops: list) -> SSAValue:
    from nnefopt.passes.rewriting import create

    if isinstance(pattern, Var) and pattern.name in found.values:
        return found.values[pattern.name]
    if isinstance(pattern, (Var, Lit, Computed)):
        op = scalar_constant(value_of(pattern, env), element_type)
        new_ops.append(op)
        return op.results[0]
    operands = []
    for _, sub in pattern.operands:
        if sub is None:
            operands.append(None)
        elif isinstance(sub, ListPattern):
            operands.append([_build(p, found, env, element_type, new_ops) for p in sub.items])
        else:
            operands.append(_build(sub, found, env, element_type, new_ops))
    defaults = OPERATIONS[pattern.op].OP_DEF.attribute_defaults
    attribs = {}
    for name, sub in pattern.attributes:
        value = value_of(sub, env)
        if defaults.get(name) is None or not same_value(value, defaults[name]):
            attribs[name] = value
    try:
        op = create(pattern.op, operands, attribs)
    except (NNEFError, ValueError, TypeError, IndexError, KeyError):
        raise CannotBuild() from None
    new_ops.append(op)
    return op.results[0]


def scalar_constant(value: object, element_type: Attribute) -> Operation:
    """A rank-0 `constant` of `value`: a literal in a right-hand side's tensor place."""
    return OPERATIONS["constant"](properties={"shape": to_attribute([]), "value": to_attribute([value])},
                                  result_types=[TensorType(element_type, [])])


class CannotBuild(Exception):
    """The right-hand side has no valid shape here (the shape rule refused it)."""
