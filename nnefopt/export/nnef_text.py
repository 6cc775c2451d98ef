"""Model → graph.nnef and graph.quant text that the Khronos parser accepts.

What the frontend accepted leniently comes out in the specification's form: attributes
by name, values instead of tensors passed as attributes, array results as `[a, b]`, and
fragments that redefine a standard operation under a name of their own.
"""

from __future__ import annotations

from nnefopt.frontend import ast
from nnefopt.frontend.binder import is_tensor_type
from nnefopt.frontend.evaluate import evaluate_constant
from nnefopt.frontend.model import EXPLICIT_TYPE, Model, Operation, TensorRef
from nnefopt.frontend.printer import format_fragment, format_identifier, format_literal
from nnefopt.frontend.stdlib import extra_operations, standard_operations

_STANDARD_EXTENSIONS = ("KHR_enable_fragment_definitions", "KHR_enable_operator_expressions")


def fragment_names(model: Model) -> dict[str, str]:
    """Output name of each fragment: a fragment shadowing a standard one is renamed."""
    taken = set(standard_operations()) | set(model.fragments)
    names = {}
    for name in model.fragments:
        new = name
        while new in standard_operations() or (new != name and new in taken):
            new += "_"
        taken.add(new)
        names[name] = new
    return names


def undeclared_extras(model: Model) -> list[ast.Fragment]:
    """Non-standard operations nnefopt knows (erf, the fused operations) that the model
    calls without declaring, and those their bodies call, each after what it calls."""
    extras = extra_operations()
    called = {op.name for op in model.operations}
    for fragment in model.fragments.values():
        called.update(_invoked(fragment.body or []))
    ordered: list[ast.Fragment] = []

    def add(name: str) -> None:
        if name in extras and name not in model.fragments and extras[name] not in ordered:
            for inner in sorted(_invoked(extras[name].body or [])):
                add(inner)
            ordered.append(extras[name])

    for name in sorted(called):
        add(name)
    return ordered


def _invoked(body: list[ast.Assignment]) -> set[str]:
    return {node.name for node in ast.walk(body) if isinstance(node, ast.Invocation)}


def format_model(model: Model) -> str:
    renames = fragment_names(model)
    lines = [f"version {model.version[0]}.{model.version[1]};", ""]
    extensions = [e for e in model.extensions if e.name not in _STANDARD_EXTENSIONS]
    if model.fragments or undeclared_extras(model):
        extensions = [ast.Extension(name) for name in _STANDARD_EXTENSIONS] + extensions
    for ext in extensions:
        lines.append(f"extension {ext.name}{' ' + ext.args if ext.args else ''};")
    if extensions:
        lines.append("")
    for fragment in [*undeclared_extras(model), *model.fragments.values()]:
        lines.extend([format_fragment(_renamed(fragment, renames)), ""])
    inputs = ", ".join(map(format_identifier, model.inputs))
    outputs = ", ".join(map(format_identifier, model.outputs))
    lines.append(f"graph {format_identifier(model.name)}( {inputs} ) -> ( {outputs} )")
    lines.append("{")
    lines.extend(f"    {format_operation(op, renames)}" for op in model.operations)
    lines.append("}")
    return "\n".join(lines) + "\n"


def format_operation(op: Operation, renames: dict[str, str] | None = None) -> str:
    lhs = ", ".join(_format_value(v) for v in op.outputs.values())
    name = (renames or {}).get(op.name, op.name)
    args = _known_args(op) if op.signature is not None else _opaque_args(op)
    type_arg = f"<{op.type_arg}>" if _writes_type(op) else ""
    return f"{lhs} = {format_identifier(name)}{type_arg}({', '.join(args)});"


def _known_args(op: Operation) -> list[str]:
    args = []
    positional = True  # tensors by position, until one is left out
    tensor_defaults = _defaults(op.signature, tensors=True)
    for key, value in op.inputs.items():
        if value is None or (key not in op.explicit and tensor_defaults.get(key, _MISSING) == value):
            positional = False
        else:
            args.append(_format_value(value) if positional else f"{format_identifier(key)} = {_format_value(value)}")
    defaults = _defaults(op.signature)
    for key, value in op.attribs.items():
        if key in op.explicit or defaults.get(key, _MISSING) != value:
            args.append(f"{format_identifier(key)} = {format_literal(value)}")
    return args


def _opaque_args(op: Operation) -> list[str]:
    """An unknown operation's arguments as given: `_<index>` keys were positional."""
    given = {**op.inputs, **op.attribs}
    positional = sorted((int(k[1:]), v) for k, v in given.items() if k[:1] == "_" and k[1:].isdigit())
    named = [(k, v) for k, v in given.items() if not (k[:1] == "_" and k[1:].isdigit())]
    return [_format_value(v) for _, v in positional] + [f"{format_identifier(k)} = {_format_value(v)}" for k, v in named]


_MISSING = object()


def _defaults(signature: ast.Fragment, tensors: bool = False) -> dict[str, object]:
    """Default values of the attribute parameters (or of the tensor ones: literals)."""
    return {
        p.name: evaluate_constant(p.default)
        for p in signature.params
        if p.default is not None and is_tensor_type(p.type) == tensors
    }


def _writes_type(op: Operation) -> bool:
    """As the source wrote it; where a pass made the operation, when not implied."""
    if op.type_arg is None or EXPLICIT_TYPE in op.explicit:
        return op.type_arg is not None
    signature = op.signature
    if signature is None or not signature.generic:
        return False
    if any(str(p.type).startswith("tensor<?>") for p in signature.params):
        return False  # the parser deduces it from the operands
    return signature.generic_default is None or signature.generic_default.name != op.type_arg


def _format_value(value: object) -> str:
    if isinstance(value, TensorRef):
        return format_identifier(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(_format_value, value)) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(map(_format_value, value)) + ")"
    return format_literal(value)


def _renamed(fragment: ast.Fragment, renames: dict[str, str]) -> ast.Fragment:
    if renames.get(fragment.name, fragment.name) == fragment.name:
        return fragment
    return ast.Fragment(renames[fragment.name], fragment.generic, fragment.generic_default,
                        fragment.params, fragment.results, fragment.body, fragment.loc)


def format_quantization(model: Model) -> str:
    lines = []
    for tensor in model.tensors.values():
        if tensor.quant is not None:
            attrs = ", ".join(f"{k} = {format_literal(v)}" for k, v in tensor.quant.attributes.items())
            lines.append(f'"{tensor.name}": {tensor.quant.algorithm}({attrs});')
    return "\n".join(lines) + ("\n" if lines else "")
