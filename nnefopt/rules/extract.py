"""Extraction: one node per needed class, cycle-free, under the op table's cost model
(FLOPs plus bytes moved per operation: greedy.cost_measure, the greedy engine's measure).

- `node_costs`: each node's cost (a module operation's by operation_cost, a new one's
  by its op-table entry on the children's shapes);
- `greedy_dag`: each class's cheapest node counting a shared subgraph once (the node's
  cost plus the union of its children's class sets), then a depth-first choice from the
  roots that skips any node closing a cycle;
- `improve`: group moves the single-class view cannot see: the classes a merge of two
  operations reading one input stands for switched together, kept when the whole
  graph's cost falls;
- `exact`: branch and bound over the choices of the classes the roots need, seeded with
  the greedy result (so never worse), within a step budget: past it, or on a graph too
  large to search, the greedy result stands and the note says so.
"""

from __future__ import annotations

import math
import sys
from contextlib import contextmanager

from nnefopt.costs import Cost, data_bytes
from nnefopt.dialects.nnef import OPERATIONS
from nnefopt.dtypes import item_dtype
from nnefopt.info import operation_cost
from nnefopt.rules.egraph import FOLDED, LITERAL, RESULT, EGraph, ENode
from nnefopt.rules.greedy import cost_measure

Selection = dict[int, ENode]
EXACT_CLASS_LIMIT = 2000  # classes the exact search takes on at most (its recursion goes as deep)


class ExtractionFailed(Exception):
    """No cycle-free choice reaches the roots (the engine then leaves the module as it is)."""


def _number(value: object) -> float:
    try:
        return float(value)
    except TypeError:  # a symbolic dim: the count is an expression; count the operation
        return 1.0


def _itemsize(type_) -> int:
    dtype = item_dtype(getattr(type_, "element_type", None))
    return dtype.itemsize if dtype is not None else 4


def node_cost(eg: EGraph, cid: int, node: ENode) -> float:
    origin = eg.origins.get(node)
    if node.op == RESULT:
        return 0.0
    if origin is not None:
        return _number(cost_measure(operation_cost(origin)))
    type_ = eg.type_of(cid)
    if node.op in (LITERAL, FOLDED):
        return _number(data_bytes([tuple(type_.get_shape())], _itemsize(type_)))
    entry = OPERATIONS[node.op].OP_DEF
    operands = [None if c is None else [eg.shape(x) for x in c] if isinstance(c, list) else eg.shape(c)
                for c in node.structured()]
    types = list(type_) if isinstance(type_, tuple) else [type_]
    results = [tuple(t.get_shape()) for t in types]
    cost: Cost = entry.cost(operands, results, node.attributes(), _itemsize(types[0]))
    return _number(cost_measure(cost))


def node_costs(eg: EGraph) -> dict[ENode, float]:
    costs, by_signature = {}, {}
    for cid in sorted(eg.classes):
        for node in eg.classes[cid].nodes:
            if node in eg.origins or not node.is_operation:
                costs[node] = node_cost(eg, cid, node)
                continue
            # a new node's cost depends on its shapes only: saturation makes many alike
            signature = (node.op, node.key, node.arity, eg.type_of(cid), tuple(eg.shape(c) for c in node.children))
            if signature not in by_signature:
                by_signature[signature] = node_cost(eg, cid, node)
            costs[node] = by_signature[signature]
    return costs


@contextmanager
def _deep_recursion(depth: int):
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, depth))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


# ---- greedy-DAG ---------------------------------------------------------------------------


def dag_scores(eg: EGraph, costs: dict[ENode, float], passes: int = 50) -> dict[ENode, float]:
    """Each node's cost with its children's best subgraphs, shared classes counted once
    (class sets as bit sets over class ids); inf for a node that closes a cycle."""
    best: dict[int, tuple[float, int]] = {}  # class -> (total, bit set of the classes it needs)
    own: dict[int, float] = {}  # class -> its best node's own cost

    def evaluate(cid: int, node: ENode) -> tuple[float, int] | None:
        kids = list(dict.fromkeys(eg.find(k) for k in node.children))
        if any(k not in best for k in kids):
            return None
        if kids:
            base = max(kids, key=lambda k: (best[k][0], -k))
            total, bits = best[base]
            for k in kids:
                extra = best[k][1] & ~bits
                while extra:
                    low = extra & -extra
                    total += own[low.bit_length() - 1]
                    extra ^= low
                bits |= best[k][1]
            if bits >> cid & 1:
                return None  # the node needs its own class: a cycle
        else:
            total, bits = 0.0, 0
        return total + costs[node], bits | 1 << cid

    for _ in range(passes):
        changed = False
        for cid in sorted(eg.classes):
            for node in eg.classes[cid].nodes:
                found = evaluate(cid, node)
                if found is not None and (cid not in best or found[0] < best[cid][0] - 1e-9):
                    best[cid], own[cid] = found, costs[node]
                    changed = True
        if not changed:
            break
    scores = {}
    for cid in sorted(eg.classes):
        for node in eg.classes[cid].nodes:
            found = evaluate(cid, node)
            scores[node] = math.inf if found is None else found[0]
    return scores


def choose(eg: EGraph, roots: list[int], scores: dict[ENode, float], seed: Selection | None = None) -> Selection:
    """A cycle-free choice for every class the roots need: each class's node of the lowest
    score whose children can be chosen without a cycle; `seed`'s choices are kept."""
    seed = seed or {}
    chosen: Selection = {}
    stack: set[int] = set()

    def visit(cid: int) -> bool:
        cid = eg.find(cid)
        if cid in chosen:
            return True
        stack.add(cid)
        nodes = eg.classes[cid].nodes
        order = sorted(range(len(nodes)), key=lambda i: (scores.get(nodes[i], math.inf), i))
        preferred = [seed[cid]] if cid in seed else []
        for node in preferred + [nodes[i] for i in order]:
            kids = [eg.find(k) for k in node.children]
            if any(k in stack for k in kids):
                continue
            if all(visit(k) for k in kids):
                chosen[cid] = node
                stack.discard(cid)
                return True
        stack.discard(cid)
        return False

    with _deep_recursion(10 * len(eg.classes) + 1000):
        for root in roots:
            if not visit(root):
                raise ExtractionFailed()
    return chosen


def reachable(eg: EGraph, selection: Selection, roots: list[int]) -> list[int] | None:
    """The classes the roots need under `selection`, children first; None on a cycle or
    a class without a choice."""
    order, state = [], {}

    def visit(cid: int) -> bool:
        cid = eg.find(cid)
        mark = state.get(cid)
        if mark == 2:
            return True
        if mark == 1 or cid not in selection:
            return False
        state[cid] = 1
        if not all(visit(k) for k in selection[cid].children):
            return False
        state[cid] = 2
        order.append(cid)
        return True

    with _deep_recursion(10 * len(eg.classes) + 1000):
        if not all(visit(r) for r in roots):
            return None
    return order


def dag_cost(eg: EGraph, selection: Selection, roots: list[int], costs: dict[ENode, float]) -> float:
    order = reachable(eg, selection, roots)
    return math.inf if order is None else sum(costs[selection[c]] for c in order)


def improve(eg: EGraph, selection: Selection, roots: list[int], costs: dict[ENode, float],
            scores: dict[ENode, float], groups: list[list[tuple[int, ENode]]]) -> Selection:
    """Try each group of classes switched together (a merge's projections); keep each
    switch that lowers the whole graph's cost."""
    current = dag_cost(eg, selection, roots, costs)
    for group in groups:
        seed = {c: n for c, n in selection.items()}
        for cid, node in group:
            seed[eg.find(cid)] = eg.canonical(node)
        try:
            trial = choose(eg, roots, scores, _closed(eg, seed, roots))
        except ExtractionFailed:
            continue
        cost = dag_cost(eg, trial, roots, costs)
        if cost < current - 1e-9:
            selection, current = trial, cost
    return selection


def _closed(eg: EGraph, seed: Selection, roots: list[int]) -> Selection:
    """`seed` cut to the choices reachable from the roots through chosen classes (the rest
    is chosen afresh)."""
    kept, pending = {}, [eg.find(r) for r in roots]
    while pending:
        cid = pending.pop()
        if cid in kept or cid not in seed:
            continue
        kept[cid] = seed[cid]
        pending.extend(eg.find(k) for k in seed[cid].children)
    return kept


def greedy_extract(eg: EGraph, roots: list[int], costs: dict[ENode, float],
                   groups: list[list[tuple[int, ENode]]] = ()) -> tuple[Selection, dict[ENode, float]]:
    scores = dag_scores(eg, costs)
    selection = choose(eg, roots, scores)
    if groups:
        selection = improve(eg, selection, roots, costs, scores, groups)
    return selection, scores


# ---- exact --------------------------------------------------------------------------------


class _Budget(Exception):
    pass


def exact_extract(eg: EGraph, roots: list[int], costs: dict[ENode, float], scores: dict[ENode, float],
                  incumbent: Selection, step_limit: int = 200_000) -> tuple[Selection, str]:
    """The cheapest cycle-free choice for the roots, by branch and bound from `incumbent`
    (returned unless something cheaper is found); a note when the search was cut short."""
    best = [dag_cost(eg, incumbent, roots, costs), incumbent]
    if len(eg.classes) > EXACT_CLASS_LIMIT:
        return incumbent, (f"exact extraction skipped: {len(eg.classes)} classes (limit {EXACT_CLASS_LIMIT}); "
                           "the greedy-DAG choice is kept")
    minimum = {c: min(costs[n] for n in eg.classes[c].nodes) for c in eg.classes}
    candidates = {c: sorted(eg.classes[c].nodes, key=lambda n: scores.get(n, math.inf)) for c in eg.classes}
    chosen: Selection = {}
    steps = [0]

    def search(pending: list[int], cost: float) -> None:
        steps[0] += 1
        if steps[0] > step_limit:
            raise _Budget()
        while pending and pending[-1] in chosen:
            pending = pending[:-1]
        if not pending:
            if cost < best[0] - 1e-9 and reachable(eg, chosen, roots) is not None:
                best[0], best[1] = cost, dict(chosen)
            return
        cid = pending[-1]
        bound = sum(minimum[k] for k in set(pending) if k not in chosen and k != cid)
        for node in candidates[cid]:
            total = cost + costs[node]
            if total + bound >= best[0] - 1e-9:
                continue
            chosen[cid] = node
            search(pending[:-1] + [k for k in (eg.find(c) for c in reversed(node.children)) if k not in chosen], total)
            del chosen[cid]

    with _deep_recursion(10 * len(eg.classes) + 1000):
        try:
            search(list(reversed([eg.find(r) for r in roots])), 0.0)
        except _Budget:
            return best[1], (f"exact extraction stopped after {step_limit} steps: the best choice found "
                             "(never worse than greedy-DAG) is kept, not proven optimal")
    return best[1], ""
