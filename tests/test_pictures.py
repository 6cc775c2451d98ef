"""Graph pictures: the dot and svg targets, what a node shows, --diff, a 200-operation
model, and the error when Graphviz is missing. (The dot text of a shared model is
checked with FileCheck in lit_tests/pictures.)"""

from __future__ import annotations

import re
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest

import nnefopt
from nnefopt.export.dot import module_to_dot, notable_attributes
from nnefopt.export.graphviz import render
from nnefopt.frontend.tensor_file import write_tensor
from nnefopt.targets import target_for
from tests.test_driver import run
from tests.test_targets import usage_error

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = str(ROOT / "examples" / "cnn_digits")
SVG = "{http://www.w3.org/2000/svg}"

WINDOWS = """version 1.0;
graph G( x ) -> ( y, z )
{
    x = external(shape = [1, 4, 8, 8]);
    w = variable(shape = [1, 4, 3, 3], label = 'w');
    c = conv(x, w, stride = [1, 1], padding = [(0, 0), (0, 0)], groups = 1);
    y = max_pool(c, size = [1, 1, 3, 3], stride = [1, 1, 2, 2], border = 'ignore');
    z = squeeze(c, axes = [1]);
}
"""


def _node_labels(dot: str) -> list[str]:
    return re.findall(r'^  n\d+ \[label="((?:[^"\\]|\\.)*)"', dot, re.M)


def _edges(dot: str) -> list[tuple[str, str, str]]:
    return re.findall(r'^  (\w+) -> (\w+) \[label="([^"]*)"', dot, re.M)


@pytest.fixture
def windows(tmp_path):
    folder = tmp_path / "windows"
    folder.mkdir()
    (folder / "graph.nnef").write_text(WINDOWS)
    write_tensor(folder / "w.dat", np.ones((1, 4, 3, 3), np.float32))
    return str(folder)


def test_suffix_and_emit_choose_the_picture_targets():
    assert target_for(path="g.dot").name == "dot"
    assert target_for(path="g.svg").name == "svg"
    assert target_for("svg").shows_changes and not target_for("nnef").shows_changes


def test_a_node_shows_the_attributes_not_at_their_default(windows):
    module = nnefopt.load(windows)
    by_name = {op.name: op for op in module.walk()}
    # conv: stride 1s, zero pads and groups 1 are its defaults (spelled out or not).
    assert notable_attributes(by_name["nnef.conv"]) == []
    pool = dict(notable_attributes(by_name["nnef.max_pool"]))
    assert pool == {"size": [1, 1, 3, 3], "stride": [1, 1, 2, 2], "border": "ignore"}
    # axes = [1] on a rank-4 tensor is no per-axis default: it is what squeeze does.
    assert notable_attributes(by_name["nnef.squeeze"]) == [("axes", [1])]


def test_weights_are_lines_of_their_user_and_every_tensor_an_edge(windows):
    dot = module_to_dot(nnefopt.load(windows))
    labels = _node_labels(dot)
    assert labels[0] == "x\\n1x4x8x8 f32"
    assert labels[1] == "conv\\nfilter 1x4x3x3"  # the variable is no node of its own
    assert not any("variable" in label for label in labels)
    edges = _edges(dot)
    # x -> conv, conv -> max_pool, conv -> squeeze, and one edge into each output.
    assert [label for _, _, label in edges] == ["1x4x8x8 f32", "1x1x6x6 f32", "1x1x6x6 f32",
                                                "1x1x3x3 f32", "1x6x6 f32"]
    assert len({(a, b) for a, b, _ in edges}) == len(edges)


def test_svg_renders_every_node(tmp_path):
    out = tmp_path / "g.svg"
    status, _, err = run([EXAMPLE, "-O", "-q", "-o", str(out)])
    assert status == 0, err
    root = ElementTree.parse(out).getroot()
    assert root.tag == f"{SVG}svg"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert texts.count("conv_relu [fused]") == 2
    assert "filter 32x16x3x3" in texts and "1x32x4x4 f32" in texts
    titles = {t.text for t in root.iter(f"{SVG}title")}
    assert {"n0", "n5", "out0", "n4->n5"} <= titles
    assert [p.name for p in tmp_path.iterdir()] == ["g.svg"]  # written whole, no temporary left


def test_svg_to_standard_output_is_the_same_drawing(tmp_path):
    status, out, err = run([EXAMPLE, "-O", "-q", "--emit", "svg"])
    assert status == 0, err
    assert ElementTree.fromstring(out).tag == f"{SVG}svg"


def test_missing_graphviz_is_one_error_line_and_nothing_written(tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    out = tmp_path / "g.svg"
    status, stdout, err = run([EXAMPLE, "-q", "-o", str(out)])
    assert status == 1
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "graphviz" in lines[0] and "apt-get install graphviz" in lines[0]
    assert not out.exists() and list(tmp_path.iterdir()) == [empty]
    # The dot text needs no Graphviz.
    status, stdout, err = run([EXAMPLE, "-q", "--emit", "dot"])
    assert status == 0 and stdout.startswith('digraph "network"')


def test_a_failed_layout_is_an_error_not_a_traceback():
    from nnefopt.errors import NNEFError

    with pytest.raises(NNEFError, match="Graphviz failed"):
        render("digraph { a -> }")


def test_diff_colours_what_the_passes_changed(tmp_path):
    status, dot, err = run([EXAMPLE, "-O", "-q", "--diff", EXAMPLE, "--emit", "dot"])
    assert status == 0, err
    nodes = re.findall(r'^  n\d+ \[label="([^\\"]*).*$', dot, re.M)
    filled = [(m.group(1), m.group(2)) for line in dot.splitlines()
              if (m := re.match(r'  n\d+ \[label="([^\\"]*).*fillcolor="(#b9f0b4|#ffe08a)"', line))]
    assert len(nodes) == 6
    # The relus became conv_relu (same tensor names): changed; pool, reshape, linear stay.
    assert [name for name, _ in filled] == ["conv_relu [fused]", "conv_relu [fused]"]
    removed = int(re.search(r"removed: (\d+) operations", dot).group(1))
    before = nnefopt.load(EXAMPLE)
    after = nnefopt.optimize(before.clone(), "default")
    count = lambda m: sum(1 for op in m.walk() if op.name.startswith("nnef.")  # noqa: E731
                          and op.name not in ("nnef.graph", "nnef.return", "nnef.variable", "nnef.external"))
    # Each operation after the passes carries a name from before (none is green), so the
    # others are the removed ones.
    assert removed == count(before) - count(after)


def test_diff_needs_a_picture(capsys):
    status, message = usage_error([EXAMPLE, "--diff", EXAMPLE, "-o", "out.mlir"], capsys)
    assert status == 2 and "--diff" in message


def test_a_200_operation_model_stays_readable(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from generate import conv_chain
    finally:
        sys.path.remove(str(ROOT / "bench"))
    conv_chain(tmp_path / "chain", 67)  # 201 operations, and their constants
    module = nnefopt.load(tmp_path / "chain")
    dot = module_to_dot(module)
    labels = _node_labels(dot)
    assert len(labels) == 1 + 67 * 3  # the input, then conv, batch norm, relu: constants are lines
    assert "rankdir=TB" in dot
    # Compact labels: a few short lines each.
    lines = [line for label in labels for line in label.split("\\n")]
    assert max(len(line) for line in lines) <= 40
    assert max(label.count("\\n") for label in labels) <= 3
    started = time.perf_counter()
    svg = render(dot)
    assert time.perf_counter() - started < 60
    width = float(re.search(r'<svg width="([\d.]+)pt"', svg).group(1))
    assert width < 400  # one column of nodes, not a sheet too wide to read
