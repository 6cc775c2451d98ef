"""The Python API: load a model into the `nnef` dialect, print it, save it."""

from __future__ import annotations

import gc
import io
import sys
from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import Builtin, ModuleOp
from xdsl.parser import Parser
from xdsl.utils.exceptions import ParseError, VerifyException

from nnefopt.errors import Location, NNEFError
from nnefopt.export.from_ir import export_module
from nnefopt.frontend.loader import load_model
from nnefopt.importer import context, import_model


def load(path: str | Path, *, strict: bool = False) -> ModuleOp:
    """An NNEF folder, graph file or archive, MLIR text (`.mlir`, or `-` for stdin), or an
    ONNX or TFLite model (`.onnx`, `.tflite`: converted by nnef-tools, the `convert` extra)."""
    text_path = str(path)
    if text_path == "-" or text_path.endswith(".mlir"):
        text = sys.stdin.read() if text_path == "-" else _read(Path(path))
        return parse_mlir(text, "<stdin>" if text_path == "-" else text_path)
    return import_model(load_model(path, strict=strict))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NNEFError(str(exc), Location(str(path))) from None


def parse_mlir(text: str, name: str = "<string>") -> ModuleOp:
    """A module from MLIR text, in the custom format `to_mlir` prints, the generic one,
    or both mixed."""
    from nnefopt.export.mlir_weights import adopt_weights
    from nnefopt.mlir_text import check_attributes, check_registries, check_string_literals, strings_as_read

    check_string_literals(text, name)
    parser = None
    try:
        parser = Parser(context(), text, name)  # it reads the first token already
        try:
            module = parser.parse_module()
        except VerifyException as exc:
            # The custom format checks what it reads (a tensor type for an operand, the
            # number of types) while it reads: an error at the place reached.
            parser.raise_error(str(exc))
        strings_as_read(module)
        module.verify()
        check_attributes(module, name)
        check_registries(module, name)
        adopt_weights(module)
    except ParseError as exc:
        # The place where xDSL's parser stopped, and its message alone (its text adds the
        # source lines and carets).
        place = exc.span.get_location()
        message = " ".join(str(exc.msg).split()) or "cannot parse MLIR"
        raise NNEFError(message, Location(place.file, place.line, int(place.col))) from None
    except NNEFError:
        raise
    except Exception as exc:  # xDSL's verifier raises its own exception types
        raise NNEFError(f"invalid module: {exc}", Location(name)) from None
    finally:
        if parser is not None:
            _forget_resource_handles(parser)
    return module


def _forget_resource_handles(parser: Parser) -> None:
    """xDSL's builtin dialect remembers, process-wide, every `dense_resource` handle (and
    blob) it has parsed, and renames a handle it meets again (`w` becomes `w_0`): reading
    the same text twice would rename its weights, and the blobs would stay in memory for
    good. The module's attributes hold the arrays now: forget the handles once read."""
    from nnefopt.export.mlir_weights import forget

    forget(key for dialect, key in parser.dialect_resources if dialect == "builtin")


def optimize(module: ModuleOp, pipeline: str, *, verify_each: bool = True, callback=None) -> ModuleOp:
    """Run an xDSL pass pipeline (`"cse,dce"`) on the module, in place; returns it."""
    from nnefopt.passes import parse_pipeline

    def between(previous, op, following):
        if verify_each and previous is not None:
            try:
                op.verify()
            except Exception as exc:
                raise NNEFError(f"the IR is invalid after pass '{previous.name}': {exc}") from None
        if callback is not None:
            callback(previous, op, following)

    passes = parse_pipeline(pipeline, between)
    # The module is a large graph of long-lived objects, and passes allocate many small
    # ones: the cyclic collector, re-scanning the whole heap on each full collection,
    # made pass time grow faster than the model. It runs once, after the pipeline.
    enabled = gc.isenabled()
    gc.disable()
    try:
        passes.apply(context(), module)
    finally:
        if enabled:
            gc.enable()
    return module


def run(module: ModuleOp, inputs: dict[str, np.ndarray], *, record: bool = False, arithmetic: str = "integer",
        codes: bool = False) -> dict[str, np.ndarray]:
    """The module's outputs for `inputs` (by graph input name), by the reference interpreter;
    with `record`, every intermediate tensor too, by tensor name. The module is run as it
    is (channel-last operations as tagged), neither copied nor exported.

    Inputs are reals (a quantized input is quantized by its entry). A quantized
    conv/linear/matmul computes, with `arithmetic="integer"` (the default), what an int8
    engine computes (int32 accumulation, fixed-point requantization); with "float", the
    specification's simulation of graph.quant. With `codes`, outputs that carry a
    quantization entry are returned as their integer codes instead of reals."""
    from nnefopt.interp.ir_interpreter import run as run_module

    return run_module(module, inputs, record=record, arithmetic=arithmetic, codes=codes)


def to_mlir(module: ModuleOp, *, generic: bool = False, weights: bool = False) -> str:
    """The module as MLIR text with locations: in the dialects' custom format, or with
    `generic`, every operation in xDSL's generic format (mlir-opt's
    --mlir-print-op-generic); with `weights`, the weights' data as a trailing
    dialect_resources section. `parse_mlir` reads all of these."""
    from nnefopt.export.mlir_weights import declare_weights, forget, unique_handles
    from nnefopt.mlir_text import TextPrinter

    unique_handles(module)
    stream = io.StringIO()
    printer = TextPrinter(stream=stream, print_debuginfo=True, print_generic_format=generic)
    declared = declare_weights(module) if weights else []
    try:
        printer.print_op(module)
        if declared:
            stream.write("\n")
            printer.print_metadata([Builtin])
    finally:
        forget(declared)
    return stream.getvalue() + "\n"


def save(module: ModuleOp, path: str | Path, *, emit: str | None = "nnef", keep_spelling: bool = False,
         generic: bool = False, c_prefix: str = "model") -> None:
    """The module in the output form `emit` names (see `nnefopt.targets`; None: the form
    the path's suffix says), written all or nothing: an NNEF folder or archive, or MLIR
    text with its weights (in the generic format with `generic`), a C library folder
    (`emit="c"`, its files and symbols named `c_prefix`).

    NNEF is written in the spelling every engine reads alike (the portable-spelling
    pass: no `constant` or `deconv` operations); `keep_spelling` writes the operations
    exactly as the module has them."""
    from nnefopt.targets import EmitOptions, target_for

    target = target_for(emit, None if emit else path)
    target.save(module, path, EmitOptions(keep_spelling=keep_spelling, generic=generic, c_prefix=c_prefix))


def standard_model(module: ModuleOp, *, portable: bool = True):
    """The module as the model nnefopt writes: the nnef target's export pipeline (tract's
    operations in standard spelling, channel-first), and with `portable`, operations that
    engines read differently in a spelling they all read alike (the portable-spelling
    pass). The caller's module is left as it is."""
    from nnefopt.targets import EmitOptions, target_for

    return export_module(target_for("nnef").exported(module, EmitOptions(keep_spelling=not portable)))
