"""What passes did to a graph, by tensor names: which operations are new, which changed,
which are gone. An operation is known by the names of its results (names survive the
passes: a rewrite gives its result the name of the value it replaces)."""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation

from nnefopt.dialects.tensor_names import tensor_name
from nnefopt.errors import NNEFError

ADDED, CHANGED = "added", "changed"


def graph_of(module: ModuleOp) -> Operation:
    for op in module.body.block.ops:
        if op.name == "nnef.graph":
            return op
    raise NNEFError("the module holds no nnef.graph to draw")


def _signature(op: Operation) -> tuple:
    """What the operation computes from what: its name, properties and operand names."""
    properties = tuple(sorted((k, str(v)) for k, v in op.properties.items()))
    return op.name, properties, tuple(tensor_name(v) for v in op.operands)


def _by_result_name(module: ModuleOp) -> dict[str, Operation]:
    ops = {}
    for op in graph_of(module).regions[0].block.ops:
        for result in op.results:
            if (name := tensor_name(result)) is not None:
                ops[name] = op
    return ops


class Changes:
    """The operations of `after` that `before` lacks (added) or has otherwise (changed),
    and the names of the results of `before`'s operations that `after` lacks (removed)."""

    def __init__(self, before: ModuleOp, after: ModuleOp):
        old, new = _by_result_name(before), _by_result_name(after)
        self._old = {name: _signature(op) for name, op in old.items()}
        # A tensor now a weight (folded) no longer has its operation: that counts as removed.
        computed = {name for name, op in new.items() if _is_computed(op)}
        self.removed = [name for name, op in old.items() if name not in computed and _is_computed(op)]

    def of(self, op: Operation) -> str | None:
        names = [n for r in op.results if (n := tensor_name(r)) is not None]
        known = [n for n in names if n in self._old]
        if not known:
            return ADDED if names else None
        return CHANGED if any(self._old[n] != _signature(op) for n in known) else None


def _is_computed(op: Operation) -> bool:
    """An operation of the graph rather than a weight or input: what "removed" counts."""
    from nnefopt.traits import TensorSource

    return not op.has_trait(TensorSource)
