"""Rules on the e-graph: e-matching a rule's left-hand side against a class (every node
of every class it reaches, with pattern.py's literal, attribute and guard semantics), and
a right-hand side added as new nodes under the bindings."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache

from xdsl.dialects.builtin import TensorType
from xdsl.ir import Attribute

from nnefopt.dialects.nnef import OPERATIONS
from nnefopt.errors import NNEFError
from nnefopt.frontend import ast
from nnefopt.rules.egraph import ABSENT, ONE, EGraph, ENode, freeze
from nnefopt.rules.pattern import (
    CannotBuild,
    Computed,
    Env,
    ListPattern,
    Lit,
    OpPattern,
    Rule,
    Var,
    _as_kind,
    same_value,
    _same_literal,
    guards_hold,
    one_value,
    value_of,
)


@dataclass(frozen=True)
class EMatch:
    """A match of a left-hand side: tensor variables bound to classes, attribute
    variables to values, and the (class, node) pairs matched, the root first."""

    values: dict[str, int] = field(default_factory=dict)
    attributes: dict[str, object] = field(default_factory=dict)
    nodes: tuple[tuple[int, ENode], ...] = ()

    def bind_value(self, name: str, cid: int) -> "EMatch":
        return EMatch({**self.values, name: cid}, self.attributes, self.nodes)

    def bind_attribute(self, name: str, value: object) -> "EMatch | None":
        if name in self.attributes:
            return self if same_value(self.attributes[name], value) else None
        return EMatch(self.values, {**self.attributes, name: value}, self.nodes)

    def with_node(self, cid: int, node: ENode) -> "EMatch":
        return EMatch(self.values, self.attributes, (*self.nodes, (cid, node)))

    def env(self, eg: EGraph) -> Env:
        return Env(self.attributes, {n: eg.shape(c) for n, c in self.values.items()},
                   lambda name: eg.const(self.values[name]) is not None)


def ematch(eg: EGraph, rule: Rule, cid: int, limit: int = 1000) -> list[EMatch]:
    """The matches of `rule.lhs` rooted at class `cid` whose guards hold (at most `limit`)."""
    found = []
    for m in _solve(eg, rule, [(rule.lhs, cid)], EMatch()):
        if guards_hold(rule, m.env(eg)):
            found.append(m)
            if len(found) >= limit:
                break
    return found


def _solve(eg: EGraph, rule: Rule, goals: list, m: EMatch) -> Iterator[EMatch]:
    if not goals:
        yield m
        return
    (pattern, cid), rest = goals[0], goals[1:]
    cid = eg.find(cid)
    if isinstance(pattern, Var):
        kind = rule.variables[pattern.name]
        if kind.is_tensor:
            bound = m.values.get(pattern.name)
            if bound is None:
                yield from _solve(eg, rule, rest, m.bind_value(pattern.name, cid))
            elif eg.find(bound) == cid:
                yield from _solve(eg, rule, rest, m)
            return
        one = _as_kind(one_value(eg.const(cid)), kind.kind)
        bound = None if one is None else m.bind_attribute(pattern.name, one)
        if bound is not None:
            yield from _solve(eg, rule, rest, bound)
        return
    if isinstance(pattern, Lit):
        one = one_value(eg.const(cid))
        if one is not None and _same_literal(one, pattern.value):
            yield from _solve(eg, rule, rest, m)
        return
    if not isinstance(pattern, OpPattern) or eg.eclass(cid).pinned:
        return  # a quantized value is rounded by graph.quant: the rules leave it as it is
    for node in list(eg.eclass(cid).nodes):
        if node.op != pattern.op:
            continue
        bound = _match_attributes(pattern, node, m)
        if bound is None:
            continue
        sub_goals = _operand_goals(eg, pattern, node)
        if sub_goals is not None:
            yield from _solve(eg, rule, sub_goals + rest, bound.with_node(cid, node))


def _match_attributes(pattern: OpPattern, node: ENode, m: EMatch) -> EMatch | None:
    actual = node.attributes()
    for name, sub in pattern.attributes:
        if isinstance(sub, Lit):
            if not same_value(actual[name], sub.value):
                return None
        elif isinstance(sub, Var):
            m = m.bind_attribute(sub.name, actual[name])
            if m is None:
                return None
        else:
            return None
    return m


def _operand_goals(eg: EGraph, pattern: OpPattern, node: ENode) -> list | None:
    goals = []
    signature = OPERATIONS[pattern.op].OP_DEF.signature
    for (name, sub), child in zip(pattern.operands, node.structured()):
        if isinstance(sub, ListPattern):
            if not isinstance(child, list) or len(child) != len(sub.items):
                return None
            goals.extend(zip(sub.items, child))
        elif isinstance(child, list):
            return None
        elif sub is None:  # absent in the pattern: absent here too, or the default's value
            if child is None:
                continue
            default = signature.param(name).default
            one = one_value(eg.const(child))
            if not (isinstance(default, ast.Literal) and one is not None and _same_literal(one, default.value)):
                return None
        elif child is None:
            return None
        else:
            goals.append((sub, child))
    return goals


# ---- right-hand sides ---------------------------------------------------------------------


def instantiate(eg: EGraph, rule: Rule, m: EMatch, element_type: Attribute) -> tuple[int, list[ENode]]:
    """The class of the right-hand side under the bindings and the op nodes it added
    or found (CannotBuild when its shapes do not work out here)."""
    made: list[ENode] = []
    cid = _build(eg, rule.rhs, m, m.env(eg), element_type, made)
    return cid, made


def _build(eg: EGraph, pattern, m: EMatch, env: Env, element_type: Attribute, made: list) -> int:
    if isinstance(pattern, Var) and pattern.name in m.values:
        return m.values[pattern.name]
    if isinstance(pattern, (Var, Lit, Computed)):
        return eg.literal(value_of(pattern, env), element_type)
    children, arity, structured = [], [], []
    for _, sub in pattern.operands:
        if sub is None:
            arity.append(ABSENT)
            structured.append(None)
        elif isinstance(sub, ListPattern):
            items = [_build(eg, p, m, env, element_type, made) for p in sub.items]
            arity.append(len(items))
            children.extend(items)
            structured.append(items)
        else:
            child = _build(eg, sub, m, env, element_type, made)
            arity.append(ONE)
            children.append(child)
            structured.append(child)
    try:
        attribs = {name: value_of(sub, env) for name, sub in pattern.attributes}
        node = eg.canonical(ENode(pattern.op, tuple((n, freeze(v)) for n, v in attribs.items()), tuple(children),
                                  tuple(arity)))
        made.append(node)
        found = eg.hashcons.get(node)  # saturation meets the same right-hand sides again and again
        if found is not None:
            return eg.find(found)
        return eg.add(node, infer_type(eg, pattern.op, structured, attribs))
    except (NNEFError, ValueError, TypeError, IndexError, KeyError):
        raise CannotBuild() from None


def infer_type(eg: EGraph, op: str, structured: list, attribs: dict) -> TensorType:
    """A new node's result type from its children's types, by the op table's shape rule
    (as rewriting.create infers it), the element type its first operand's."""
    entry = OPERATIONS[op].OP_DEF

    def shape(cid):
        found = eg.shape(cid)
        if found is None:
            raise ValueError("a dynamic shape")
        return found

    shapes = [None if c is None else [shape(x) for x in c] if isinstance(c, list) else shape(c) for c in structured]
    result = entry.shape_rule(*shapes, **attribs)
    if len(entry.results) != 1 or any(isinstance(d, (tuple, list)) for d in result):
        raise ValueError("a right-hand side has one result")
    first = next(c for c in structured if c is not None)
    first = first[0] if isinstance(first, list) else first
    return _tensor_type(eg.type_of(first).element_type, tuple(result))


@cache
def _tensor_type(element_type: Attribute, shape: tuple) -> TensorType:
    return TensorType(element_type, list(shape))  # xDSL's checks on each new type add up in saturation
