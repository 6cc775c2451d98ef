"""The operations nnefopt knows by name: the NNEF standard library, a few well-known
non-standard operations, and tract's core registry. Each is an NNEF text of fragment
declarations shipped with the package."""

from __future__ import annotations

from functools import cache
from importlib import resources

from nnefopt.frontend import ast
from nnefopt.frontend.parser import parse_document

STANDARD = "stdlib.nnef"
EXTRAS = "extensions.nnef"
TRACT_CORE = "tract_core.nnef"


@cache
def library(name: str) -> dict[str, ast.Fragment]:
    text = resources.files("nnefopt.frontend").joinpath(name).read_text(encoding="utf-8")
    doc = parse_document(text, f"<nnefopt>/{name}", require_graph=False)
    return {fragment.name: fragment for fragment in doc.fragments}


def standard_operations() -> dict[str, ast.Fragment]:
    return library(STANDARD)


# Operations the op table adds (nnefopt.ops): the fused operations of the fuse pass,
# and those a user registers.
_ADDED: dict[str, ast.Fragment] = {}
_EXTRAS: dict[str, ast.Fragment] = {}


def add_operations(fragments: dict[str, ast.Fragment]) -> None:
    _ADDED.update(fragments)
    if _EXTRAS:
        _EXTRAS.update(fragments)


def extra_operations() -> dict[str, ast.Fragment]:
    """Well-known non-standard operations, the fused operations of the fuse pass and the
    operations registered with nnefopt.ops.register_operation."""
    if not _EXTRAS:
        from nnefopt.ops import op_table  # the op table makes the fused operations

        op_table()
        _EXTRAS.update({**library(EXTRAS), **_ADDED})
    return _EXTRAS


def tract_operations() -> dict[str, ast.Fragment]:
    return library(TRACT_CORE)


def is_tract_dialect(extensions: list[ast.Extension]) -> bool:
    return any(e.name == "tract_registry" for e in extensions)


def known_operations(extensions: list[ast.Extension]) -> dict[str, ast.Fragment]:
    """Every signature a document with these extensions may call without defining it."""
    table = {**standard_operations(), **extra_operations()}
    if is_tract_dialect(extensions):
        table.update(tract_operations())
    return table
