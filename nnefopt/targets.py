"""The output forms nnef-opt writes (targets): `--emit`, `-o`'s suffix and `api.save`
look them up here; `register_target` adds one (the C emitter, a graph drawing, ...).

A target has an export pipeline, a named pipeline (`export-<name>`, which `-p` can run
too) that turns the optimized module into what the form expresses; it runs on a copy,
so the caller's module is left as it is. Then the target writes the copy to a path (all
or nothing) or, if it has a text form, gives the text standard output shows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from xdsl.dialects.builtin import ModuleOp

from nnefopt.errors import Location, NNEFError
from nnefopt.frontend.bundle import ARCHIVE_SUFFIXES


@dataclass(frozen=True)
class EmitOptions:
    keep_spelling: bool = False  # write the operations as the IR has them: no spelling passes
    generic: bool = False  # MLIR in the generic operation format
    weights: bool = False  # MLIR text carries the weights (in a file or a pipe, not on a terminal)
    c_prefix: str = "model"  # the c target's file and symbol names (model.h, model_run)
    # The module before the passes: a picture colours what they changed (--diff).
    before: ModuleOp | None = dataclasses.field(default=None, compare=False)


# Passes that only respell operations for other engines; `keep_spelling` leaves them out.
SPELLING_PASSES = ("portable-spelling",)


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    write: Callable[[ModuleOp, Path, EmitOptions], None]  # the exported copy to a path, atomically
    suffixes: tuple[str, ...] = ()  # output names that select it; "" stands for any other name (a folder)
    export_pipeline: str = ""
    text: Callable[[ModuleOp, EmitOptions], str] | None = None  # the form on standard output
    text_keeps_spelling: bool = False  # text alone has no place for what the spelling passes add
    shows_changes: bool = False  # draws what passes changed against EmitOptions.before

    @property
    def pipeline_name(self) -> str:
        return f"export-{self.name}"

    def pipeline(self, options: EmitOptions) -> str:
        if not options.keep_spelling or not self.export_pipeline:
            return self.export_pipeline
        from xdsl.utils.arg_spec import parse_pipeline as parse_specs

        return ",".join(str(s) for s in parse_specs(self.export_pipeline) if s.name not in SPELLING_PASSES)

    def exported(self, module: ModuleOp, options: EmitOptions) -> ModuleOp:
        """The module as this target writes it: a copy through the export pipeline (the
        module itself when there is none)."""
        spec = self.pipeline(options)
        if not spec:
            return module
        from nnefopt.api import optimize

        copy = module.clone()
        optimize(copy, spec, verify_each=False)
        return copy

    def save(self, module: ModuleOp, path: str | Path, options: EmitOptions = EmitOptions()) -> None:
        self.write(self.exported(module, options), Path(path), options)

    def render(self, module: ModuleOp, options: EmitOptions = EmitOptions()) -> str:
        if self.text is None:
            raise NNEFError(f"the '{self.name}' form has no text for standard output: write it with -o")
        if self.text_keeps_spelling:
            options = dataclasses.replace(options, keep_spelling=True)
        return self.text(self.exported(module, options), options)


TARGETS: dict[str, Target] = {}

# Without a name: standard output shows MLIR, and a path whose suffix no target claims
# gets the target claiming "" (an NNEF folder).
STDOUT_TARGET = "mlir"


def register_target(target: Target) -> Target:
    """Make a target available by its name; its export pipeline becomes `export-<name>`."""
    from nnefopt.passes import PIPELINES

    TARGETS[target.name] = target
    if target.export_pipeline:
        PIPELINES[target.pipeline_name] = target.export_pipeline
    return target


def target_names() -> list[str]:
    return list(TARGETS)


def target_for(name: str | None = None, path: str | Path | None = None) -> Target:
    """The target called `name`; without one, the target whose suffix ends `path` (the
    longest that does), or the one for standard output when there is no path."""
    if name is not None:
        target = TARGETS.get(name)
        if target is None:
            raise NNEFError(f"unknown output form '{name}' (registered: {', '.join(TARGETS)})")
        return target
    if path is None:
        return TARGETS[STDOUT_TARGET]
    file_name = Path(path).name
    claims = [(len(s), t) for t in TARGETS.values() for s in t.suffixes if file_name.endswith(s)]
    if not claims:
        raise NNEFError("no output form writes this kind of file; name one with --emit", Location(str(path)))
    return max(claims, key=lambda claim: claim[0])[1]


def describe_targets() -> list[str]:
    return [f"{t.name:<8} {t.description}" + (f" ({', '.join(s for s in t.suffixes if s)})" if any(t.suffixes) else "")
            for t in TARGETS.values()]


# ---- the built-in targets ----------------------------------------------------------------


def _write_nnef(module: ModuleOp, path: Path, options: EmitOptions) -> None:
    from nnefopt.export.folder import save_model
    from nnefopt.export.from_ir import export_module

    save_model(export_module(module), path)


def _nnef_text(module: ModuleOp, options: EmitOptions) -> str:
    from nnefopt.export.from_ir import export_module
    from nnefopt.export.nnef_text import format_model

    return format_model(export_module(module))


def _write_mlir(module: ModuleOp, path: Path, options: EmitOptions) -> None:
    from nnefopt.api import to_mlir
    from nnefopt.export.mlir_weights import require_weights
    from nnefopt.export.text_file import write_text

    require_weights(module)  # a file of the model without its weights would be data lost
    write_text(path, to_mlir(module, generic=options.generic, weights=True))


def _mlir_text(module: ModuleOp, options: EmitOptions) -> str:
    from nnefopt.api import to_mlir

    return to_mlir(module, generic=options.generic, weights=options.weights)


# NNEF is channel-first, in standard operations; written in the spelling every engine
# reads alike unless asked to keep the IR's.
register_target(Target(
    "nnef", "NNEF folder or archive (graph.nnef, graph.quant, .dat weights)", _write_nnef,
    suffixes=("", *ARCHIVE_SUFFIXES),
    export_pipeline="lower-tract,layout{to=nchw},portable-spelling",
    text=_nnef_text, text_keeps_spelling=True))
register_target(Target(
    "mlir", "MLIR text of the nnef dialect; a file carries its weights", _write_mlir,
    suffixes=(".mlir",), text=_mlir_text))


def _dot_text(module: ModuleOp, options: EmitOptions) -> str:
    from nnefopt.export.dot import module_to_dot

    return module_to_dot(module, options.before)


def _svg_text(module: ModuleOp, options: EmitOptions) -> str:
    from nnefopt.export.graphviz import render

    return render(_dot_text(module, options), "svg")


def _text_writer(text: Callable[[ModuleOp, EmitOptions], str]) -> Callable[[ModuleOp, Path, EmitOptions], None]:
    def write(module: ModuleOp, path: Path, options: EmitOptions) -> None:
        from nnefopt.export.text_file import write_text

        write_text(path, text(module, options))  # made whole first: a failed drawing writes nothing

    return write


# Pictures show the IR as the passes left it (fused, channel-last): no export pipeline.
register_target(Target(
    "dot", "the graph as Graphviz dot text (ops, attributes, shapes; weights inside their users)",
    _text_writer(_dot_text), suffixes=(".dot", ".gv"), text=_dot_text, shows_changes=True))
register_target(Target(
    "svg", "the graph drawn as SVG by Graphviz's dot program (Debian package graphviz)",
    _text_writer(_svg_text), suffixes=(".svg",), text=_svg_text, shows_changes=True))


def _write_c(module: ModuleOp, path: Path, options: EmitOptions) -> None:
    from nnefopt.emit_c import write

    write(module, path, options.c_prefix)


# C is channel-first (the graph's own layout) and in standard operations, for now.
register_target(Target(
    "c", "a C99 library folder: model.h, model.c, weights, Makefile, main.c (compile every .c and .S)",
    _write_c, export_pipeline="lower-tract,layout{to=nchw}"))
