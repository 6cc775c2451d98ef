"""The equality-saturation engine: every rule applied everywhere at once in an e-graph
of the graph body, then the cheapest equal graph extracted (rewrite{engine=eqsat}).

1. `egraph.from_block`: the body as an e-graph (graph inputs, variables and constants
   leaves that stay; quantized and channel-last operations left as they are);
2. saturation: each iteration matches every rule at every class (ematch; guards as the
   greedy engine reads them), then adds each right-hand side and makes it one with what
   it matched (when its type is the same), and runs the merges of operations reading one
   input (merge_rules.MERGE_RULES); it stops at saturation (nothing new) or at a limit
   on e-nodes, iterations or time;
3. extraction (extract): greedy-DAG by default, exact on request, under the op table's
   cost model (FLOPs plus bytes moved, the greedy engine's measure); the time limit
   covers both: saturation stops at SATURATION_SHARE of it;
4. the body rebuilt from the choice: the module's own operations reused where chosen
   (names, locations, quantization kept), new ones made by the op table, merged filters
   as new weights; graph outputs keep their names. When the choice is not cheaper than
   the module, the module is left exactly as it was.

Iteration orders are sorted (class ids in creation order, rules in the order given),
so a module and rules give the same result on every run, the time limit aside.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field

from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue

from nnefopt.dialects.nnef import OPERATIONS, GraphOp
from nnefopt.dialects.tensor_names import tensor_name
from nnefopt.passes.rewriting import Weights, create, rename
from nnefopt.rules.egraph import FOLDED, LEAF, LITERAL, OPAQUE, RESULT, EGraph, ENode, GraphEGraph, from_block, thaw
from nnefopt.rules.ematch import ematch, instantiate
from nnefopt.rules.extract import (
    ExtractionFailed,
    Selection,
    dag_cost,
    exact_extract,
    greedy_extract,
    node_costs,
    reachable,
)
from nnefopt.rules.greedy import Firing, place_of, cost_measure
from nnefopt.rules.merge_rules import MERGE_RULES, Merge, MergeState
from nnefopt.rules.pattern import CannotBuild, Rule, same_value, scalar_constant
from nnefopt.info import operation_cost
from nnefopt.traits import GraphInput

EXTRACTIONS = ("greedy", "exact")
SATURATION_SHARE = 0.7  # of the time limit: saturation stops there, so that extraction fits in the rest


@dataclass
class EqsatStats:
    """What one run did: e-graph size, why saturation stopped, costs, notes."""

    iterations: int = 0
    nodes: int = 0
    classes: int = 0
    stopped: str = "saturated"  # or "node limit", "iteration limit", "time limit"
    seconds: float = 0.0
    saturation_seconds: float = 0.0
    extraction: str = "greedy"
    cost_before: float = 0.0
    cost_after: float = 0.0
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (f"eqsat: {self.nodes} e-nodes in {self.classes} classes after {self.iterations} iterations "
                f"({self.stopped}, {self.saturation_seconds:.2f} s of {self.seconds:.2f} s); {self.extraction} extraction, cost (FLOPs + bytes) "
                f"{_tidy(self.cost_before)} -> {_tidy(self.cost_after)}")
        return "\n".join([text, *(f"eqsat: {note}" for note in self.notes)])


class FiringLog(list):
    """The firings (a list of greedy.Firing, as run_engine returns) and the run's stats."""

    def __init__(self, firings=(), stats: EqsatStats | None = None):
        super().__init__(firings)
        self.stats = stats or EqsatStats()


@dataclass(frozen=True)
class _Application:
    rule: str
    root: int
    matched: tuple[tuple[int, ENode], ...]
    made: tuple[ENode, ...]


def apply_eqsat(module: ModuleOp, rules: list[Rule], *, extract: str = "greedy", node_limit: int = 50_000,
                iteration_limit: int = 30, time_limit: float = 60.0, merges: bool = True,
                exact_steps: int = 200_000) -> FiringLog:
    """Rewrite each graph of `module` by equality saturation with `rules` (and, with
    `merges`, the merge rewrites); the firings that survived extraction, and the stats."""
    if extract not in EXTRACTIONS:
        from nnefopt.errors import NNEFError

        raise NNEFError(f"unknown extraction '{extract}' (extractions: {', '.join(EXTRACTIONS)})")
    log = FiringLog()
    log.stats.extraction = extract
    for graph in [op for op in module.walk() if isinstance(op, GraphOp)]:
        firings, stats = _rewrite_graph(module, graph, rules, extract, node_limit, iteration_limit, time_limit,
                                        merges, exact_steps)
        log.extend(firings)
        _add_stats(log.stats, stats)
    return log


def _add_stats(total: EqsatStats, one: EqsatStats) -> None:
    total.iterations = max(total.iterations, one.iterations)
    total.nodes += one.nodes
    total.classes += one.classes
    total.seconds += one.seconds
    total.saturation_seconds += one.saturation_seconds
    total.cost_before += one.cost_before
    total.cost_after += one.cost_after
    if one.stopped != "saturated":
        total.stopped = one.stopped
    total.notes += one.notes


def _rewrite_graph(module, graph, rules, extract, node_limit, iteration_limit, time_limit, merges,
                   exact_steps) -> tuple[list[Firing], EqsatStats]:
    start = time.monotonic()
    stats = EqsatStats(extraction=extract)
    geg = from_block(graph.body.block)
    eg = geg.egraph
    before = float(sum(_measure(op) for op in geg.ops))
    stats.cost_before = stats.cost_after = before
    deadline = start + SATURATION_SHARE * time_limit  # the rest of the time is extraction's
    applications, merged = _saturate(eg, rules, merges, node_limit, iteration_limit, deadline, stats)
    stats.nodes, stats.classes = eg.node_count, len(eg.classes)
    stats.saturation_seconds = time.monotonic() - start
    roots = _roots(geg)
    costs = node_costs(eg)
    groups = [list(m.switches) for m in merged if m.made]
    try:
        selection, scores = greedy_extract(eg, roots, costs, groups)
        if extract == "exact":
            selection, note = exact_extract(eg, roots, costs, scores, selection, exact_steps)
            if note:
                stats.notes.append(note)
    except ExtractionFailed:
        stats.notes.append("no cycle-free choice found: the graph is left as it is")
        stats.seconds = time.monotonic() - start
        return [], stats
    after = dag_cost(eg, selection, roots, costs)
    stats.seconds = time.monotonic() - start
    if not after < before - 1e-9:
        return [], stats  # nothing cheaper: the module stays exactly as it was
    firings = _firings(eg, selection, roots, applications, merged, costs)
    _write_back(module, geg, selection)
    stats.cost_after = after
    stats.seconds = time.monotonic() - start
    return firings, stats


def _measure(op: Operation) -> float:
    try:
        return float(cost_measure(operation_cost(op)))
    except TypeError:
        return 1.0


def _roots(geg: GraphEGraph) -> list[int]:
    eg = geg.egraph
    roots = [*geg.inputs, *(geg.value_class[v] for v in geg.ret.operands), *geg.effects]
    return list(dict.fromkeys(eg.find(r) for r in roots))


# ---- saturation ---------------------------------------------------------------------------


def _saturate(eg: EGraph, rules: list[Rule], merges: bool, node_limit: int, iteration_limit: int,
              deadline: float, stats: EqsatStats) -> tuple[list[_Application], list[Merge]]:
    applications: list[_Application] = []
    merged: list[Merge] = []
    state = MergeState(set(), set())
    stats.stopped = "iteration limit"
    for iteration in range(iteration_limit):
        stats.iterations = iteration + 1
        stopped = _limit(eg, node_limit, deadline)
        if stopped:
            stats.stopped = stopped
            break
        version = (eg.node_count, len(eg.classes))
        matches = []
        index = eg.classes_by_op()
        for rule in rules:
            for cid in index.get(rule.lhs.op, ()):
                matches.extend((rule, cid, m) for m in ematch(eg, rule, cid))
                if time.monotonic() > deadline:
                    break
        changed = False
        for rule, cid, m in matches:
            stopped = _limit(eg, node_limit, deadline)
            if stopped:
                break
            applied = _apply(eg, rule, cid, m)
            if applied is not None:
                applications.append(applied[0])
                changed |= applied[1]
        if merges and not stopped:
            state.refresh(eg)
            for merge_rule in MERGE_RULES.values():
                found = merge_rule(eg, state)
                merged.extend(found)
                changed |= bool(found)
        eg.rebuild()
        if stopped:
            stats.stopped = stopped
            break
        if not changed and version == (eg.node_count, len(eg.classes)):
            stats.stopped = "saturated"
            break
    return applications, merged


def _limit(eg: EGraph, node_limit: int, deadline: float) -> str:
    if eg.node_count >= node_limit:
        return "node limit"
    if time.monotonic() > deadline:
        return "time limit"
    return ""


def _apply(eg: EGraph, rule: Rule, cid: int, m) -> tuple[_Application, bool] | None:
    root = eg.find(cid)
    if any(eg.eclass(c).pinned for c, _ in m.nodes):
        return None
    old_type = eg.type_of(root)
    if not isinstance(old_type, TensorType):
        return None
    count = eg.node_count
    try:
        new, made = instantiate(eg, rule, m, old_type.element_type)
    except CannotBuild:
        return None
    if eg.type_of(new) != old_type or eg.eclass(new).pinned:
        return None
    origin = eg.eclass(root).origin
    for node in made:  # new classes are placed where what they replace was
        eg.adopt(eg.hashcons[eg.canonical(node)], origin)
    changed = eg.union(root, new) or eg.node_count != count
    return _Application(rule.name, root, m.nodes, tuple(made)), changed


# ---- what fired ---------------------------------------------------------------------------


def _firings(eg: EGraph, selection: Selection, roots: list[int], applications: list[_Application],
             merged: list[Merge], costs: dict[ENode, float]) -> list[Firing]:
    """One firing per rule application whose right-hand side the extraction took (a
    merge: all the classes it stands for), in the order they were applied: the first one
    that made a chosen node, and none where the chosen node is the module's own (a
    commutation applied twice gives back what was there)."""
    used = set(reachable(eg, selection, roots) or ())
    originals = {eg.canonical(n) for n in eg.origins}
    chosen = {c: selection[c] for c in used}
    made_roots = {eg.canonical(a.made[-1]) for a in applications if a.made}
    projections = {eg.canonical(n) for m in merged for _, n in m.switches}
    firings, seen = [], set()

    def cost(nodes) -> object:
        return _tidy(sum(costs.get(eg.canonical(n), 0.0) for n in nodes))

    for a in applications:
        root = eg.find(a.root)
        node = chosen.get(root)
        if node is None or node == eg.canonical(a.matched[0][1]) or node in originals or (root, node) in seen:
            continue
        if a.made:
            if node != eg.canonical(a.made[-1]):
                continue
        elif node in made_roots or node in projections:
            continue
        seen.add((root, node))
        firings.append(Firing(a.rule, _place_of(eg, a.root), len(a.matched), len(a.made),
                              cost(n for _, n in a.matched), cost(a.made)))
    for m in merged:
        if all(chosen.get(eg.find(c)) == eg.canonical(n) for c, n in m.switches if m.made) and \
                (m.made or all(chosen.get(eg.find(c)) not in (None, eg.canonical(n)) for c, n in m.switches)):
            firings.append(Firing(m.rule, _place_of(eg, m.switches[0][0]), len(m.replaced), len(m.made),
                                  cost(m.replaced), cost(m.made)))
    return firings


def _place_of(eg: EGraph, cid: int) -> str:
    origin = eg.eclass(cid).origin
    return "?" if origin is None else place_of(origin)


def _tidy(value: float) -> object:
    return int(value) if float(value).is_integer() else value


# ---- the way back -------------------------------------------------------------------------


def _write_back(module: ModuleOp, geg: GraphEGraph, selection: Selection) -> None:
    """Replace the graph body by the chosen nodes, the module's own operations reused."""
    builder = _Builder(module, geg, selection)
    outputs = builder.outputs()
    block, ret = geg.ret.parent, geg.ret
    ordered = builder.ordered()
    for op in geg.ops:
        op.detach()
    for op in ordered:
        block.insert_op_before(op, ret)
    ret.operands = outputs
    dropped = [op for op in geg.ops if op not in builder.used]
    for op in dropped:
        op.drop_all_references()
    for op in dropped:
        op.erase(safe_erase=False)


class _Builder:
    def __init__(self, module: ModuleOp, geg: GraphEGraph, selection: Selection):
        self.geg, self.eg, self.selection = geg, geg.egraph, selection
        self.weights = Weights(module)
        self.values: dict[int, object] = {}  # class -> its SSA value (a tuple class: its operation)
        self.used: set[Operation] = set()  # the module's operations reused
        self.made: list[Operation] = []
        self.position = {op: i for i, op in enumerate(geg.ops)}

    def emit(self, cid: int) -> object:
        cid = self.eg.find(cid)
        if cid in self.values:
            return self.values[cid]
        node = self.selection[cid]
        if node.op == RESULT:
            value = self.emit(node.children[0]).results[node.key[0]]
        else:
            op = self.operation(cid, node, [self.emit(k) for k in node.children])
            value = op if isinstance(self.eg.type_of(cid), tuple) else op.results[0]
        self.values[cid] = value
        return value

    def operation(self, cid: int, node: ENode, children: list[SSAValue], fresh: bool = False) -> Operation:
        eg = self.eg
        origin = eg.origins.get(node)
        where = eg.eclass(cid).origin
        if origin is not None and origin not in self.used and not fresh:
            self.used.add(origin)
            if list(origin.operands) != children:
                origin.operands = children
            op = origin
        elif origin is not None and node.op in (LEAF, OPAQUE):
            op = origin.clone()
            op.operands = children
        elif node.op == LITERAL:
            op = scalar_constant(thaw(node.key[0]), node.key[1])
        elif node.op == FOLDED:
            hint = self.weights.hint(where.results[0], "merged") if where is not None else "merged"
            op = self.weights.new(eg.const(cid), hint, like=where)
        else:
            op = self._table_op(cid, node, children)
        if op is not origin and where is not None:
            op.location = where.location
        self.position.setdefault(op, self.position.get(where, len(self.position)))
        self.made.append(op)
        return op

    def _table_op(self, cid: int, node: ENode, children: list[SSAValue]) -> Operation:
        it = iter(children)
        operands = [None if c is None else [next(it) for _ in c] if isinstance(c, list) else next(it)
                    for c in node.structured()]
        defaults = OPERATIONS[node.op].OP_DEF.attribute_defaults
        attribs = {name: value for name, value in node.attributes().items()
                   if defaults.get(name) is None or not same_value(value, defaults[name])}
        type_ = self.eg.type_of(cid)
        entry = OPERATIONS[node.op].OP_DEF
        if not isinstance(type_, tuple):
            types = [type_]
        elif len(entry.results) == 1:  # one result array (split's values)
            types = [list(type_)]
        else:
            types = list(type_)
        return create(node.op, operands, attribs, result_types=types)

    def outputs(self) -> list[SSAValue]:
        """The graph's outputs, each under its name (a value another output or an input
        already is gets an operation of its own)."""
        found, claimed = [], {}
        for value in self.geg.ret.operands:
            name = tensor_name(value)
            cid = self.geg.value_class[value]
            new = self.emit(cid)
            if claimed.get(new, name) != name or (_is_input(new) and tensor_name(new) != name):
                new = self._own_value(cid, value)
            claimed[new] = name
            if tensor_name(new) != name:
                rename(new, name)
            found.append(new)
        return found

    def _own_value(self, cid: int, value: SSAValue) -> SSAValue:
        node = self.selection[self.eg.find(cid)]
        if node.op in (LEAF, RESULT):
            node = self.geg.node_of.get(value.owner)
        if node is None or node.op in (LEAF, RESULT) or isinstance(self.eg.type_of(cid), tuple):
            op = create("copy", [self.emit(cid)])
        else:
            op = self.operation(cid, node, [self.emit(k) for k in node.children], fresh=True)
        if op not in self.made:
            self.made.append(op)
            self.position.setdefault(op, len(self.position))
        return op.results[0]

    def ordered(self) -> list[Operation]:
        """The operations made or reused, dependencies first, otherwise in program order."""
        ops = list(dict.fromkeys(self.made))
        inside = set(ops)
        waiting = {op: 0 for op in ops}
        readers: dict[Operation, list[Operation]] = {op: [] for op in ops}
        for op in ops:
            for producer in dict.fromkeys(v.owner for v in op.operands):
                if producer in inside:
                    waiting[op] += 1
                    readers[producer].append(op)
        sequence = {op: i for i, op in enumerate(ops)}
        ready = [(self.position[op], sequence[op], op) for op in ops if waiting[op] == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            *_, op = heapq.heappop(ready)
            order.append(op)
            for reader in readers[op]:
                waiting[reader] -= 1
                if waiting[reader] == 0:
                    heapq.heappush(ready, (self.position[reader], sequence[reader], reader))
        return order


def _is_input(value: SSAValue) -> bool:
    owner = value.owner
    return isinstance(owner, Operation) and owner.has_trait(GraphInput)
