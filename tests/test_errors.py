"""Broken inputs: each gives one line `place: error: message`, exit status 1, no
traceback, nothing written, and memory bounded by the size of the input."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tracemalloc
from contextlib import redirect_stderr
from pathlib import Path

import numpy as np
import pytest

from nnefopt.cli import main
from nnefopt.frontend.tensor_file import write_tensor
from tests.models import SHARED

GOOD = """version 1.0;

graph G( input ) -> ( output )
{
    input = external<scalar>(shape = [1, 4]);
    w = variable<scalar>(shape = [2, 4], label = 'w');
    output = linear(input, w);
}
"""


def replace(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


def body(*lines: str) -> str:
    """GOOD with its last statement replaced by `lines`."""
    head = GOOD[: GOOD.index("    output = linear")]
    return head + "".join(f"    {line}\n" for line in lines) + "}\n"


# (case id, graph.nnef text, expected location prefix, expected words in the message)
TEXT_CASES = [
    ("no-version", GOOD.replace("version 1.0;\n", ""), "graph.nnef:2:1", "expected 'version'"),
    ("bad-version", replace("version 1.0;", "version one;"), "graph.nnef:1:9", "version number"),
    ("missing-semicolon", replace("label = 'w');", "label = 'w')"), "graph.nnef:7:5", "expected ';'"),
    ("unterminated-string", replace("label = 'w')", "label = 'w)"), "graph.nnef:6:50", "unterminated string"),
    ("bad-character", replace("[1, 4]", "[1 @ 4]"), "graph.nnef:5:41", "unexpected character '@'"),
    ("unknown-operation", body("output = frobnicate(input);"), "graph.nnef:7:14", "unknown operation 'frobnicate'"),
    ("wrong-argument-type", body("output = transpose(input, axes = 'a');"), "graph.nnef:7:31", "must be of type integer[]"),
    ("wrong-element-type", body("output = transpose(input, axes = [1.5, 0]);"), "graph.nnef:7:31", "must be of type integer[]"),
    ("reassignment", body("output = relu(input);", "output = relu(input);"), "graph.nnef:8:5", "already defined"),
    ("undefined-identifier", body("output = relu(nothing);"), "graph.nnef:7:19", "undefined identifier 'nothing'"),
    ("missing-attribute", body("output = transpose(input);"), "graph.nnef:7:14", "missing argument 'axes'"),
    ("unknown-parameter", body("output = relu(input, alpha = 1.0);"), "graph.nnef:7:26", "no parameter 'alpha'"),
    ("argument-twice", body("output = relu(x = input, x = input);"), "graph.nnef:7:30", "given twice"),
    ("positional-after-named", body("output = add(x = input, input);"), "graph.nnef:7:29", "positional argument after named"),
    ("output-never-assigned", body("y = relu(input);"), "graph.nnef:3:1", "graph output 'output' is never assigned"),
    ("input-not-external", replace("input = external<scalar>(shape = [1, 4]);", "input = constant<scalar>(shape = [1, 4], value = [0.0]);"), "graph.nnef:5:13", "must be defined by 'external'"),
    ("external-not-input", body("extra = external<scalar>(shape = [1]);", "output = relu(input);"), "graph.nnef:7:13", "not a graph input"),
    ("generic-on-plain-op", body("output = relu<scalar>(input);"), "graph.nnef:7:14", "not generic"),
    ("shape-mismatch", body("b = constant<scalar>(shape = [3, 5], value = [1.0]);", "output = add(input, b);"), "graph.nnef:8:14", "do not broadcast"),
    ("unclosed-body", GOOD.rstrip().rstrip("}"), "graph.nnef:8:1", "expected '}'"),
    ("deep-parentheses", body("output = relu(" + "(" * 100_000 + "input" + ")" * 100_000 + ");"), "graph.nnef:7:", "nested more than"),
    ("deep-calls", body("output = " + "relu(" * 100_000 + "input" + ")" * 100_000 + ";"), "graph.nnef:7:", "nested more than"),
    ("deep-unary", body("output = relu(" + "-" * 100_000 + "input);"), "graph.nnef:7:", "nested more than"),
    ("fragment-twice", GOOD.replace("graph G", "fragment f( x: tensor<scalar> ) -> ( y: tensor<scalar> );\nfragment f( x: tensor<scalar> ) -> ( y: tensor<scalar> );\ngraph G"), "graph.nnef:4:1", "already defined"),
    ("constant-value-count", body("c = constant<scalar>(shape = [2, 2], value = [1.0, 2.0]);", "output = relu(input);"), "graph.nnef:7:9", "needs 1 or 4 values"),
    ("negative-shape", replace("shape = [1, 4]", "shape = [1, -4]"), "graph.nnef:5:13", "non-negative"),
    ("division-by-zero", body("output = reshape(input, shape = [1 / 0]);"), "graph.nnef:7:40", "division by zero"),
    ("label-escapes-folder", replace("label = 'w'", "label = '../w'"), "", "'../w'"),
    ("tuple-for-single", body("a, b = relu(input);"), "graph.nnef:7:5", "'relu' has 1 result, 2 names are assigned"),
    ("wrong-result-count", body("[a, b] = relu(input);", "output = relu(input);"), "graph.nnef:7:5", "'relu' has 1 result, 2 names are assigned"),
    ("moments-one-name", body("m = moments(input, axes = [1]);", "output = relu(input);"), "graph.nnef:7:9", "'moments' has 2 results"),
    # found by fuzzing (tests/fuzzing): each was a traceback or an allocation of the declared size
    ("5000-digit-integer", body("output = reshape(input, shape = [" + "9" * 5000 + "]);"), "graph.nnef:7:38", "(5000 digits) does not fit in 64 bits"),
    ("integer-beyond-i64", body("output = reshape(input, shape = [18446744073709551616]);"), "graph.nnef:7:38", "does not fit in 64 bits"),
    ("deep-left-hand-side", body("[" * 100_000 + "output" + "]" * 100_000 + " = relu(input);"), "graph.nnef:7:", "nested more than 100 levels"),
    ("deep-tuple-type", GOOD.replace("graph G", "fragment f( x: " + "(" * 100_000 + "integer" + ")" * 100_000 + " ) -> ( y: integer );\ngraph G"), "graph.nnef:3:", "nested more than 100 levels"),
    ("deep-array-type", GOOD.replace("graph G", "fragment f( x: integer" + "[]" * 100_000 + " ) -> ( y: integer );\ngraph G"), "graph.nnef:3:", "type nested more than 100 levels"),
    ("constant-2^63-elements", body("big = constant<scalar>(shape = [9223372036854775807, 2], value = [0.0]);", "output = relu(input);"), "graph.nnef:7:11", "more than 2^62 elements"),
]


def make_model(folder: Path, graph_text: str, weights: dict[str, np.ndarray] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "graph.nnef").write_text(graph_text, encoding="utf-8")
    for label, array in (weights if weights is not None else {"w": np.ones((2, 4), np.float32)}).items():
        write_tensor(folder / f"{label}.dat", array)
    return folder


def run_cli(args: list[str]) -> tuple[int, str]:
    stderr = io.StringIO()
    with redirect_stderr(stderr):
        status = main(args)
    return status, stderr.getvalue()


def assert_one_error(status: int, stderr: str, location: str, words: str) -> None:
    assert status == 1, stderr
    errors = [line for line in stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, stderr
    line = errors[0]
    assert "Traceback" not in stderr
    assert location in line.split(": error: ")[0], line
    assert words in line, line


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("graph_text,location,words", [c[1:] for c in TEXT_CASES], ids=[c[0] for c in TEXT_CASES])
def test_broken_graph_text(tmp_path, graph_text, location, words):
    model = make_model(tmp_path / "model", graph_text)
    before = snapshot(tmp_path)
    status, stderr = run_cli([str(model), "-o", str(tmp_path / "out")])
    assert_one_error(status, stderr, location, words)
    assert snapshot(tmp_path) == before  # nothing written, input untouched


def test_table_has_at_least_thirty_cases():
    assert len(TEXT_CASES) + len(BINARY_CASES) + len(ARCHIVE_CASES) + 4 >= 30


# ---- tensor files -------------------------------------------------------------------


def truncated(folder: Path) -> None:
    path = folder / "w.dat"
    path.write_bytes(path.read_bytes()[:-5])


def huge_header(folder: Path) -> None:
    path = folder / "w.dat"
    data = bytearray(path.read_bytes())
    data[8:12] = (1 << 30).to_bytes(4, "little")  # data length field
    data[12:16] = (2).to_bytes(4, "little")  # rank 2
    data[16:24] = (1 << 20).to_bytes(4, "little") * 2  # 2^40 items
    path.write_bytes(bytes(data))


def bad_magic(folder: Path) -> None:
    path = folder / "w.dat"
    path.write_bytes(b"XX" + path.read_bytes()[2:])


def tiny_file(folder: Path) -> None:
    (folder / "w.dat").write_bytes(b"\x4e\xef\x01")


def missing_file(folder: Path) -> None:
    (folder / "w.dat").unlink()


def wrong_shape(folder: Path) -> None:
    write_tensor(folder / "w.dat", np.ones((4, 2), np.float32))


BINARY_CASES = [
    ("truncated-dat", truncated, "w.dat", ""),
    ("huge-dat-header", huge_header, "w.dat", ""),
    ("bad-magic", bad_magic, "w.dat", "magic"),
    ("header-too-short", tiny_file, "w.dat", ""),
    ("missing-dat", missing_file, "graph.nnef:6:9", "w.dat"),
    ("dat-shape-mismatch", wrong_shape, "w.dat", "[2, 4]"),
]


@pytest.mark.parametrize("damage,location,words", [c[1:] for c in BINARY_CASES], ids=[c[0] for c in BINARY_CASES])
def test_broken_tensor_file(tmp_path, damage, location, words):
    model = make_model(tmp_path / "model", GOOD)
    damage(model)
    before = snapshot(tmp_path)
    tracemalloc.start()
    try:
        status, stderr = run_cli([str(model), "-o", str(tmp_path / "out")])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_one_error(status, stderr, location, words)
    assert peak < 16 * 2**20  # the 2^40-item header allocates nothing of its size
    assert snapshot(tmp_path) == before


# ---- archives ---------------------------------------------------------------------


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def archive_with(path: Path, extra) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, "graph.nnef", GOOD.encode())
        extra(tar)
    return path


ARCHIVE_CASES = [
    ("member-dotdot", lambda t: _add(t, "../x", b"evil"), "'../x'"),
    ("member-absolute", lambda t: _add(t, "/tmp/nnefopt-evil", b"evil"), "/tmp/nnefopt-evil"),
    ("member-symlink", lambda t: _add(t, "w.dat", kind=tarfile.SYMTYPE, link="/etc/passwd"), "w.dat"),
    ("member-hardlink", lambda t: _add(t, "w.dat", kind=tarfile.LNKTYPE, link="graph.nnef"), "w.dat"),
    ("member-device", lambda t: _add(t, "dev", kind=tarfile.CHRTYPE), "dev"),
]


@pytest.mark.parametrize("extra,words", [c[1:] for c in ARCHIVE_CASES], ids=[c[0] for c in ARCHIVE_CASES])
def test_broken_archive(tmp_path, extra, words):
    archive = archive_with(tmp_path / "model.tgz", extra)
    before = snapshot(tmp_path)
    status, stderr = run_cli([str(archive), "-o", str(tmp_path / "out")])
    assert_one_error(status, stderr, "model.tgz", words)
    assert snapshot(tmp_path) == before
    assert not (tmp_path.parent / "x").exists()
    assert not Path("/tmp/nnefopt-evil").exists()


def test_truncated_archive(tmp_path):
    archive = archive_with(tmp_path / "model.tgz", lambda t: _add(t, "w.dat", b"\0" * 50_000))
    archive.write_bytes(archive.read_bytes()[:-40])
    assert_one_error(*run_cli([str(archive)]), "model.tgz", "")


def test_archive_without_graph(tmp_path):
    archive = tmp_path / "model.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        _add(tar, "w.dat", b"\0")
    assert_one_error(*run_cli([str(archive)]), "model.tgz", "graph.nnef")


# ---- other inputs -------------------------------------------------------------------


def test_missing_input(tmp_path):
    assert_one_error(*run_cli([str(tmp_path / "nowhere")]), "nowhere", "")


def test_not_utf8(tmp_path):
    model = make_model(tmp_path / "model", GOOD)
    (model / "graph.nnef").write_bytes(GOOD.encode()[:40] + b"\xff\xfe" + GOOD.encode()[40:])
    assert_one_error(*run_cli([str(model)]), "graph.nnef", "UTF-8")


@pytest.mark.parametrize(
    "quant,location,words",
    [
        ('"output" linear_quantize(min = 0.0, max = 1.0, bits = 8);', "graph.quant:1:10", "expected ':'"),
        ('"nothing": linear_quantize(min = 0.0, max = 1.0, bits = 8);', "graph.quant:1:1", "unknown tensor 'nothing'"),
        ('"output": linear_quantize(min = 0.0, max = 1.0, bits = 8);\n"output": linear_quantize(min = 0.0, max = 1.0, bits = 8);',
         "graph.quant:2:1", "second quantization entry"),
        ('"output": zero_point_linear_quantize(zero_point = -999999999999999999999999999999, scale = 0.5, bits = 8);',
         "graph.quant:1:52", "does not fit in 64 bits"),
        ('"output": linear_quantize(min = 0.0, max = 1.0, bits = ' + "9" * 5000 + ");", "graph.quant:1:56",
         "(5000 digits) does not fit in 64 bits"),
        # found by fuzzing (seed 2, input 57653): lower-tract computed with the string
        ('"output": zero_point_linear_quantize(zero_point = 0, scale = "nnef.relu", bits = 8, signed = false, '
         'symmetric = false);', "graph.quant:1:62", "'scale' of the quantization of tensor 'output' must be of type scalar"),
        ('"output": linear_quantize(min = 0.0, max = [1.0, true], bits = 8);', "graph.quant:1:44",
         "'max' of the quantization of tensor 'output' must be of type scalar, found"),
        ('"output": linear_quantize(min = 0.0, max = 1.0, bits = 8.5);', "graph.quant:1:56",
         "'bits' of the quantization of tensor 'output' must be of type integer"),
    ],
    ids=["syntax", "unknown-tensor", "duplicate", "integer-beyond-i64", "5000-digit-integer", "string-scale",
         "logical-in-a-scale-array", "real-bits"],
)
def test_broken_quant_file(tmp_path, quant, location, words):
    model = make_model(tmp_path / "model", GOOD)
    (model / "graph.quant").write_text(quant)
    assert_one_error(*run_cli([str(model)]), location, words)


def test_strict_mode_refuses_positional_attribute(tmp_path):
    model = make_model(tmp_path / "model", body("output = softmax(input, [1]);"))
    status, stderr = run_cli([str(model)])
    assert status == 0 and "graph.nnef:7:29: warning: attribute 'axes' of 'softmax' given by position" in stderr
    assert_one_error(*run_cli([str(model), "--strict"]), "graph.nnef:7:29", "given by position")


def test_output_must_not_overwrite_input(tmp_path):
    model = make_model(tmp_path / "model", GOOD)
    before = snapshot(model)
    assert_one_error(*run_cli([str(model), "-o", str(model)]), "model", "must not be the input")
    assert_one_error(*run_cli([str(model), "-o", str(model / "sub")]), "sub", "must not be the input")
    assert snapshot(model) == before


def test_real_process_prints_no_traceback(tmp_path):
    """The same through a real process: exit status 1, one line on stderr."""
    model = make_model(tmp_path / "model", body("output = frobnicate(input);"))
    result = subprocess.run([sys.executable, "-m", "nnefopt.cli", str(model)], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "graph.nnef:7:14: error: unknown operation 'frobnicate'" in result.stderr


@pytest.mark.parametrize(
    "text,location,words",
    [
        ('builtin.module {\n  %x = "nnef.bogus"() : () -> ()\n}\n', "m.mlir:2:20", "not registered"),
        ("builtin.module {\n  garbage\n", "m.mlir:3:1", "garbage"),
        ('builtin.module {\n  "nnef.relu"() : () -> ()\n}\n', "m.mlir", "invalid module"),
        # the custom format
        ('builtin.module {\n  nnef.graph @G inputs ["x"] outputs ["x"] {\n'
         '    %x = nnef.external <{shape = [2], colour = "red"}> : tensor<2xf32>\n    nnef.return %x : tensor<2xf32>\n'
         '  }\n}\n', "m.mlir:3:39", "'nnef.external' has no property 'colour'"),
        ('builtin.module {\n  nnef.graph @G inputs ["x"] outputs ["y"] {\n'
         '    %x = nnef.external <{shape = [2]}> : tensor<2xf32>\n    %y = nnef.relu %x : (tensor<2xf32>) -> i1\n'
         '    nnef.return %y : tensor<2xf32>\n  }\n}\n', "m.mlir:4:20", "i1 should be of base attribute tensor"),
        ('builtin.module {\n  nnef.graph @G inputs ["x"] outputs ["y"] {\n'
         '    %x = nnef.external <{shape = [2]}> : tensor<2xf32>\n    %y = nnef.relu %x tensor<2xf32>\n'
         '    nnef.return %y : tensor<2xf32>\n  }\n}\n', "m.mlir:4:23", "Expected ':'"),
        # found by fuzzing: xDSL's lexer backtracked for minutes on the unclosed literal
        ('builtin.module {\n  %x = "nnef.relu"() {a = "' + "0" * 100_000 + '} : () -> ()\n}\n', "m.mlir:2:27",
         "string literal not closed"),
        # found by fuzzing: written to NNEF as a name used before its assignment
        ('builtin.module {\n  nnef.graph @G inputs ["x"] outputs ["y"] {\n'
         '    %y = nnef.relu %x : (tensor<2xf32>) -> tensor<2xf32>\n'
         '    %x = nnef.external <{shape = [2]}> : tensor<2xf32>\n    nnef.return %y : tensor<2xf32>\n'
         '  }\n}\n', "m.mlir", "uses %x before the operation that defines it"),
        ('builtin.module {\n  %x = nnef.external <{shape = [2]}> : tensor<2xf32>\n'
         '  nnef.graph @G inputs ["x"] outputs ["y"] {\n'
         '    %y = nnef.relu %x : (tensor<2xf32>) -> tensor<2xf32>\n    nnef.return %y : tensor<2xf32>\n'
         '  }\n}\n', "m.mlir", "defined outside the graph"),
        # found by fuzzing: xDSL prints the name as bytes it cannot read back
        ('builtin.module {\n  nnef.graph @G inputs ["x"] outputs ["x"] {\n'
         '    %x = nnef.external <{shape = [2]}> {"\u00e9" = 1 : i64} : tensor<2xf32>\n'
         '    nnef.return %x : tensor<2xf32>\n  }\n}\n', "m.mlir", "is not ASCII"),
        # found by fuzzing: the exporter read the attribute's items as strings
        ('builtin.module {\n  nnef.graph @G inputs ["x"] outputs ["x"] {\n'
         '    %x = nnef.external <{shape = [2]}> {nnef.explicit = ["shape", []]} : tensor<2xf32>\n'
         '    nnef.return %x : tensor<2xf32>\n  }\n}\n', "m.mlir", "'nnef.explicit' of 'nnef.external' has the wrong form"),
        ('builtin.module {\n  nnef.graph @G inputs ["x"] outputs ["x"] {\n'
         '    %x = nnef.external <{shape = [2]}> {nnef.exlpicit = ["shape"]} : tensor<2xf32>\n'
         '    nnef.return %x : tensor<2xf32>\n  }\n}\n', "m.mlir", "the nnef dialect does not know"),
        # found by fuzzing: xDSL's parser reads the first token when it is made, outside its errors' net
        ("'unquoted attributes {}", "m.mlir:1:1", "Unexpected character"),
        # found by fuzzing: xDSL's lexer reads an escaped non-ASCII file name as bytes, which
        # a location cannot hold (nnefopt prints the name as it is: test_mlir_pipe)
        ('builtin.module {\n  nnef.graph @G inputs ["x"] outputs ["x"] {\n'
         '    %x = nnef.external <{shape = [2]}> : tensor<2xf32> loc("m\\C3\\A9.nnef":1:1)\n'
         '    nnef.return %x : tensor<2xf32>\n  }\n}\n', "m.mlir:3:60", "Unexpected location syntax"),
        # found by fuzzing (seed 2, input 54821): written without the registry, no reader took it
        ('builtin.module attributes {nnef.extensions = []} {\n  nnef.graph @G inputs ["x"] outputs ["x"] {\n'
         '    %x = nnef.tract_core_external <{shape = [2], datum_type = "f32"}> : tensor<2xf32>\n'
         '    nnef.return %x : tensor<2xf32>\n  }\n}\n', "m.mlir", "declares no tract registry"),
        # found by fuzzing (seed 3, input 3644): read raw, a name with a control character and a
        # non-ASCII one prints as the bytes literal above, which does not read back
        ('builtin.module {\n  nnef.graph @G inputs ["x"] outputs ["x"] {\n'
         '    %x = nnef.external <{shape = [2]}> : tensor<2xf32> loc("m\u00e9\x08.nnef":1:1)\n'
         '    nnef.return %x : tensor<2xf32>\n  }\n}\n', "m.mlir", "MLIR cannot write it back"),
        # found by fuzzing (seed 3, input 91319): the exporter took the number for a name
        ('builtin.module {\n  nnef.graph @G inputs [1.0] outputs ["x"] {\n'
         '    %x = nnef.external <{shape = [2]}> : tensor<2xf32>\n'
         '    nnef.return %x : tensor<2xf32>\n  }\n}\n', "m.mlir", "must be an array of tensor names"),
        # found by fuzzing (seed 3, input 40297): the tensor file writer refused the width
        ('builtin.module {\n  nnef.graph @G inputs ["x"] outputs ["y"] {\n'
         '    %x = nnef.external <{shape = [2]}> : tensor<2xf32>\n'
         '    %w = nnef.variable <{shape = [2], label = "w"}> {nnef.item = [0 : i64, -5 : i64]} : tensor<2xf32>\n'
         '    %y = nnef.add %x, %w : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>\n'
         '    nnef.return %y : tensor<2xf32>\n  }\n}\n', "m.mlir", "'nnef.item' of 'nnef.variable' has the wrong form"),
    ],
    ids=["unregistered-op", "syntax", "fails-verification", "custom-unknown-property", "custom-not-a-tensor",
         "custom-syntax", "unclosed-string-literal", "use-before-definition", "use-from-outside-the-graph",
         "non-ascii-attribute-name", "malformed-dialect-attribute", "unknown-dialect-attribute", "bad-first-token",
         "non-ascii-location", "tract-operation-without-registry", "location-needing-escapes",
         "graph-input-not-a-name", "item-width-not-storable"],
)
def test_broken_mlir(tmp_path, text, location, words):
    (tmp_path / "m.mlir").write_text(text)
    assert_one_error(*run_cli([str(tmp_path / "m.mlir"), "-o", str(tmp_path / "out")]), location, words)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "pipeline,location,words",
    [
        ("[", "pass-pipeline:1:1", "Unknown token"),
        ("cse{", "pass-pipeline:1:5", "Expected argument name here"),
        ("cse,,dce", "pass-pipeline:1:5", "Expected pass name here"),
        ("fuse{activations=1 2}", "pass-pipeline:1:", "bad pass pipeline"),
    ],
    ids=["unknown-token", "unclosed-options", "empty-pass", "bad-option-value"],
)
def test_broken_pipeline(tmp_path, pipeline, location, words):
    """Found by fuzzing: xDSL's pipeline errors are BaseExceptions, and escaped the API."""
    model = make_model(tmp_path / "model", GOOD)
    assert_one_error(*run_cli([str(model), "-p", pipeline, "-o", str(tmp_path / "out")]), location, words)
    assert not (tmp_path / "out").exists()


def _npy(header: bytes, payload: bytes = b"") -> bytes:
    """An .npy v1 file with `header` padded as numpy pads it."""
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + payload


NPY_CASES = [
    # found by fuzzing (seed 11): numpy's header parser raised tokenize.TokenError
    ("unclosed-header", _npy(b"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 64"), "header is not a dictionary"),
    # found by fuzzing (seed 11, input 82): the length field made numpy read 660 MB
    ("header-beyond-file", b"\x93NUMPY\x01\x00\xff\xff{'descr'", "beyond the file"),
    ("shape-beyond-file", _npy(b"{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000,), }", b"\0" * 8),
     "greater than file size"),
    ("strings", _npy(b"{'descr': '<U2', 'fortran_order': False, 'shape': (1,), }", b"\0" * 8), "not a number"),
    ("objects", _npy(b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", b"\0" * 8), "Python objects"),
    ("not-npy", b"PK\x03\x04 not an array", "magic"),
]


@pytest.mark.parametrize("data,words", [c[1:] for c in NPY_CASES], ids=[c[0] for c in NPY_CASES])
@pytest.mark.parametrize("reader", ["nnef-run", "calibration"])
def test_broken_npy(tmp_path, data, words, reader):
    """The .npy readers (nnef-run's inputs, quantize's calibration set): one error line
    naming the file, never numpy's own exception or its allocation."""
    from nnefopt.run_cli import main as run_main

    array = tmp_path / "x.npy"
    array.write_bytes(data)
    model = SHARED / "mlp_digits" / "kt"
    stderr = io.StringIO()
    with redirect_stderr(stderr):
        if reader == "nnef-run":
            status = run_main([str(model), "--input", str(array)])
        else:
            status = main([str(model), "-q", "-p", f'quantize{{calib="{array}"}}', "-o", str(tmp_path / "out")])
    assert_one_error(status, stderr.getvalue(), "x.npy", words)
    assert not (tmp_path / "out").exists()
