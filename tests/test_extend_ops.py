"""Adding operations through the op table alone (issue 11): an element-wise binary
operation and an activation, each given by its NNEF declaration and its numpy kernel,
are handled by shape inference, the interpreter, fold-constants, layout, fuse, the NNEF
exporter and the MLIR round trip, although no file of nnefopt names them."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import nnefopt
from nnefopt.dialects.layout import is_channel_last
from nnefopt.dialects.nnef import OPERATIONS
from nnefopt.errors import NNEFWarning
from nnefopt.frontend.loader import load_model
from nnefopt.frontend.tensor_file import write_tensor
from nnefopt.ops import op_table, register_operation
from nnefopt.passes.stats import operation_histogram
from nnefopt.traits import Activation, ElementWise

BINARY = "fragment hypot2( x: tensor<scalar>, y: tensor<scalar> ) -> ( z: tensor<scalar> );"
ACTIVATION = "fragment softsign_x( x: tensor<scalar> ) -> ( y: tensor<scalar> );"


def hypot2(x, y):
    return np.sqrt(np.square(x, dtype=np.float32) + np.square(y, dtype=np.float32)).astype(np.float32)


def softsign_x(x):
    return (x / (1 + np.abs(x))).astype(np.float32)


GRAPH = """version 1.0;

graph G( x ) -> ( y, z )
{
    x = external<scalar>(shape = [1, 3, 6, 6]);
    w1 = variable<scalar>(shape = [4, 3, 3, 3], label = 'w1');
    b1 = variable<scalar>(shape = [1, 4], label = 'b1');
    w2 = variable<scalar>(shape = [4, 4, 1, 1], label = 'w2');
    u = constant<scalar>(shape = [1, 4, 1, 1], value = [3.0, -6.0, 0.0, 1.5]);
    v = constant<scalar>(shape = [1, 4, 1, 1], value = [4.0, 8.0, 2.0, 2.0]);
    c1 = conv(x, w1, b1, padding = [(1, 1), (1, 1)]);
    a1 = softsign_x(c1);
    c2 = conv(a1, w2);
    h = hypot2(c2, a1);
    y = conv(h, w2);
    s = hypot2(u, v);
    t = softsign_x(s);
    z = mul(y, t);
}
"""


@pytest.fixture(scope="module")
def registered():
    """Registering is idempotent: the same declaration and kernel give the same entry,
    so other test modules (and a second run of this one) see one operation each."""
    first = (register_operation(BINARY, hypot2, traits=(ElementWise,)),
             register_operation(ACTIVATION, softsign_x, traits=(Activation,)))
    again = (register_operation(BINARY, hypot2, traits=(ElementWise,)),
             register_operation(ACTIVATION, softsign_x, traits=(Activation,)))
    assert first == again
    return first


@pytest.fixture
def folder(tmp_path, registered) -> Path:
    rng = np.random.default_rng(7)
    (tmp_path / "graph.nnef").write_text(GRAPH)
    write_tensor(tmp_path / "w1.dat", rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    write_tensor(tmp_path / "b1.dat", rng.standard_normal((1, 4)).astype(np.float32))
    write_tensor(tmp_path / "w2.dat", rng.standard_normal((4, 4, 1, 1)).astype(np.float32))
    return tmp_path


def _load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)  # the operations are not declared in the file
        return nnefopt.load(path)


def _ops(module):
    graph = next(op for op in module.ops if op.name == "nnef.graph")
    return list(graph.body.block.ops)


def _counts(module) -> Counter:
    return Counter(op.name for op in _ops(module))


def _reference(folder: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """The graph computed with numpy: the shipped conv kernel, the new operations by hand."""
    conv = op_table()["conv"].kernel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        model = load_model(folder)
    data = {name: np.asarray(model.tensors[name].data) for name in ("w1", "b1", "w2")}
    c1 = conv(x, data["w1"], data["b1"], padding=[(1, 1), (1, 1)])
    a1 = c1 / (1 + np.abs(c1))
    c2 = conv(a1, data["w2"])
    h = np.sqrt(c2 * c2 + a1 * a1)
    y = conv(h, data["w2"])
    u = np.array([3.0, -6.0, 0.0, 1.5], np.float32).reshape(1, 4, 1, 1)
    v = np.array([4.0, 8.0, 2.0, 2.0], np.float32).reshape(1, 4, 1, 1)
    s = np.sqrt(u * u + v * v)
    return {"y": y, "z": y * (s / (1 + s))}


def _input() -> np.ndarray:
    return np.random.default_rng(11).standard_normal((1, 3, 6, 6)).astype(np.float32)


def _assert_runs_like_numpy(module, folder):
    x = _input()
    got = nnefopt.run(module, {"x": x})
    want = _reference(folder, x)
    for name in ("y", "z"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5)


def test_the_entries_and_classes_come_from_the_declarations(registered):
    binary, activation = registered
    assert binary.kernel is hypot2 and activation.kernel is softsign_x
    assert OPERATIONS["hypot2"].has_trait(ElementWise)
    assert OPERATIONS["softsign_x"].has_trait(Activation) and OPERATIONS["softsign_x"].has_trait(ElementWise)
    assert {"conv_softsign_x", "linear_softsign_x"} <= set(OPERATIONS) <= set(op_table())
    cost = binary.cost([(1, 4, 6, 6), (1, 4, 6, 6)], [(1, 4, 6, 6)])
    assert cost.flops == 144 and cost.bytes_read == 2 * 144 * 4 and cost.bytes_written == 144 * 4


def test_shape_inference_gives_their_shapes(folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        model = load_model(folder)
    shapes = {name: model.tensors[name].shape for name in ("a1", "h", "s", "t", "z")}
    assert shapes == {"a1": (1, 4, 6, 6), "h": (1, 4, 6, 6), "s": (1, 4, 1, 1), "t": (1, 4, 1, 1),
                      "z": (1, 4, 6, 6)}
    module = _load(folder)
    hypots = [op for op in _ops(module) if op.name == "nnef.hypot2"]
    assert [list(op.results[0].type.get_shape()) for op in hypots] == [[1, 4, 6, 6], [1, 4, 1, 1]]


def test_the_interpreter_runs_them(folder):
    _assert_runs_like_numpy(_load(folder), folder)


def test_fold_constants_folds_them_on_known_operands(folder):
    module = _load(folder)
    before = _counts(module)
    nnefopt.optimize(module, "fold-constants")
    after = _counts(module)
    # s = hypot2(u, v) and t = softsign_x(s) are computed now; those of x stay
    assert (before["nnef.hypot2"], after["nnef.hypot2"]) == (2, 1)
    assert (before["nnef.softsign_x"], after["nnef.softsign_x"]) == (2, 1)
    _assert_runs_like_numpy(module, folder)


def test_layout_sinks_transposes_through_the_elementwise_operation(folder):
    module = _load(folder)
    nnefopt.optimize(module, "fold-constants,layout")
    ops = _ops(module)
    tagged = [op for op in ops if is_channel_last(op)]
    assert len(tagged) == 3  # the three convolutions
    # one transpose after the input and one before each graph output (y, z): none around
    # hypot2 or softsign_x, which compute channel-last between the convolutions
    transposes = [op for op in ops if op.name == "nnef.transpose"]
    assert len(transposes) == 3
    for op in transposes:
        at_input = op.operands[0].owner.name == "nnef.external"
        at_output = any(u.operation.name == "nnef.return" for u in op.results[0].uses)
        assert at_input or at_output
    hypot = next(op for op in ops if op.name == "nnef.hypot2")
    assert list(hypot.results[0].type.get_shape()) == [1, 6, 6, 4]
    assert all(u.operation.name != "nnef.transpose" for u in hypot.results[0].uses)
    _assert_runs_like_numpy(module, folder)


def test_fuse_fuses_the_activation_into_the_convolution(folder):
    module = _load(folder)
    nnefopt.optimize(module, "fold-constants,fuse")
    counts = _counts(module)
    assert counts["nnef.conv_softsign_x"] == 1 and counts["nnef.softsign_x"] == 0
    _assert_runs_like_numpy(module, folder)
    nnefopt.optimize(module, "layout")  # the fused convolution is channel-last capable as conv is
    assert any(op.name == "nnef.conv_softsign_x" and is_channel_last(op) for op in _ops(module))
    _assert_runs_like_numpy(module, folder)


def test_nnef_export_writes_and_reads_them_back(folder, tmp_path):
    module = nnefopt.optimize(_load(folder), "fold-constants,fuse,layout")
    nnefopt.save(module, tmp_path / "out")
    text = (tmp_path / "out" / "graph.nnef").read_text()
    assert "hypot2(" in text and "conv_softsign_x(" in text and "transpose" not in text
    again = _load(tmp_path / "out")
    # the file declares what it calls beyond the standard (as for erf and conv_relu)
    histogram = operation_histogram(again)
    assert histogram["hypot2"] == 1 and histogram["conv_softsign_x"] == 1
    _assert_runs_like_numpy(again, folder)


def test_mlir_print_and_parse_round_trip(folder):
    module = nnefopt.optimize(_load(folder), "fuse,layout")
    text = nnefopt.to_mlir(module)
    assert "nnef.hypot2" in text and "nnef.conv_softsign_x" in text
    parsed = nnefopt.parse_mlir(nnefopt.to_mlir(module, weights=True))  # the text carries the weights
    assert nnefopt.to_mlir(parsed) == text
    assert _counts(parsed) == _counts(module)
    generic = nnefopt.to_mlir(module, generic=True, weights=True)
    assert nnefopt.to_mlir(nnefopt.parse_mlir(generic)) == text
    _assert_runs_like_numpy(parsed, folder)


def test_no_other_file_knows_their_names():
    root = Path(__file__).resolve().parent.parent
    knowing = []
    for path in [*(root / "nnefopt").rglob("*"), *(root / "lit_tests").rglob("*"), *(root / "tests").rglob("*")]:
        if path.is_file() and path.suffix in (".py", ".nnef", ".mlir", ".txt") and path != Path(__file__).resolve():
            text = path.read_text(encoding="utf-8", errors="replace")
            if "hypot2" in text or "softsign_x" in text:
                knowing.append(path)
    assert knowing == []
