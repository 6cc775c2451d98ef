"""profile=portable: no quantized tensor named like a local of a fragment tract expands.

tract looks a graph.quant entry up by the bare name of each tensor it makes, also inside
the body of a standard fragment it expands: with an entry named `output` (tiny_unet's
last conv), the `output = sample(...)` inside every `max_pool` took that entry's scale
and zero point, and the pool gave zeros. So a quantized tensor whose name is also
assigned in the body of a fragment the graph invokes (directly or through other
fragments) takes a fresh name. A graph output keeps its name for the user: the quantized
value is renamed and the output becomes a `copy` of it without an entry (tract's copy
keeps the quantized type; nnefopt reads the copy as the dequantized value).
"""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp
from xdsl.rewriter import InsertPoint, Rewriter

from nnefopt.dialects.nnef import ReturnOp
from nnefopt.dialects.quantization import quantization_of, unquantized
from nnefopt.dialects.tensor_names import fresh_name
from nnefopt.export.from_ir import graph_of, tensor_names
from nnefopt.frontend import ast
from nnefopt.frontend.stdlib import standard_operations, tract_operations
from nnefopt.passes.rewriting import create, is_graph_output, rename


def fragment_locals(invoked: set[str]) -> set[str]:
    """Every name assigned in the body of the standard and tract fragments `invoked`
    names, and in the bodies of the fragments those invoke."""
    fragments = {**standard_operations(), **tract_operations()}
    names: set[str] = set()
    seen: set[str] = set()
    pending = [name for name in invoked if name in fragments]
    while pending:
        name = pending.pop()
        if name in seen or fragments[name].body is None:
            continue
        seen.add(name)
        for assignment in fragments[name].body:
            names.update(node.name for node in ast.walk(assignment.lhs) if isinstance(node, ast.Identifier))
            pending.extend(node.name for node in ast.walk(assignment.rhs)
                           if isinstance(node, ast.Invocation) and node.name in fragments)
    return names


def rename_fragment_locals(module: ModuleOp) -> int:
    """Rename each quantized tensor that a local of an invoked fragment would shadow
    in tract (see the module docstring). Returns how many were renamed."""
    block = graph_of(module).body.block
    invoked = {op.name.removeprefix("nnef.") for op in block.ops}
    locals_ = fragment_locals(invoked)
    names = tensor_names(module)
    taken = set(names.values())
    renamed = 0
    for op in list(block.ops):
        if isinstance(op, ReturnOp):
            continue
        for value in op.results:
            name = names.get(value)
            if name not in locals_ or quantization_of(value) is None:
                continue
            rename(value, fresh_name(f"{name}_q", taken))
            renamed += 1
            if is_graph_output(value):
                output = create("copy", [value], result_types=[unquantized(value.type)], like=op, name=name)
                Rewriter.insert_op(output, InsertPoint.after(op))
                for use in list(value.uses):
                    if isinstance(use.operation, ReturnOp):
                        use.operation.operands[use.index] = output.results[0]
    return renamed
