"""ONNX and TFLite models in, through nnef-tools' readers and converters (the optional
`convert` extra), into the same Model any NNEF input gives.

nnef-tools reads the file into its graph, converts that graph to NNEF operations and
writes an NNEF folder; the folder is then read as any other (a temporary one, removed
once read, as an unpacked archive is). Its optimizer and interpreter are not used (they
fail on numpy 2). Its ONNX converter takes only static shapes: a shape computed in the
graph (`Shape` → `Slice` → `Concat` → `Reshape`) is folded first, by onnx's reference
evaluator, since nnef-tools' own folding needs onnx-simplifier.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from pathlib import Path

from nnefopt.errors import Location, NNEFError

SUFFIXES = (".onnx", ".tflite")
EXTRA_HINT = "install nnefopt's 'convert' extra: pip install 'nnefopt[convert]'"


def is_convertible(path: str | Path) -> bool:
    return str(path).lower().endswith(SUFFIXES)


def convert_to_folder(path: Path, folder: Path) -> None:
    """Write the ONNX or TFLite model at `path` as an NNEF folder."""
    where = Location(str(path))
    if not path.is_file():
        raise NNEFError("no such file", where)
    try:
        from nnef_tools.conversion.converter import ConversionError
        from nnef_tools.io.nnef import Writer
    except ImportError as exc:
        raise NNEFError(f"reading {path.suffix} models needs nnef-tools ({exc.name} is missing); {EXTRA_HINT}",
                        where) from None
    onnx = path.suffix.lower() == ".onnx"
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # nnef-tools prints as it goes
            graph, converter = _read_onnx(path) if onnx else _read_tflite(path)
            graph.sort()
            graph = converter(graph)
            Writer(fragments=converter.defined_operations(),
                   fragment_dependencies=converter.defined_operation_dependencies(),
                   generate_custom_fragments=False, annotate_shapes=False, compression=None)(graph, str(folder))
    except ConversionError as exc:
        lines = [line.strip() for text in [str(exc), *(exc.details or [])] for line in str(text).splitlines()]
        raise NNEFError("nnef-tools cannot convert the model: " + "; ".join(line for line in lines if line),
                        where) from None
    except NNEFError:
        raise
    except Exception as exc:  # a reader's own failure on a damaged or unexpected file
        raise NNEFError(f"nnef-tools cannot read the model: {type(exc).__name__}: {exc}", where) from None


def _read_onnx(path: Path):
    from nnef_tools.conversion.onnx_to_nnef import Converter
    from nnef_tools.io.onnx import Reader

    converter = Converter(custom_transforms=None, custom_functions=None, custom_shapes={}, infer_shapes=False,
                          mirror_unsupported=False, keep_io_names=True, io_transpose=False)
    with tempfile.TemporaryDirectory(prefix="nnefopt-onnx-") as tmp:
        folded = Path(tmp) / "model.onnx"
        _fold_static_shapes(path, folded)
        return Reader(simplify=False)(str(folded)), converter


def _read_tflite(path: Path):
    from nnef_tools.conversion.tflite_to_nnef import Converter
    from nnef_tools.io.tf.lite import Reader

    converter = Converter(io_transpose=False, custom_transforms=None, custom_functions=None,
                          mirror_unsupported=False, keep_io_names=True)
    return Reader()(str(path)), converter


def _fold_static_shapes(path: Path, out: Path) -> None:
    """The ONNX model with every node computable before a run (a `Shape` of a static
    shape, anything of constants alone) replaced by an initializer holding its value."""
    import numpy as np
    import onnx
    from onnx import numpy_helper, shape_inference
    from onnx.reference import ReferenceEvaluator

    model = onnx.load(str(path))
    inferred = shape_inference.infer_shapes(model)
    graph = model.graph
    shapes = {}
    for info in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = info.type.tensor_type.shape.dim
        if info.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[info.name] = [d.dim_value for d in dims]
    known = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    graph_inputs = {i.name for i in graph.input} - set(known)
    kept, folded = [], []
    for node in graph.node:
        ins = [name for name in node.input if name]
        value = None
        if node.op_type == "Shape" and len(node.input) == 1 and node.input[0] in shapes and not node.attribute:
            value = [np.array(shapes[node.input[0]], dtype=np.int64)]
        elif node.op_type not in _NOT_FOLDED and node.domain in ("", "ai.onnx") and \
                all(n in known and n not in graph_inputs for n in ins) and \
                not any(a.type == onnx.AttributeProto.GRAPH for a in node.attribute):
            value = ReferenceEvaluator(node).run(None, {n: known[n] for n in ins})
        if value is None:
            kept.append(node)
            continue
        for name, array in zip(node.output, value):
            known[name] = np.asarray(array)
            folded.append(numpy_helper.from_array(np.asarray(array), name))
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for node in kept for name in node.input} | {o.name for o in graph.output}
    graph.initializer.extend(t for t in folded if t.name in used)
    onnx.save(model, str(out))


# Nodes whose value is not the same every run, or that stand for an input.
_NOT_FOLDED = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
                         "Bernoulli", "If", "Loop", "Scan"})


def open_converted(path: str | Path):
    """The converted model as a ModelSource (nnefopt.frontend.bundle): a temporary NNEF
    folder, removed when the source is closed; messages name the original file."""
    from nnefopt.frontend.bundle import ModelSource

    path = Path(path)
    folder = Path(tempfile.mkdtemp(prefix="nnefopt-convert-"))
    try:
        convert_to_folder(path, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return ModelSource(folder, folder / "graph.nnef", str(path), unpacked=folder)
