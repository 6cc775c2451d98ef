"""What passes changed, in numbers: operation counts and parameter bytes before and after
(`nnef-opt --stats`). `model_stats` is the one place that counts; a fuller model
summary (MACs, memory) can take its place without the table changing."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from xdsl.dialects.builtin import ArrayAttr, IntegerAttr, ModuleOp, TensorType

from nnefopt.dtypes import item_dtype
from nnefopt.passes.stats import operation_histogram
from nnefopt.traits import GraphInput, TensorSource

ITEM = "nnef.item"  # a weight's stored item type: [code, bits]


@dataclass
class ModelStats:
    operations: Counter = field(default_factory=Counter)  # op name -> count (weights and inputs not counted)
    parameters: int = 0  # items of the weights (variables and constants)
    parameter_bytes: int = 0  # as stored: a weight keeps the width it was read with


def model_stats(module: ModuleOp) -> ModelStats:
    stats = ModelStats(operations=operation_histogram(module))
    labels = set()  # a variable declared twice with one label is one weight (one file)
    for op in module.walk():
        if not op.has_trait(TensorSource) or op.has_trait(GraphInput):
            continue
        label = op.properties.get("label")
        if label is not None and label in labels:
            continue
        labels.add(label)
        for result in op.results:
            items, width = _items_and_bits(op, result.type)
            stats.parameters += items
            stats.parameter_bytes += (items * width + 7) // 8
    return stats


def _items_and_bits(op, type_) -> tuple[int, int]:
    if not isinstance(type_, TensorType):
        return 0, 0
    items = 1
    for d in type_.get_shape():
        items *= max(d, 0)
    stored = op.attributes.get(ITEM)
    if isinstance(stored, ArrayAttr) and len(stored.data) == 2 and isinstance(stored.data[1], IntegerAttr):
        return items, stored.data[1].value.data
    dtype = item_dtype(type_.element_type)
    return items, (dtype.itemsize * 8 if dtype is not None else 32)


def stats_table(before: ModelStats, after: ModelStats) -> str:
    """A table of each operation's count before and after, then totals and parameters."""
    names = sorted(set(before.operations) | set(after.operations),
                   key=lambda n: (-max(before.operations[n], after.operations[n]), n))
    width = max([len(n) for n in names] + [len("parameter bytes")])
    rows = [f"{'':<{width}} {'before':>10} {'after':>10} {'change':>8}"]

    def row(label: str, old: int, new: int) -> None:
        change = "" if old == new else f"{new - old:+d}"
        rows.append(f"{label:<{width}} {old:>10,} {new:>10,} {change:>8}")

    for name in names:
        row(name, before.operations[name], after.operations[name])
    row("operations", sum(before.operations.values()), sum(after.operations.values()))
    row("parameters", before.parameters, after.parameters)
    row("parameter bytes", before.parameter_bytes, after.parameter_bytes)
    return "\n".join(rows)
