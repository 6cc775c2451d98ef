"""Operation counts of a module, counted the way benchmarks and tests compare graphs.

An "operation" is a compute operation of the graph: every operation in the body of an
`nnef.graph` except those that only introduce a tensor (`external`, `variable`,
`constant`, tract's `tract_core_external`) and the `nnef.return` terminator. Fragment
definitions (`nnef.fragment`) are not counted; an invocation of one (`nnef.call`) is one
operation. The tensor-introducing operations are those with the TensorSource trait;
counting peers' graphs (the Khronos parser's, ONNX) the same way means skipping the
same operations by name: `DATA_OPERATIONS`, derived from the op table.
"""

from __future__ import annotations

from collections import Counter

from xdsl.dialects.builtin import ModuleOp

from nnefopt.dialects.nnef import CallOp, GraphOp, OpaqueOp, ReturnOp
from nnefopt.ops import names_with
from nnefopt.traits import TensorSource

# NNEF operation names that introduce a tensor rather than compute one.
DATA_OPERATIONS = names_with(TensorSource)


def operation_name(op) -> str:
    """The NNEF name of an operation: `conv` for `nnef.conv`, the fragment's name for
    `nnef.call`, the operation's own name for `nnef.op` (an unknown registry's)."""
    if isinstance(op, CallOp):
        return op.callee.data
    if isinstance(op, OpaqueOp):
        return op.op_name.data
    return op.name.removeprefix("nnef.")


def operation_histogram(module: ModuleOp) -> Counter:
    """How many times each compute operation occurs in the module's graph(s), by NNEF name."""
    counts: Counter = Counter()
    for graph in module.ops:
        if not isinstance(graph, GraphOp):
            continue
        for block in graph.body.blocks:
            for op in block.ops:
                if isinstance(op, ReturnOp) or op.has_trait(TensorSource):
                    continue
                counts[operation_name(op)] += 1
    return counts


def count_operations(module: ModuleOp) -> int:
    """The number of compute operations in the module's graph(s)."""
    return sum(operation_histogram(module).values())
