"""The operations nnefopt knows by name: the NNEF standard library and tract's core
registry, each an NNEF text of fragment declarations shipped with the package."""

from __future__ import annotations

from functools import cache
from importlib import resources

from nnefopt.frontend import ast
from nnefopt.frontend.parser import parse_document

STANDARD = "stdlib.nnef"
TRACT_CORE = "tract_core.nnef"


@cache
def library(name: str) -> dict[str, ast.Fragment]:
    text = resources.files("nnefopt.frontend").joinpath(name).read_text(encoding="utf-8")
    doc = parse_document(text, f"<nnefopt>/{name}", require_graph=False)
    return {fragment.name: fragment for fragment in doc.fragments}


def standard_operations() -> dict[str, ast.Fragment]:
    return library(STANDARD)


def tract_operations() -> dict[str, ast.Fragment]:
    return library(TRACT_CORE)
