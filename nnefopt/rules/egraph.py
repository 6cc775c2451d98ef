"""The e-graph of a graph body: classes of values known to be equal, each holding the
e-nodes (operations over child classes) that compute it.

- an e-node is an op-table operation (its name, its attributes with defaults filled in,
  its child classes per tensor parameter), or one of the kinds below that rules never
  match: `LEAF` (a graph input, variable or constant of the module: never rewritten
  away), `OPAQUE` (an operation the rules do not read: channel-last, quantized, a
  fragment's call, an effect), `RESULT` (result i of a multi-result node, whose own class
  holds a tuple of values), `LITERAL` (a rank-0 constant a right-hand side made) and
  `FOLDED` (a constant computed from known operands: the filters of merged convs);
- union-find over class ids with a hashcons; `rebuild` restores congruence (two nodes
  over equal children are one) after unions, to a fixed point;
- analyses per class: its type (shape and dtype: a TensorType, or a tuple of them for a
  multi-result node), its known constant value, and whether it is pinned (a quantized
  value: graph.quant rounds it, the real-number rules do not say what it becomes).

Class ids are handed out in creation order and everything iterates in id order, so the
same module and rules give the same e-graph on every run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import TensorType
from xdsl.ir import Attribute, Block, Operation, SSAValue

from nnefopt.dialects.nnef import LAYOUT, CallOp, OpaqueOp, ReturnOp, dtype_of, field_name
from nnefopt.dtypes import NUMPY_TYPES
from nnefopt.passes.rewriting import attribute, is_quantized, known_value
from nnefopt.traits import Declaration, Effectful, GraphInput, TensorSource

LEAF, OPAQUE, RESULT, LITERAL, FOLDED = "#leaf", "#opaque", "#result", "#literal", "#folded"
ABSENT, ONE = -1, -2  # an arity entry: an absent optional tensor, one tensor; n >= 0: a tensor array of n


def freeze(value: object) -> object:
    """An attribute value as a hashable key (lists and tuples kept apart)."""
    if isinstance(value, list):
        return ("L", *(freeze(v) for v in value))
    if isinstance(value, tuple):
        return ("T", *(freeze(v) for v in value))
    return value


def thaw(value: object) -> object:
    if isinstance(value, tuple):
        items = [thaw(v) for v in value[1:]]
        return items if value[0] == "L" else tuple(items)
    return value


@dataclass(frozen=True)
class ENode:
    op: str  # an op-table name, or one of LEAF, OPAQUE, RESULT, LITERAL, FOLDED
    key: tuple  # op-table nodes: ((attribute, frozen value), ...) in declaration order; others: their identity
    children: tuple[int, ...] = ()  # child class ids, flattened
    arity: tuple[int, ...] = ()  # per tensor parameter: ABSENT, ONE, or a tensor array's length

    def structured(self) -> list:
        """The children per tensor parameter: None (absent), a class id, or a list of them."""
        found, it = [], iter(self.children)
        for n in self.arity:
            found.append(None if n == ABSENT else next(it) if n == ONE else [next(it) for _ in range(n)])
        return found

    def attributes(self) -> dict[str, object]:
        return {name: thaw(value) for name, value in self.key}

    def with_children(self, children: tuple[int, ...]) -> "ENode":
        return ENode(self.op, self.key, children, self.arity)

    @property
    def is_operation(self) -> bool:
        return not self.op.startswith("#")


@dataclass
class EClass:
    id: int
    nodes: list[ENode]
    type: object  # a TensorType, or a tuple of them (a multi-result node's class)
    const: np.ndarray | None = None
    pinned: bool = False
    origin: Operation | None = None  # the first module operation computing this class's value
    shape: tuple | None = None  # the static shape of a tensor class (None: dynamic, or a tuple class)

    def __post_init__(self):
        if isinstance(self.type, TensorType) and all(d >= 0 for d in self.type.get_shape()):
            self.shape = tuple(self.type.get_shape())


class EGraph:
    def __init__(self):
        self.parent: list[int] = []
        self.classes: dict[int, EClass] = {}
        self.hashcons: dict[ENode, int] = {}
        self.origins: dict[ENode, Operation] = {}  # a node made from a module operation -> that operation
        self.node_count = 0

    # ---- union-find and hashcons --------------------------------------------------------

    def find(self, cid: int) -> int:
        root = cid
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[cid] != root:
            self.parent[cid], cid = root, self.parent[cid]
        return root

    def canonical(self, node: ENode) -> ENode:
        return node.with_children(tuple(self.find(c) for c in node.children)) if node.children else node

    def add(self, node: ENode, type_: object, const: np.ndarray | None = None, pinned: bool = False,
            origin: Operation | None = None) -> int:
        """The class of `node` (a new one unless an equal node exists)."""
        node = self.canonical(node)
        found = self.hashcons.get(node)
        if found is not None:
            return self.find(found)
        cid = len(self.parent)
        self.parent.append(cid)
        self.classes[cid] = EClass(cid, [node], type_, const, pinned, origin)
        self.hashcons[node] = cid
        self.node_count += 1
        if origin is not None and node.op != RESULT:  # a result is its tuple's, not an operation of its own
            self.origins.setdefault(node, origin)
        return cid

    def union(self, a: int, b: int) -> bool:
        """Merge the classes of `a` and `b` (the lower id stays); False when already one."""
        a, b = self.find(a), self.find(b)
        if a == b:
            return False
        if b < a:
            a, b = b, a
        keep, gone = self.classes[a], self.classes.pop(b)
        self.parent[b] = a
        keep.nodes.extend(gone.nodes)
        if keep.const is None:
            keep.const = gone.const
        keep.pinned = keep.pinned or gone.pinned
        if keep.origin is None:
            keep.origin = gone.origin
        return True

    def rebuild(self) -> None:
        """Congruence closure: canonical children everywhere, equal nodes in one class."""
        while True:
            merged = False
            table: dict[ENode, int] = {}
            for cid in sorted(self.classes):
                if self.find(cid) != cid:
                    continue
                for node in self.classes[cid].nodes:
                    node = self.canonical(node)
                    other = table.setdefault(node, cid)
                    if self.find(other) != self.find(cid):
                        merged |= self.union(other, cid)
            if not merged:
                break
        self.hashcons, self.node_count = {}, 0
        for cid in sorted(self.classes):
            eclass = self.classes[cid]
            nodes = list(dict.fromkeys(self.canonical(n) for n in eclass.nodes))
            eclass.nodes = nodes
            for node in nodes:
                self.hashcons[node] = cid
            self.node_count += len(nodes)
        origins: dict[ENode, Operation] = {}
        for node, op in self.origins.items():
            origins.setdefault(self.canonical(node), op)  # two operations found equal: the first stays
        self.origins = origins

    def adopt(self, cid: int, origin: Operation | None) -> None:
        """A new class takes `origin` as its place (location, explain) when it has none."""
        eclass = self.eclass(cid)
        if eclass.origin is None:
            eclass.origin = origin

    # ---- analyses ------------------------------------------------------------------------

    def eclass(self, cid: int) -> EClass:
        return self.classes[self.find(cid)]

    def type_of(self, cid: int) -> object:
        return self.eclass(cid).type

    def shape(self, cid: int) -> tuple | None:
        return self.eclass(cid).shape


    def const(self, cid: int) -> np.ndarray | None:
        return self.eclass(cid).const

    def literal(self, value: object, element_type: Attribute) -> int:
        """The class of a rank-0 constant of `value` (a right-hand side's literal)."""
        type_ = TensorType(element_type, [])
        array = np.asarray(value, NUMPY_TYPES.get(dtype_of(type_), np.float32))
        return self.add(ENode(LITERAL, (freeze(value), element_type)), type_, array)

    def folded(self, array: np.ndarray, type_: TensorType) -> int:
        """The class of a constant computed at rewrite time (named by its content)."""
        array = np.ascontiguousarray(array)
        digest = hashlib.sha1(array.tobytes() + str(array.shape).encode() + str(array.dtype).encode()).hexdigest()
        return self.add(ENode(FOLDED, (digest,)), type_, array)

    def classes_by_op(self) -> dict[str, list[int]]:
        """The classes holding a node of each op-table operation, in id order."""
        index: dict[str, list[int]] = {}
        for cid in sorted(self.classes):
            for op in dict.fromkeys(n.op for n in self.classes[cid].nodes if n.is_operation):
                index.setdefault(op, []).append(cid)
        return index

    def parents(self) -> dict[int, list[tuple[int, ENode]]]:
        """For each class, the (class, node) pairs that read it, in id order."""
        found: dict[int, list[tuple[int, ENode]]] = {}
        for cid in sorted(self.classes):
            for node in self.classes[cid].nodes:
                for child in dict.fromkeys(node.children):
                    found.setdefault(self.find(child), []).append((cid, node))
        return found


@dataclass
class GraphEGraph:
    """An e-graph made from a graph body, with what the way back needs."""

    egraph: EGraph
    value_class: dict[SSAValue, int]  # each value of the body -> its class
    node_of: dict[Operation, ENode]  # each operation of the body -> the node it became
    ops: list[Operation]  # the body's operations, in order (the return left out)
    ret: ReturnOp
    inputs: list[int]  # the classes of the graph's inputs (kept whatever is read)
    effects: list[int]  # the classes of operations with effects (kept too)


def _is_opaque(op: Operation) -> bool:
    return (not hasattr(op, "OP_DEF") or isinstance(op, (CallOp, OpaqueOp)) or LAYOUT in op.properties
            or op.has_trait(Effectful) or bool(op.regions) or len(op.results) == 0
            or any(is_quantized(r) for r in op.results))


def from_block(block: Block) -> GraphEGraph:
    """The e-graph of one graph body: each operation a node, in program order."""
    eg = EGraph()
    value_class: dict[SSAValue, int] = {}
    node_of: dict[Operation, ENode] = {}
    ops = [op for op in block.ops if not isinstance(op, ReturnOp)]
    inputs, effects = [], []
    for index, op in enumerate(ops):
        types = tuple(r.type for r in op.results)
        pinned = any(is_quantized(r) for r in op.results)
        single = len(op.results) == 1 and not _has_result_array(op)
        if op.has_trait(TensorSource) or op.has_trait(Declaration):
            node = ENode(LEAF, (index,))
        elif _is_opaque(op):
            node = ENode(OPAQUE, (index,), tuple(value_class[v] for v in op.operands))
        else:
            node = _operation_node(op, value_class)
        const = known_value(op.results[0]) if single and node.op == LEAF else None
        cid = eg.add(node, types[0] if single else types, const, pinned, op)
        node_of[op] = eg.canonical(node)
        if single:
            value_class[op.results[0]] = cid
        else:
            for i, result in enumerate(op.results):
                value_class[result] = eg.add(ENode(RESULT, (i,), (cid,)), result.type, None,
                                             is_quantized(result), op)
        if op.has_trait(GraphInput):
            inputs.append(cid)
        elif op.has_trait(Effectful) or not op.results:
            effects.append(cid)
    ret = block.last_op
    assert isinstance(ret, ReturnOp)
    return GraphEGraph(eg, value_class, node_of, ops, ret, inputs, effects)


def _has_result_array(op: Operation) -> bool:
    from nnefopt.frontend import ast

    return any(isinstance(r.type, ast.ArrayType) for r in op.OP_DEF.results) if hasattr(op, "OP_DEF") else False


def _operation_node(op: Operation, value_class: dict[SSAValue, int]) -> ENode:
    entry = op.OP_DEF
    children, arity = [], []
    for param in entry.tensor_params:
        operand = getattr(op, field_name(param.name))
        if operand is None:
            arity.append(ABSENT)
        elif isinstance(operand, SSAValue):
            arity.append(ONE)
            children.append(value_class[operand])
        else:
            arity.append(len(operand))
            children.extend(value_class[v] for v in operand)
    key = tuple((p.name, freeze(attribute(op, p.name))) for p in entry.attribute_params)
    return ENode(op.name.removeprefix("nnef."), key, tuple(children), tuple(arity))
