"""Model facts: what a model takes and gives, what it is made of, what it costs, and
what each engine cannot take of it.

`info(module)` is a dict (what `nnef-info --json` prints). The work of each operation
comes from its op-table entry's cost rule (`OpDef.cost`); activation memory from the
static arena plan (`memory_plan`); what engines lack from their operation libraries.
"""

from __future__ import annotations

from collections import Counter

import sympy
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue

from nnefopt.costs import Cost, default_cost
from nnefopt.dialects.nnef import CallOp, FragmentOp, OpaqueOp, ReturnOp, dtype_of, field_name, from_attribute
from nnefopt.dialects.weights import weight_of
from nnefopt.dtypes import item_dtype
from nnefopt.errors import NNEFError
from nnefopt.export.from_ir import fragment_of, graph_of, module_extensions, tensor_names
from nnefopt.frontend import stdlib
from nnefopt.frontend.evaluate import evaluate_constant
from nnefopt.passes.stats import operation_histogram, operation_name
from nnefopt.traits import TensorSource

C_EMITTER = "not yet available"


def _shape(value: SSAValue) -> list | None:
    type_ = value.type
    if not isinstance(type_, TensorType):
        return None
    return [d if d >= 0 else "?" for d in type_.get_shape()]


def _itemsize(value: SSAValue) -> int:
    dtype = item_dtype(value.type.element_type) if isinstance(value.type, TensorType) else None
    return dtype.itemsize if dtype is not None else 4


def _static(shape: list | None) -> list | None:
    """A shape for the cost rules (a tuple: a list is a tensor array there); symbolic dims
    as symbols, so the counts stay expressions."""
    if shape is None:
        return None
    return tuple(d if isinstance(d, int) else sympy.Symbol("?") for d in shape)


def operation_cost(op: Operation) -> Cost:
    """The work of one operation of the graph, by its op-table entry's cost rule (an
    invocation of a model's fragment, or an unknown registry's operation: about one FLOP
    per result element)."""
    results = [_static(_shape(r)) for r in op.results]
    itemsize = _itemsize(op.results[0]) if op.results else 4
    entry = getattr(op, "OP_DEF", None)
    if entry is None or isinstance(op, (CallOp, OpaqueOp)):
        macs, flops = default_cost([], results, {})
        return Cost(macs, flops, sum((_bytes(v) for v in op.operands), 0), sum((_bytes(r) for r in op.results), 0))
    operands, attribs = [], {}
    for param in entry.tensor_params:
        operand = getattr(op, field_name(param.name))
        if operand is None:
            operands.append(None)
        elif isinstance(operand, SSAValue):
            operands.append(_static(_shape(operand)))
        else:
            operands.append([_static(_shape(v)) for v in operand])
    for param in entry.attribute_params:
        prop = op.properties.get(field_name(param.name))
        attribs[param.name] = from_attribute(prop, param.type) if prop is not None else \
            (None if param.default is None else evaluate_constant(param.default))
    return entry.cost(operands, results, attribs, itemsize)


def _bytes(value: SSAValue) -> object:
    shape = _static(_shape(value))
    if shape is None:
        return 0
    total = 1
    for d in shape:
        total *= d
    return total * _itemsize(value)


def _number(value: object) -> object:
    """A count for JSON: an int, or the expression's text where a dim is symbolic."""
    if isinstance(value, sympy.Basic):
        return int(value) if value.is_Integer else str(value)
    return value


def _tensor(name: str, value: SSAValue) -> dict:
    return {"name": name, "shape": _shape(value), "dtype": dtype_of(value.type)}


def _graph_ops(module: ModuleOp) -> list[Operation]:
    return list(graph_of(module).body.block.ops)


def parameters(module: ModuleOp) -> dict:
    """The weights' element count and bytes, in total and per dtype."""
    by_dtype: dict[str, dict] = {}
    labels = set()  # a variable declared twice with one label is one weight (one file)
    for op in _graph_ops(module):
        if op.name != "nnef.variable":
            continue
        label = op.properties.get("label")
        if label in labels:
            continue
        labels.add(label)
        value = op.results[0]
        data = op.attributes.get("nnef.data")
        array = weight_of(data) if data is not None else None
        count = int(array.size) if array is not None else int(_bytes(value) // _itemsize(value))
        size = int(array.nbytes) if array is not None else int(_bytes(value))
        row = by_dtype.setdefault(dtype_of(value.type), {"count": 0, "bytes": 0})
        row["count"] += count
        row["bytes"] += size
    return {"count": sum(r["count"] for r in by_dtype.values()), "bytes": sum(r["bytes"] for r in by_dtype.values()),
            "by_dtype": by_dtype}


def compute(module: ModuleOp, names: dict[SSAValue, str] | None = None) -> dict:
    """MACs and FLOPs in total, per operation kind and per operation (named by its first result)."""
    names = tensor_names(module) if names is None else names
    per_kind: dict[str, dict] = {}
    per_op = []
    macs = flops = 0
    for op in _graph_ops(module):
        if isinstance(op, ReturnOp) or op.has_trait(TensorSource):
            continue
        cost = operation_cost(op)
        kind = operation_name(op)
        row = per_kind.setdefault(kind, {"count": 0, "macs": 0, "flops": 0})
        row["count"] += 1
        row["macs"] += cost.macs
        row["flops"] += cost.flops
        macs += cost.macs
        flops += cost.flops
        output = names.get(op.results[0]) if op.results else None
        per_op.append({"op": kind, "output": output, "macs": _number(cost.macs), "flops": _number(cost.flops)})
    for row in per_kind.values():
        row["macs"], row["flops"] = _number(row["macs"]), _number(row["flops"])
    return {"macs": _number(macs), "flops": _number(flops), "per_kind": per_kind, "per_op": per_op}


def memory(module: ModuleOp) -> dict:
    """The activations' arena under the static plan (None where a shape is symbolic)."""
    from nnefopt.memory_plan import plan

    try:
        arena = plan(module)
    except NNEFError as error:
        return {"peak_activation_bytes": None, "unplanned_activation_bytes": None, "note": error.message}
    return {"peak_activation_bytes": arena.peak_bytes, "unplanned_activation_bytes": arena.unplanned_bytes,
            "tensors": len(arena.buffers)}


def _defined_fragments(module: ModuleOp) -> dict[str, bool]:
    """The model's own fragments: name → whether it has a body."""
    return {op.sym_name.data: fragment_of(op).body is not None for op in module.ops if isinstance(op, FragmentOp)}


def _exported(module: ModuleOp) -> ModuleOp:
    """The module as nnefopt writes NNEF for engines (standard spelling, channel-first)."""
    from nnefopt.targets import EmitOptions, target_for

    return target_for("nnef").exported(module, EmitOptions())


def unsupported(module: ModuleOp) -> dict[str, object]:
    """Per engine, the operations of the written NNEF it cannot take: the Khronos parser
    infers shapes of standard operations alone (a fragment's body does not help it);
    tract knows the standard library, its tract_core registry and fragments with a body."""
    written = _exported(module)
    used = set(operation_histogram(written))
    defined = {name for name, body in _defined_fragments(written).items() if body}
    standard = set(stdlib.standard_operations())
    tract = standard | set(stdlib.tract_operations())
    return {"khronos": sorted(used - standard), "tract": sorted(used - tract - defined), "c": C_EMITTER}


def info(module: ModuleOp) -> dict:
    """Everything `nnef-info` reports about the module, as plain data (JSON-ready)."""
    graph = graph_of(module)
    names = tensor_names(module)
    by_name = {name: value for value, name in names.items()}
    standard = set(stdlib.standard_operations())
    histogram = operation_histogram(module)
    fragments = _defined_fragments(module)
    return {
        "graph": graph.sym_name.data,
        "inputs": [_tensor(n, by_name[n]) for n in from_attribute(graph.inputs) if n in by_name],
        "outputs": [_tensor(n, by_name[n]) for n in from_attribute(graph.outputs) if n in by_name],
        "operations": dict(histogram.most_common()),
        "parameters": parameters(module),
        "compute": compute(module, names),
        "memory": memory(module),
        "extensions": [f"{e.name} {e.args}".strip() for e in module_extensions(module)],
        "fragments": sorted(fragments),
        "nonstandard_operations": sorted(n for n in histogram if n not in standard and n not in fragments),
        "unsupported": unsupported(module),
    }


def op_counts_and_bytes(module: ModuleOp) -> dict:
    """What a before/after table compares: operations by kind, their total, the weights'
    bytes, MACs, and the peak activation bytes (None where a shape is symbolic)."""
    histogram: Counter = operation_histogram(module)
    return {"operations": histogram, "total": sum(histogram.values()), "parameter_bytes": parameters(module)["bytes"],
            "macs": compute(module)["macs"], "peak_activation_bytes": memory(module)["peak_activation_bytes"]}
