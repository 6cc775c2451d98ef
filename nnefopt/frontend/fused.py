"""Fused operations: a linear operation followed by its activation, as one operation.

Each is an NNEF fragment with a body (`conv_relu(...) = relu(conv(...))`), derived from
the standard signatures, so the op table, the dialect and the interpreter know it like
any other operation, and every reader of the NNEF nnefopt writes can evaluate it. An
activation's tensor parameters (clamp's bounds) become scalar attributes: a fused
operation only takes bounds that are known.
"""

from __future__ import annotations

from nnefopt.frontend import ast
from nnefopt.frontend.binder import is_tensor_type
from nnefopt.frontend.parser import parse_document
from nnefopt.frontend.printer import format_expr, format_identifier

# What fused operations start with; what they end with is every operation with the
# Activation trait (nnefopt.ops).
BASES = ("conv", "linear")


def fused_name(base: str, activation: str) -> str:
    return f"{base}_{activation}"


def _param(param: ast.Param, type_text: str | None = None) -> str:
    default = f" = {format_expr(param.default)}" if param.default is not None else ""
    return f"{format_identifier(param.name)}: {type_text or param.type}{default}"


def _fragment(base: ast.Fragment, activation: ast.Fragment) -> str:
    x, *extra = activation.params  # the activated tensor, then its parameters
    params = [_param(p) for p in base.params]
    params += [_param(p, "scalar" if is_tensor_type(p.type) else None) for p in extra]
    base_args = [p.name for p in base.params[:2]] + [f"{p.name} = {p.name}" for p in base.params[2:]]
    act_args = [f"{p.name} = {p.name}" for p in extra]
    result = base.results[0].name
    inner = f"{base.name}({', '.join(base_args)})"
    body = f"{activation.name}({', '.join([inner, *act_args])})"
    return (f"fragment {fused_name(base.name, activation.name)}( {', '.join(params)} ) "
            f"-> ( {result}: {base.results[0].type} )\n{{\n    {result} = {body};\n}}\n")


def fused_operations(signatures: dict[str, ast.Fragment], bases, activations) -> dict[str, ast.Fragment]:
    """The fused operations of each base with each activation, from their signatures."""
    text = "\n".join(_fragment(signatures[b], signatures[a]) for b in bases for a in activations)
    doc = parse_document(text, "<nnefopt>/fused", require_graph=False)
    return {fragment.name: fragment for fragment in doc.fragments}
