"""The shared test models (../shared/models beside the repository), as tests use them."""

from __future__ import annotations

import tarfile
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "models"
assert SHARED.is_dir(), f"the shared models are missing: expected {SHARED}"

MODELS = sorted(d.name for d in SHARED.iterdir() if d.is_dir())


def variants() -> list[tuple[str, Path]]:
    """(id, path) of every variant: model/kt, model/t2n folders and model/tract archives."""
    found = []
    for model in MODELS:
        for variant in ("kt", "t2n"):
            if (SHARED / model / variant / "graph.nnef").is_file():
                found.append((f"{model}/{variant}", SHARED / model / variant))
        if (SHARED / model / "tract.nnef.tgz").is_file():
            found.append((f"{model}/tract", SHARED / model / "tract.nnef.tgz"))
    return found


def kt_variants() -> list[tuple[str, Path]]:
    return [(name, path) for name, path in variants() if name.endswith("/kt")]


def graph_text(path: Path) -> str:
    if path.is_dir():
        return (path / "graph.nnef").read_text(encoding="utf-8")
    with tarfile.open(path) as tar:
        return tar.extractfile("graph.nnef").read().decode("utf-8")


def all_graph_texts() -> list[tuple[str, str]]:
    return [(name, graph_text(path)) for name, path in variants()]
