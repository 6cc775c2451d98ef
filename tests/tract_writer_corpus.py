"""A corpus written by tract's NNEF writer, made during the test run.

Small ONNX models built here with `onnx.helper` (one or a few operations each) and the
shared `model.onnx` files are loaded by tract (the `tract` Python package), turned into
its typed, decluttered model, and written by `tract.nnef().write_model_to_dir/tar/tar_gz`.
Some go through a tract transform first (`f32_to_f16`, a symbol left open, a pulse) and
some are written, read back by tract and written again (tract's NNEF → NNEF). The tests
read what tract wrote with nnefopt and compare its outputs with onnxruntime's.

Not a test file: `build_corpus(folder)` runs tract in a child interpreter (a Rust panic
must not take pytest down) and returns the cases it wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.models import SHARED

OPSET = 17
TIMEOUT_S = 300.0
FLOAT = TensorProto.FLOAT


@dataclass
class OnnxCase:
    """An ONNX model, its inputs, and how tract is asked to write it."""

    name: str
    model: onnx.ModelProto
    inputs: dict[str, np.ndarray]
    transform: str | None = None  # a tract transform applied before writing (JSON or name)
    tolerance: float = 1e-5  # atol; rtol is 1e-4 (f16 models state their own)


@dataclass
class WrittenCase:
    """One model as tract wrote it: where, and what it must compute."""

    name: str
    path: Path  # a folder, .tar or .tgz
    onnx_path: Path
    inputs: dict[str, np.ndarray]
    tolerance: float


# ---- the small ONNX models ----------------------------------------------------------------

def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _randn(rng, *shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def _model(nodes, inputs, outputs, initializers=(), opset=OPSET) -> onnx.ModelProto:
    """`inputs`/`outputs`: (name, shape) pairs of f32 tensors, or (name, shape, elem type)."""

    def info(spec):
        name, shape, *rest = spec
        return helper.make_tensor_value_info(name, rest[0] if rest else FLOAT, shape)

    graph = helper.make_graph(
        list(nodes), "g", [info(i) for i in inputs], [info(o) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), name=k) for k, v in dict(initializers).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _unary(op, shape=(2, 3, 4), seed=0, **attributes) -> tuple[onnx.ModelProto, dict]:
    x = _randn(_rng(seed), *shape)
    model = _model([helper.make_node(op, ["x"], ["y"], **attributes)], [("x", shape)], [("y", None)])
    return model, {"x": x}


def small_cases() -> list[OnnxCase]:
    rng = _rng(1)
    cases: list[OnnxCase] = []

    def add(name, model, inputs, **kw):
        cases.append(OnnxCase(name, model, inputs, **kw))

    x = _randn(rng, 1, 3, 8, 8)
    add("conv", _model(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1], strides=[1, 1]),
         helper.make_node("Relu", ["y"], ["z"])],
        [("x", x.shape)], [("z", None)], {"w": _randn(rng, 4, 3, 3, 3), "b": _randn(rng, 4)}), {"x": x})
    add("conv_strided_grouped", _model(
        [helper.make_node("Conv", ["x", "w"], ["y"], group=3, strides=[2, 2], dilations=[1, 2],
                          pads=[0, 1, 1, 0])],
        [("x", x.shape)], [("y", None)], {"w": _randn(rng, 6, 1, 3, 2)}), {"x": x})
    a = _randn(rng, 2, 5)
    add("gemm", _model(
        [helper.make_node("Gemm", ["a", "b", "c"], ["y"], transB=1, alpha=0.5, beta=2.0)],
        [("a", a.shape)], [("y", None)], {"b": _randn(rng, 3, 5), "c": _randn(rng, 3)}), {"a": a})
    a, b = _randn(rng, 2, 3, 4), _randn(rng, 4, 5)
    add("matmul", _model([helper.make_node("MatMul", ["a", "b"], ["y"])],
                         [("a", a.shape), ("b", b.shape)], [("y", None)]), {"a": a, "b": b})
    a, b = _randn(rng, 2, 3, 4), _randn(rng, 3, 1)
    add("add_mul_broadcast", _model(
        [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Mul", ["s", "c"], ["m"]),
         helper.make_node("Sub", ["m", "b"], ["d"]), helper.make_node("Div", ["d", "k"], ["y"])],
        [("a", a.shape), ("b", b.shape)], [("y", None)],
        {"c": _randn(rng, 4), "k": np.array([2.0, 4.0, -1.0, 0.5], np.float32)}), {"a": a, "b": b})
    x = _randn(rng, 2, 6)
    add("activations", _model(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Sigmoid", ["x"], ["s"]),
         helper.make_node("Tanh", ["x"], ["t"]), helper.make_node("Add", ["r", "s"], ["u"]),
         helper.make_node("Mul", ["u", "t"], ["y"])],
        [("x", x.shape)], [("y", None)]), {"x": x})
    for name, op, kw in [("softmax", "Softmax", {"axis": -1}), ("exp", "Exp", {}), ("abs", "Abs", {}),
                         ("leaky_relu", "LeakyRelu", {"alpha": 0.1}), ("elu", "Elu", {})]:
        model, inputs = _unary(op, seed=len(cases), **kw)
        add(name, model, inputs)
    x = _randn(rng, 2, 3, 4)
    add("reshape_transpose", _model(
        [helper.make_node("Reshape", ["x", "shape"], ["r"]),
         helper.make_node("Transpose", ["r"], ["y"], perm=[2, 0, 1])],
        [("x", x.shape)], [("y", None)], {"shape": np.array([6, 2, 2], np.int64)}), {"x": x})
    a, b = _randn(rng, 2, 3), _randn(rng, 2, 5)
    add("concat_split", _model(
        [helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
         helper.make_node("Split", ["c", "sizes"], ["p", "q"], axis=1),
         helper.make_node("Mul", ["p", "p"], ["y"]), helper.make_node("Neg", ["q"], ["z"])],
        [("a", a.shape), ("b", b.shape)], [("y", None), ("z", None)],
        {"sizes": np.array([4, 4], np.int64)}), {"a": a, "b": b})
    x = _randn(rng, 3, 8, 5)
    add("slice", _model(
        [helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"])],
        [("x", x.shape)], [("y", None)],
        {"starts": np.array([1, 0], np.int64), "ends": np.array([7, 4], np.int64),
         "axes": np.array([1, 2], np.int64), "steps": np.array([2, 1], np.int64)}), {"x": x})
    x = _randn(rng, 1, 2, 7, 7)
    add("pools", _model(
        [helper.make_node("MaxPool", ["x"], ["m"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
         helper.make_node("AveragePool", ["x"], ["a"], kernel_shape=[2, 2], strides=[2, 2]),
         helper.make_node("GlobalAveragePool", ["x"], ["g"])],
        [("x", x.shape)], [("m", None), ("a", None), ("g", None)]), {"x": x})
    x = _randn(rng, 2, 3, 4, 4)
    add("batchnorm", _model(
        [helper.make_node("BatchNormalization", ["x", "s", "b", "mean", "var"], ["y"], epsilon=1e-3)],
        [("x", x.shape)], [("y", None)],
        {"s": _randn(rng, 3), "b": _randn(rng, 3), "mean": _randn(rng, 3),
         "var": np.abs(_randn(rng, 3)) + 0.5}), {"x": x})
    x = _randn(rng, 2, 3, 4)
    add("reduce", _model(
        [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=1),
         helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0),
         helper.make_node("ReduceMax", ["x"], ["x_max"], axes=[0, 2], keepdims=1),
         helper.make_node("ReduceMin", ["x"], ["x_min"], axes=[2], keepdims=0)],
        [("x", x.shape)], [("m", None), ("s", None), ("x_max", None), ("x_min", None)],
        {"axes": np.array([2], np.int64)}), {"x": x})
    # Values that f16 rounds: a copy in place of the casts would give a different result.
    x = (_randn(rng, 4, 5) * 3.0 + 1 / 3).astype(np.float32)
    add("cast_f16", _model(
        [helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16),
         helper.make_node("Cast", ["h"], ["y"], to=FLOAT)],
        [("x", x.shape)], [("y", None)]), {"x": x}, tolerance=0.0)
    x = _randn(rng, 5, 4)
    add("gather", _model(
        [helper.make_node("Gather", ["x", "idx"], ["y"], axis=0)],
        [("x", x.shape)], [("y", None)], {"idx": np.array([4, 0, 2, 2], np.int64)}), {"x": x})
    x = _randn(rng, 1, 2, 3, 3)
    add("pad", _model(
        [helper.make_node("Pad", ["x", "pads", "value"], ["y"], mode="constant")],
        [("x", x.shape)], [("y", None)],
        {"pads": np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64), "value": np.array(0.5, np.float32)}), {"x": x})
    add("pad_reflect", _model(
        [helper.make_node("Pad", ["x", "pads"], ["y"], mode="reflect")],
        [("x", x.shape)], [("y", None)], {"pads": np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)}), {"x": x})
    x = _randn(rng, 1, 2, 3, 4)
    for mode in ("nearest", "linear"):
        add(f"resize_{mode}", _model(
            [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode=mode)],
            [("x", x.shape)], [("y", None)], {"scales": np.array([1, 1, 2, 2], np.float32)}), {"x": x})
    x = _randn(rng, 2, 3, 8)
    add("layernorm", _model(
        [helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1, epsilon=1e-5)],
        [("x", x.shape)], [("y", None)], {"g": _randn(rng, 8), "b": _randn(rng, 8)}), {"x": x})
    x = _randn(rng, 3, 7)
    # erf on its own: tract finds gelu in x * 0.5 * (1 + erf(x / sqrt 2)) and cannot write it.
    add("erf", _model(
        [helper.make_node("Mul", ["x", "k"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
         helper.make_node("Add", ["e", "x"], ["y"])],
        [("x", x.shape)], [("y", None)], {"k": np.array(0.7, np.float32)}), {"x": x})
    x = _randn(rng, 2, 3)
    add("constant_arrays", _model(
        [helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(
            np.array([[0.5, -1.0, 2.0]], np.float32))),
         helper.make_node("Constant", [], ["s"], value=numpy_helper.from_array(np.array(3.0, np.float32))),
         helper.make_node("Mul", ["x", "k"], ["m"]), helper.make_node("Add", ["m", "s"], ["y"])],
        [("x", x.shape)], [("y", None)]), {"x": x})
    x = _randn(rng, 2, 3, 4)
    add("where_compare", _model(
        [helper.make_node("Greater", ["x", "zero"], ["c"]), helper.make_node("Neg", ["x"], ["n"]),
         helper.make_node("Where", ["c", "x", "n"], ["y"])],
        [("x", x.shape)], [("y", None)], {"zero": np.array(0.0, np.float32)}), {"x": x})
    x = _randn(rng, 2, 3, 4)
    add("sqrt_pow_clip", _model(
        [helper.make_node("Abs", ["x"], ["a"]), helper.make_node("Sqrt", ["a"], ["r"]),
         helper.make_node("Pow", ["x", "two"], ["p"]), helper.make_node("Add", ["r", "p"], ["s"]),
         helper.make_node("Clip", ["s", "lo", "hi"], ["y"])],
        [("x", x.shape)], [("y", None)],
        {"two": np.array(2.0, np.float32), "lo": np.array(0.2, np.float32), "hi": np.array(1.5, np.float32)}),
        {"x": x})
    x = _randn(rng, 1, 2, 6)
    add("conv1d_deconv", _model(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1]),
         helper.make_node("ConvTranspose", ["c", "wt"], ["y"], strides=[2])],
        [("x", x.shape)], [("y", None)], {"w": _randn(rng, 3, 2, 3), "wt": _randn(rng, 3, 2, 2)}), {"x": x})
    x = _randn(rng, 2, 3, 4)
    add("squeeze_unsqueeze_flatten", _model(
        [helper.make_node("Unsqueeze", ["x", "ax"], ["u"]), helper.make_node("Squeeze", ["u", "ax"], ["s"]),
         helper.make_node("Flatten", ["s"], ["y"], axis=1)],
        [("x", x.shape)], [("y", None)], {"ax": np.array([1], np.int64)}), {"x": x})
    # A cumulative sum over the sequence axis: an ONNX Scan, which tract keeps as a scan.
    body = helper.make_graph(
        [helper.make_node("Add", ["acc_in", "x_t"], ["acc_out"]),
         helper.make_node("Identity", ["acc_out"], ["y_t"])], "body",
        [helper.make_tensor_value_info("acc_in", FLOAT, [3]), helper.make_tensor_value_info("x_t", FLOAT, [3])],
        [helper.make_tensor_value_info("acc_out", FLOAT, [3]), helper.make_tensor_value_info("y_t", FLOAT, [3])])
    x = _randn(rng, 5, 3)
    add("scan_cumsum", _model(
        [helper.make_node("Scan", ["init", "x"], ["last", "ys"], body=body, num_scan_inputs=1)],
        [("x", x.shape)], [("last", None), ("ys", None)], {"init": np.zeros(3, np.float32)}), {"x": x})
    # A recurrence beyond cumsum: two scanned inputs (one backward, one along axis 1), one
    # the body reads whole (`full`, from the outer scope), a state, and an output gathered
    # backward as well as the state's last value.
    body = helper.make_graph(
        [helper.make_node("Mul", ["h_in", "w"], ["hw"]), helper.make_node("Add", ["hw", "a_t"], ["s"]),
         helper.make_node("Tanh", ["s"], ["t"]), helper.make_node("Sub", ["t", "b_t"], ["h_out"]),
         helper.make_node("Mul", ["h_out", "a_t"], ["y_t"])], "body",
        [helper.make_tensor_value_info(n, FLOAT, [3]) for n in ("h_in", "a_t", "b_t")],
        [helper.make_tensor_value_info(n, FLOAT, [3]) for n in ("h_out", "y_t")])
    h0, a, b, w = _randn(rng, 3), _randn(rng, 6, 3), _randn(rng, 3, 6), _randn(rng, 3)
    add("scan_recurrence", _model(
        [helper.make_node("Scan", ["h0", "a", "b"], ["h_last", "ys"], body=body, num_scan_inputs=2,
                          scan_input_directions=[1, 0], scan_input_axes=[0, 1], scan_output_directions=[1])],
        [("h0", h0.shape), ("a", a.shape), ("b", b.shape), ("w", w.shape)], [("h_last", None), ("ys", None)]),
        {"h0": h0, "a": a, "b": b, "w": w})
    # Symbolic dims: the batch N stays a symbol in what tract writes (`extension tract_symbol`).
    x = _randn(rng, 3, 4)
    add("symbolic_batch", _model(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])],
        [("x", ["N", 4])], [("y", ["N", 2])], {"w": _randn(rng, 4, 2)}), {"x": x})
    # A streaming symbol S over time, as tract's pulsed models have it.
    x = _randn(rng, 1, 2, 9)
    add("streaming_symbol", _model(
        [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Relu", ["c"], ["y"])],
        [("x", [1, 2, "S"])], [("y", [1, 3, "S - 2"])], {"w": _randn(rng, 3, 2, 3)}), {"x": x})
    add("pulsed", _model(
        [helper.make_node("Mul", ["x", "k"], ["m"]), helper.make_node("Tanh", ["m"], ["y"])],
        [("x", [1, "S", 3])], [("y", [1, "S", 3])], {"k": _randn(rng, 3)}), {"x": _randn(rng, 1, 4, 3)},
        transform=json.dumps({"name": "pulse", "pulse": "4", "symbol": "S"}))
    # tract's own f32 → f16 transform: casts at the interface, f16 arithmetic inside.
    x = _randn(rng, 2, 5)
    add("f32_to_f16", _model(
        [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1), helper.make_node("Tanh", ["g"], ["y"])],
        [("x", x.shape)], [("y", None)], {"w": _randn(rng, 3, 5), "b": _randn(rng, 3)}), {"x": x},
        transform="f32_to_f16", tolerance=1e-2)
    return cases


def shared_cases() -> list[OnnxCase]:
    """Every shared `model.onnx`, with its own input."""
    cases = []
    for folder in sorted(SHARED.iterdir()):
        onnx_file = folder / "model.onnx"
        if onnx_file.is_file():
            model = onnx.load(str(onnx_file))
            name = model.graph.input[0].name
            cases.append(OnnxCase(f"shared_{folder.name}", model, {name: np.load(folder / "input.npy")}))
    return cases


# ---- writing with tract, in a child -----------------------------------------------------------

# argv: the corpus folder, with cases.json listing (name, onnx file, output stem, transform).
_CHILD = r"""
import json, sys, traceback
from pathlib import Path
import tract

root = Path(sys.argv[1])
report = {}
for name, onnx_file, stem, transform, form in json.loads((root / "cases.json").read_text()):
    try:
        model = tract.onnx().load(onnx_file).into_model()
        if transform:
            model.transform(transform)
        nnef = tract.nnef().with_onnx().with_pulse().with_tract_transformers().with_tract_extra()
        writers = {"dir": (nnef.write_model_to_dir, ""), "tar": (nnef.write_model_to_tar, ".tar"),
                   "tgz": (nnef.write_model_to_tar_gz, ".tgz")}
        write, suffix = writers[form]
        target = root / (stem + suffix)
        write(model, target)
        report[name] = [str(target), None]
    except Exception as e:
        report[name] = [None, str(e).split("Stack backtrace")[0].strip()]
(root / "written.json").write_text(json.dumps(report))
"""

_REWRITE = r"""
import json, sys
from pathlib import Path
import tract

root = Path(sys.argv[1])
report = {}
for name, source, stem in json.loads((root / "rewrite.json").read_text()):
    try:
        nnef = tract.nnef().with_onnx().with_pulse().with_tract_transformers().with_tract_extra()
        model = nnef.load(source)
        target = root / (stem + ".tgz")
        nnef.write_model_to_tar_gz(model, target)
        report[name] = [str(target), None]
    except Exception as e:
        report[name] = [None, str(e).split("Stack backtrace")[0].strip()]
(root / "rewritten.json").write_text(json.dumps(report))
"""

FORMS = ("dir", "tar", "tgz")


def _run_child(script: str, root: Path) -> None:
    env = dict(os.environ, RUST_BACKTRACE="0", RUST_LIB_BACKTRACE="0")
    proc = subprocess.run([sys.executable, "-c", script, str(root)], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError(f"tract writer child exited with {proc.returncode}: {proc.stderr[-2000:]}")


def build_corpus(root: Path) -> tuple[list[WrittenCase], dict[str, str]]:
    """Write every case with tract under `root`; returns the written cases and, by name,
    tract's message for each case tract itself could not write."""
    root.mkdir(parents=True, exist_ok=True)
    cases = {c.name: c for c in small_cases() + shared_cases()}
    listing = []
    for index, case in enumerate(cases.values()):
        onnx_file = root / f"{case.name}.onnx"
        onnx.save(case.model, str(onnx_file))
        listing.append((case.name, str(onnx_file), f"{case.name}.nnef", case.transform, FORMS[index % len(FORMS)]))
    (root / "cases.json").write_text(json.dumps(listing))
    _run_child(_CHILD, root)
    report = json.loads((root / "written.json").read_text())
    written, refused = [], {}
    for name, (path, error) in report.items():
        case = cases[name]
        if path is None:
            refused[name] = error
            continue
        written.append(WrittenCase(name, Path(path), root / f"{name}.onnx", case.inputs, case.tolerance))
    # tract's NNEF → NNEF: what it wrote, read back by tract and written again.
    again = [(f"{w.name}@nnef", str(w.path), f"{w.name}.again") for w in written]
    (root / "rewrite.json").write_text(json.dumps(again))
    _run_child(_REWRITE, root)
    by_name = {w.name: w for w in written}
    for name, (path, error) in json.loads((root / "rewritten.json").read_text()).items():
        source = by_name[name.removesuffix("@nnef")]
        if path is None:
            refused[name] = error
            continue
        written.append(WrittenCase(name, Path(path), source.onnx_path, source.inputs, source.tolerance))
    return written, refused
