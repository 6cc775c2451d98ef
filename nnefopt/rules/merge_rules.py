"""E-graph rewrites the rule form cannot state: several roots at once.

- `merge_convs`: convs (or fused `conv_<act>`s of one activation) reading one input with
  the same attributes, groups = 1 and known filters of one spatial size become one conv
  over the concatenated filters and biases, then a split along channels;
- `merge_linears`: the same for `linear`s (and `linear_<act>`s) sharing their input;
- `merge_matmuls`: matmuls sharing their left operand (and transposes) over rank-2 right
  operands: one matmul over the concatenated right operands, a split along the last axis;
- `concat_of_split`: concatenating, in order, every result of a split along the same
  axis gives back what was split.
- `merge_conv_sum`: the sum of two convs (same attributes, groups = 1, known filters
  of one shape but their input channels) of inputs of one shape but their channels is
  one conv of the inputs concatenated along channels, over the filters concatenated
  along their input channels, with the sum of the biases (a conv sums over its input
  channels; TASO's conv-of-concat identity). A ResNeXt projection shortcut added to
  the block's last 1x1 conv is one conv reading both.

Each adds the merged nodes and makes each original class one with its projection of the
split: whether a merge is taken is the extraction's choice (it saves reading the shared
input again, and costs the split), made for the group of classes at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import TensorType

from nnefopt.ops import entry_of
from nnefopt.rules.egraph import ABSENT, ONE, RESULT, EGraph, ENode, freeze


@dataclass(frozen=True)
class Merge:
    """One application: the classes it stands for, each with the projection node now in
    it, and the nodes it made (the merged operation, the split)."""

    rule: str
    switches: tuple[tuple[int, ENode], ...]
    made: tuple[ENode, ...]
    replaced: tuple[ENode, ...]  # the nodes the projections stand in for


def _base(op: str) -> str:
    entry = entry_of(op)
    fused = entry.slot("fused") if entry is not None else None
    return fused[0] if fused else op


@dataclass
class MergeState:
    """What the merges made so far (not merged again) and the groups already merged."""

    made: set[ENode]
    done: set[tuple]

    def first_time(self, eg: EGraph, rule: str, classes: list[int]) -> bool:
        key = (rule, tuple(sorted(eg.find(c) for c in classes)))
        if key in self.done:
            return False
        self.done.add(key)
        return True

    def refresh(self, eg: EGraph) -> None:
        self.made = {eg.canonical(n) for n in self.made}


def _readers(eg: EGraph, bases: tuple[str, ...], state: MergeState) -> dict[tuple, list[tuple[int, ENode]]]:
    """The op nodes of `bases` grouped by (their first operand's class, op, attributes),
    one node per class, in id order (those a merge made left out)."""
    groups: dict[tuple, list[tuple[int, ENode]]] = {}
    for cid in sorted(eg.classes):
        eclass = eg.classes[cid]
        if eclass.pinned or not isinstance(eclass.type, TensorType):
            continue
        for node in eclass.nodes:
            if node.is_operation and _base(node.op) in bases and node.arity[:2] == (ONE, ONE) \
                    and node not in state.made:
                key = (eg.find(node.children[0]), node.op, node.key)
                members = groups.setdefault(key, [])
                if all(c != cid for c, _ in members):
                    members.append((cid, node))
                break
    return groups


def _bias(eg: EGraph, node: ENode, channels: int) -> np.ndarray | None | bool:
    """A node's bias as a [1, channels] array (False: not a known one)."""
    parts = node.structured()
    if node.arity[2] == ABSENT:
        return None
    value = eg.const(parts[2])
    if value is None:
        return False
    try:
        return np.broadcast_to(value, (1, channels))
    except ValueError:
        return False


def _split_into(eg: EGraph, merged: int, axis: int, members: list[tuple[int, ENode]], sizes: list[int],
                rule: str, made: list[ENode]) -> Merge:
    types = tuple(eg.type_of(c) for c, _ in members)
    split = ENode("split", (("axis", axis), ("ratios", freeze(list(sizes)))), (merged,), (ONE,))
    tuple_class = eg.add(split, types)
    for cid in (merged, tuple_class):  # placed where the first merged operation was
        eg.adopt(cid, eg.eclass(members[0][0]).origin)
    made.append(eg.canonical(split))
    switches = []
    for index, (cid, _) in enumerate(members):
        projection = ENode(RESULT, (index,), (tuple_class,))
        eg.union(eg.add(projection, types[index]), cid)
        switches.append((cid, eg.canonical(projection)))
    return Merge(rule, tuple(switches), tuple(made), tuple(n for _, n in members))


def _merge_filters(eg: EGraph, state: MergeState, bases: tuple[str, ...], rule: str, spatial: bool) -> list[Merge]:
    merges = []
    for (source, op, key), members in _readers(eg, bases, state).items():
        if spatial and dict(key).get("groups") != freeze(1):
            continue
        by_filter: dict[tuple, list] = {}
        for cid, node in members:
            filter_ = eg.const(node.children[1])
            out = eg.shape(cid)
            if filter_ is None or out is None or filter_.ndim < 2:
                continue
            bias = _bias(eg, node, filter_.shape[0])
            if bias is not False:
                by_filter.setdefault(filter_.shape[1:], []).append((cid, node, filter_, bias))
        for group in by_filter.values():
            if len(group) < 2 or not state.first_time(eg, rule, [c for c, *_ in group]):
                continue
            filters = np.concatenate([f for _, _, f, _ in group], axis=0)
            filter_class = eg.folded(filters, TensorType(eg.type_of(group[0][0]).element_type, list(filters.shape)))
            eg.adopt(filter_class, eg.eclass(group[0][1].children[1]).origin)  # named after the first filter
            children, arity = [source, filter_class], [ONE, ONE, ABSENT]
            if any(b is not None for *_, b in group):
                biases = np.concatenate([np.zeros((1, f.shape[0]), f.dtype) if b is None else b.astype(f.dtype)
                                         for _, _, f, b in group], axis=1)
                bias_class = eg.folded(biases, TensorType(eg.type_of(group[0][0]).element_type, list(biases.shape)))
                first_bias = next(n.children[2] for _, n, _, b in group if b is not None)
                eg.adopt(bias_class, eg.eclass(first_bias).origin)
                children.append(bias_class)
                arity[2] = ONE
            first = eg.type_of(group[0][0])
            shape = list(first.get_shape())
            shape[1] = int(filters.shape[0])
            node = ENode(op, key, tuple(children), tuple(arity))
            merged = eg.add(node, TensorType(first.element_type, shape))
            state.made.add(eg.canonical(node))
            merges.append(_split_into(eg, merged, 1, [(c, n) for c, n, _, _ in group],
                                      [int(f.shape[0]) for _, _, f, _ in group], rule, [eg.canonical(node)]))
    return merges


def merge_convs(eg: EGraph, state: MergeState) -> list[Merge]:
    return _merge_filters(eg, state, ("conv",), "merge_convs", spatial=True)


def merge_linears(eg: EGraph, state: MergeState) -> list[Merge]:
    return _merge_filters(eg, state, ("linear",), "merge_linears", spatial=False)


def merge_matmuls(eg: EGraph, state: MergeState) -> list[Merge]:
    merges = []
    for (source, op, key), members in _readers(eg, ("matmul",), state).items():
        transpose_b = dict(key)["transposeB"]
        group = [(c, n) for c, n in members if eg.shape(n.children[1]) is not None
                 and len(eg.shape(n.children[1])) == 2 and eg.shape(c) is not None]
        if len(group) < 2 or not state.first_time(eg, "merge_matmuls", [c for c, _ in group]):
            continue
        axis = 0 if transpose_b else 1
        rights = [n.children[1] for _, n in group]
        arrays = [eg.const(r) for r in rights]
        element = eg.type_of(group[0][0]).element_type
        if all(a is not None for a in arrays):
            joined = np.concatenate(arrays, axis=axis)
            right = eg.folded(joined, TensorType(element, list(joined.shape)))
            eg.adopt(right, eg.eclass(rights[0]).origin)
        else:
            shapes = [eg.shape(r) for r in rights]
            shape = list(shapes[0])
            shape[axis] = sum(s[axis] for s in shapes)
            right = eg.add(ENode("concat", (("axis", axis),), tuple(rights), (len(rights),)), TensorType(element, shape))
        sizes = [eg.shape(r)[axis] for r in rights]
        out = list(eg.shape(group[0][0]))
        out[-1] = sum(sizes)
        node = ENode(op, key, (source, right), (ONE, ONE))
        merged = eg.add(node, TensorType(element, out))
        state.made.add(eg.canonical(node))
        merges.append(_split_into(eg, merged, len(out) - 1, group, sizes, "merge_matmuls", [eg.canonical(node)]))
    return merges


def merge_conv_sum(eg: EGraph, state: MergeState) -> list[Merge]:
    merges = []
    for cid in sorted(eg.classes):
        eclass = eg.classes[cid]
        if eclass.pinned or not isinstance(eclass.type, TensorType):
            continue
        for node in list(eclass.nodes):
            if node.op != "add" or len(node.children) != 2:
                continue
            convs = [_summed_conv(eg, child, eclass.type, state) for child in node.children]
            if None in convs or not _concatenable(eg, convs) or not state.first_time(eg, "merge_conv_sum", [cid]):
                continue
            merges.append(_conv_of_concat(eg, state, cid, node, convs))
            break
    return merges


def _summed_conv(eg: EGraph, cid: int, summed: TensorType, state: MergeState) -> tuple | None:
    """(conv node, its filter, its [1, C] bias or None) of a class holding an ungrouped
    conv of known filter and bias, of the sum's own type (no broadcast); None if none."""
    if eg.eclass(cid).pinned or eg.type_of(cid) != summed:
        return None
    for node in eg.eclass(cid).nodes:
        if node.op != "conv" or node.arity[:2] != (ONE, ONE) or dict(node.key).get("groups") != freeze(1) \
                or node in state.made:
            continue
        filter_ = eg.const(node.children[1])
        if filter_ is None or filter_.ndim < 3 or eg.shape(node.children[0]) is None:
            continue
        bias = _bias(eg, node, filter_.shape[0])
        if bias is not False:
            return node, filter_, bias
    return None


def _concatenable(eg: EGraph, convs: list[tuple]) -> bool:
    """Same attributes, filters alike but for their input channels, inputs alike but for
    their channels (axis 1) and of one type of element."""
    (first, f1, _), (second, f2, _) = convs
    a, b = eg.shape(first.children[0]), eg.shape(second.children[0])
    return first.key == second.key and f1.shape[0] == f2.shape[0] and f1.shape[2:] == f2.shape[2:] \
        and len(a) == len(b) == f1.ndim and a[0] == b[0] and a[2:] == b[2:] \
        and eg.type_of(first.children[0]).element_type == eg.type_of(second.children[0]).element_type


def _conv_of_concat(eg: EGraph, state: MergeState, cid: int, add: ENode, convs: list[tuple]) -> Merge:
    (first, f1, b1), (second, f2, b2) = convs
    inputs = [first.children[0], second.children[0]]
    element = eg.type_of(inputs[0]).element_type
    shape = list(eg.shape(inputs[0]))
    shape[1] += eg.shape(inputs[1])[1]
    joined = ENode("concat", (("axis", 1),), tuple(inputs), (2,))
    joined_class = eg.add(joined, TensorType(element, shape))
    filters = np.concatenate([f1, f2.astype(f1.dtype)], axis=1)
    filter_class = eg.folded(filters, TensorType(element, list(filters.shape)))
    eg.adopt(filter_class, eg.eclass(first.children[1]).origin)  # named after the first filter
    children, arity = [joined_class, filter_class], [ONE, ONE, ABSENT]
    if b1 is not None or b2 is not None:
        biases = sum(b.astype(f1.dtype) for b in (b1, b2) if b is not None)
        bias_class = eg.folded(biases, TensorType(element, list(biases.shape)))
        eg.adopt(bias_class, eg.eclass(first.children[2] if b1 is not None else second.children[2]).origin)
        children.append(bias_class)
        arity[2] = ONE
    conv = ENode("conv", first.key, tuple(children), tuple(arity))
    conv_class = eg.add(conv, eg.type_of(cid))
    for made in (joined_class, conv_class):  # placed where the sum was
        eg.adopt(made, eg.eclass(cid).origin)
    state.made.add(eg.canonical(conv))
    eg.union(cid, conv_class)
    return Merge("merge_conv_sum", ((cid, eg.canonical(conv)),), (eg.canonical(joined), eg.canonical(conv)),
                 (add, first, second))


def concat_of_split(eg: EGraph, state: MergeState) -> list[Merge]:
    merges = []
    for cid in sorted(eg.classes):
        if eg.classes[cid].pinned:
            continue
        for node in list(eg.classes[cid].nodes):
            if node.op != "concat" or len(node.children) < 2:
                continue
            source = _split_source(eg, node)
            if source is not None and eg.find(source) != cid and eg.type_of(source) == eg.type_of(cid) \
                    and not eg.eclass(source).pinned:
                if eg.union(cid, source):
                    merges.append(Merge("concat_of_split", ((cid, node),), (), (node,)))
    return merges


def _split_source(eg: EGraph, concat: ENode) -> int | None:
    """What was split when `concat` joins all of one split's results in order, on its axis."""
    axis = dict(concat.key)["axis"]
    tuples = set()
    for index, item in enumerate(concat.children):
        found = [n.children[0] for n in eg.eclass(item).nodes if n.op == RESULT and n.key == (index,)]
        if not found:
            return None
        tuples.add(eg.find(found[0]))
    if len(tuples) != 1:
        return None
    (tuple_class,) = tuples
    types = eg.type_of(tuple_class)
    if not isinstance(types, tuple) or len(types) != len(concat.children):
        return None
    for node in eg.eclass(tuple_class).nodes:
        if node.op == "split" and dict(node.key)["axis"] == axis:
            return node.children[0]
    return None


# What the merges make besides the merged operation (one of those they merge): rules
# rooted at these may fire on a graph that had none.
MERGE_PRODUCTS = frozenset({"split", "concat"})

MERGE_RULES: dict[str, Callable[[EGraph, MergeState], list[Merge]]] = {
    "merge_convs": merge_convs,
    "merge_linears": merge_linears,
    "merge_matmuls": merge_matmuls,
    "concat_of_split": concat_of_split,
    "merge_conv_sum": merge_conv_sum,
}
