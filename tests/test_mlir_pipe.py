"""MLIR on standard output and the weights: a file or a pipe gets them, so
`nnef-opt M > m.mlir; nnef-opt m.mlir -o out/` writes what `nnef-opt M -o out/` writes; a
terminal gets the IR alone, and a model read from such text refuses to be written."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import nnefopt
from nnefopt.dialects.weights import weight_of
from nnefopt.errors import NNEFError, NNEFWarning
from nnefopt.frontend.tensor_file import write_tensor
from tests.models import SHARED

ROOT = Path(__file__).resolve().parents[1]
NNEF_OPT = [sys.executable, "-m", "nnefopt.cli"]


def nnef_opt(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*NNEF_OPT, "-q", *map(str, args)], cwd=ROOT, check=False, **kwargs)


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("model", [SHARED / "resnet8" / "t2n", SHARED / "cnn_digits_q8" / "tract.nnef.tgz"])
def test_mlir_written_to_a_file_round_trips_to_the_same_folder(tmp_path, model):
    with open(tmp_path / "m.mlir", "wb") as stdout:
        assert nnef_opt(model, "-O", stdout=stdout).returncode == 0
    assert "dialect_resources" in (tmp_path / "m.mlir").read_text()
    assert nnef_opt(tmp_path / "m.mlir", "-o", tmp_path / "via_mlir").returncode == 0
    assert nnef_opt(model, "-O", "-o", tmp_path / "direct").returncode == 0
    direct, via_mlir = files(tmp_path / "direct"), files(tmp_path / "via_mlir")
    assert any(name.endswith(".dat") for name in direct)
    assert via_mlir == direct


def test_mlir_through_a_pipe_carries_the_weights(tmp_path):
    model = SHARED / "mlp_digits" / "kt"
    first = subprocess.Popen([*NNEF_OPT, "-q", str(model)], cwd=ROOT, stdout=subprocess.PIPE)
    second = nnef_opt("-", "-o", tmp_path / "out", stdin=first.stdout, capture_output=False)
    first.stdout.close()
    assert first.wait() == 0 and second.returncode == 0
    assert nnef_opt(model, "-o", tmp_path / "direct").returncode == 0
    assert files(tmp_path / "out") == files(tmp_path / "direct")


def test_a_terminal_gets_the_ir_without_weights():
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen([*NNEF_OPT, "-q", str(SHARED / "mlp_digits" / "kt")], cwd=ROOT, stdout=follower)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait() == 0
    finally:
        os.close(leader)
    text = b"".join(chunks).decode()
    assert "nnef.variable" in text and "dense_resource<" in text
    assert "dialect_resources" not in text


@pytest.mark.parametrize("output", ["out", "out.mlir", "out.tgz"])
def test_mlir_without_weights_refuses_to_be_written(tmp_path, output):
    """What a terminal shows, saved and read back, names its weights but holds none:
    writing it is an error naming the variable at the location the text gives it, and
    nothing is written."""
    text = nnefopt.to_mlir(nnefopt.load(SHARED / "mlp_digits" / "kt"))
    (tmp_path / "m.mlir").write_text(text)
    result = nnef_opt(tmp_path / "m.mlir", "-o", tmp_path / output, capture_output=True, text=True)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{_location_of_first_variable(text)}: error: variable 'variable1' has no data")
    assert not (tmp_path / output).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.mlir"]  # no staging left either


def test_running_a_model_without_weights_names_the_variable(tmp_path):
    module = nnefopt.parse_mlir(nnefopt.to_mlir(nnefopt.load(SHARED / "mlp_digits" / "kt")), "m.mlir")
    with pytest.raises(nnefopt.NNEFError, match="variable 'variable1' has no data") as error:
        nnefopt.run(module, {"input": np.zeros((1, 64), np.float32)})
    assert str(error.value).startswith(f"{_location_of_first_variable(nnefopt.to_mlir(module))}: error:")


def _location_of_first_variable(text: str) -> str:
    declaration = next(line for line in text.splitlines() if "nnef.variable" in line)
    file, line, column = re.search(r'loc\("([^"]+)":(\d+):(\d+)\)', declaration).groups()
    return f"{file}:{line}:{column}"


def _printed(path: Path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        return nnefopt.to_mlir(nnefopt.optimize(nnefopt.load(path), "default"), weights=True)


def test_printed_handles_do_not_depend_on_what_the_process_did_before():
    model = SHARED / "cnn_digits" / "t2n"
    first = _printed(model)
    for other in ("resnet8/t2n", "mlp_digits/kt", "cnn_digits/t2n"):
        _printed(SHARED / other)
    assert _printed(model) == first
    in_another_process = nnef_opt(model, "-O", capture_output=True, text=True)
    assert in_another_process.returncode == 0 and in_another_process.stdout == first


def test_labels_a_handle_cannot_tell_apart_get_a_handle_each(tmp_path):
    """`w/x` and `w_x` would both be the handle `w_x`: the text names each weight once,
    and reads back to both arrays."""
    a, b = np.full((2, 2), 1.5, np.float32), np.full((2, 2), -2.0, np.float32)
    (tmp_path / "w").mkdir()
    write_tensor(tmp_path / "w" / "x.dat", a)
    write_tensor(tmp_path / "w_x.dat", b)
    (tmp_path / "graph.nnef").write_text(
        "version 1.0;\ngraph G(input) -> (output) {\n"
        "    input = external<scalar>(shape = [2, 2]);\n"
        "    a = variable<scalar>(shape = [2, 2], label = 'w/x');\n"
        "    b = variable<scalar>(shape = [2, 2], label = 'w_x');\n"
        "    c = add(a, b);\n    output = mul(input, c);\n}\n")
    text = nnefopt.to_mlir(nnefopt.load(tmp_path), weights=True)
    again = nnefopt.parse_mlir(text)
    arrays = {op.properties["label"].data: (op.attributes["nnef.data"].resource_handle.data,
                                             weight_of(op.attributes["nnef.data"]))
              for op in again.walk() if op.name == "nnef.variable"}
    assert arrays["w/x"][0] != arrays["w_x"][0]
    np.testing.assert_array_equal(arrays["w/x"][1], a)
    np.testing.assert_array_equal(arrays["w_x"][1], b)
    assert nnefopt.to_mlir(again, weights=True) == text


def test_passes_leave_a_variable_without_data_for_the_error_at_export(tmp_path):
    """Found by fuzzing: fold-constants took a variable without data for a known value and
    handed None to a kernel (cnn_digits/t2n unsqueezes its biases)."""
    text = nnefopt.to_mlir(nnefopt.load(SHARED / "cnn_digits" / "t2n"))  # printed without its weights
    module = nnefopt.parse_mlir(text)
    nnefopt.optimize(module, "default")
    with pytest.raises(NNEFError, match="has no data"):
        nnefopt.save(module, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_strings_that_are_not_ascii_read_back_from_mlir(tmp_path):
    # found by fuzzing: printed as xDSL's printer does, as escaped bytes, such a string
    # reads back as bytes, which no string field of the dialect accepts; nnefopt prints
    # it as it is and reads the escaped form as the string it was
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "graph.nnef").write_text(
        'version 1.0;\nextension tract_registry tract_core;\n'
        'graph G( input ) -> ( output )\n{\n'
        '    input = external<scalar>(shape = [1, 2]);\n'
        '    w = variable<scalar>(shape = [1, 2], label = "poids_é_重み");\n'
        '    i"sortie_ü" = add(input, w);\n'
        '    output = mul(i"sortie_ü", 2.0);\n}\n', encoding="utf-8")
    write_tensor(folder / "poids_é_重み.dat", np.ones((1, 2), np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = nnefopt.load(folder)
    for generic in (False, True):
        text = nnefopt.to_mlir(module, weights=True, generic=generic)
        again = nnefopt.parse_mlir(text, "m.mlir")
        assert nnefopt.to_mlir(again, weights=True, generic=generic) == text
        labels = [op.properties["label"].data for op in again.walk() if "label" in op.properties]
        assert labels == ["poids_é_重み"]
        escaped = text.replace("poids_é_重み", "".join(f"\\{b:02X}" if b > 127 else chr(b)
                                                       for b in "poids_é_重み".encode()))
        assert escaped != text and nnefopt.to_mlir(nnefopt.parse_mlir(escaped), weights=True, generic=generic) == text
        x = np.array([[1.0, 2.0]], np.float32)
        np.testing.assert_array_equal(nnefopt.run(again, {"input": x})["output"], (x + 1) * 2)
    nnefopt.save(again, tmp_path / "out")
    written = (tmp_path / "out" / "graph.nnef").read_text(encoding="utf-8")
    assert 'i"sortie_ü"' in written and "label = 'poids_é_重み'" in written


def test_a_model_in_a_non_ascii_folder_prints_locations_that_read_back(tmp_path):
    # xDSL would escape the file name's bytes and then lex the literal as bytes, which no
    # location holds: nnefopt prints printable characters as they are.
    folder = tmp_path / "modèle_模型"
    folder.mkdir()
    (folder / "graph.nnef").write_text("version 1.0;\ngraph G( x ) -> ( y )\n{\n"
                                       "    x = external<scalar>(shape = [2]);\n"
                                       "    w = variable<scalar>(shape = [2], label = 'poids_é');\n"
                                       "    y = add(x, w);\n}\n", encoding="utf-8")
    write_tensor(folder / "poids_é.dat", np.array([1.0, 2.0], np.float32))
    text = nnefopt.to_mlir(nnefopt.load(folder), weights=True)
    assert f'loc("{folder / "graph.nnef"}":6:9)' in text
    module = nnefopt.parse_mlir(text)
    locations = {op.location.filename.data for op in module.walk() if hasattr(op.location, "filename")}
    assert locations == {str(folder / "graph.nnef")}
    assert nnefopt.to_mlir(module, weights=True) == text
    assert nnef_opt(folder, "-o", tmp_path / "out.mlir").returncode == 0
    assert nnef_opt(tmp_path / "out.mlir", "-o", tmp_path / "out2").returncode == 0
    assert "label = 'poids_é'" in (tmp_path / "out2" / "graph.nnef").read_text(encoding="utf-8")
    again = nnefopt.run(nnefopt.load(tmp_path / "out2"), {"x": np.zeros(2, np.float32)})["y"]
    assert again.tolist() == [1.0, 2.0]


@pytest.mark.parametrize("field", ["label", "explicit", "extensions"])
@pytest.mark.parametrize("spelling", ["raw", "escaped"])
def test_a_string_field_with_a_replacement_character_and_a_nul_reads_back(field, spelling):
    # found by fuzzing (seed 2, inputs 8964, 39337, 42802): a label, an nnef.explicit item
    # and an extension holding U+FFFD (and a NUL) printed as bytes that did not read back
    value = "s\ufffd\x00e" if spelling == "raw" else "s\\EF\\BF\\BD\\00e"
    label, explicit, extension = "w", '"label"', '"tract_registry tract_core"'
    if field == "label":
        label = value
    elif field == "explicit":
        explicit = f'"{value}"'
    else:
        extension = f'"{value}"'
    text = (f'builtin.module attributes {{nnef.version = [1 : i64, 0 : i64], nnef.extensions = [{extension}]}} {{\n'
            '  nnef.graph @G inputs [] outputs ["w"] {\n'
            f'    %w = nnef.variable <{{shape = [2], label = "{label}"}}> {{nnef.explicit = [{explicit}]}} : tensor<2xf32>\n'
            '    nnef.return %w : tensor<2xf32>\n  }\n}\n')
    if spelling == "raw":
        text = text.replace("\x00", "\\00")  # a NUL is never raw in MLIR text
    module = nnefopt.parse_mlir(text, "m.mlir")
    printed = nnefopt.to_mlir(module)
    assert nnefopt.to_mlir(nnefopt.parse_mlir(printed, "again.mlir")) == printed
    strings = [a.data for op in module.walk() for attr in [*op.properties.values(), *op.attributes.values()]
               for a in getattr(attr, "data", ()) if hasattr(a, "data") and isinstance(a.data, str)]
    strings += [op.properties["label"].data for op in module.walk() if "label" in op.properties]
    assert "s\ufffd\x00e" in strings
