"""--split-input-file: cases separated by `// -----` run and print alone, errors point
into the whole file, and a failing case leaves the others to run."""

from __future__ import annotations

import pytest

from nnefopt.split_input import split_cases
from tests.test_driver import run
from tests.test_targets import usage_error


def _case(name: str, body: str) -> str:
    return (f'nnef.graph @{name} inputs ["x"] outputs ["y"] {{\n'
            '  %x = nnef.external <{shape = [2]}> : tensor<2xf32>\n'
            f'{body}'
            '  nnef.return %y : tensor<2xf32>\n'
            '}\n')


COPY = _case("with_copy", "  %c = nnef.copy %x : (tensor<2xf32>) -> tensor<2xf32>\n"
                          "  %y = nnef.relu %c : (tensor<2xf32>) -> tensor<2xf32>\n")
BROKEN = _case("broken", "  %y = nnef.no_such_op %x : (tensor<2xf32>) -> tensor<2xf32>\n")
PLAIN = _case("plain", "  %y = nnef.exp %x : (tensor<2xf32>) -> tensor<2xf32>\n")
TEXT = f"{COPY}\n// -----\n{BROKEN}\n  // -----  \n{PLAIN}"


def test_cases_keep_their_line_numbers():
    cases = split_cases(TEXT)
    assert len(cases) == 3
    lines = TEXT.splitlines()
    for case in cases:
        for number, line in enumerate(case.splitlines()):
            assert line == "" or line == lines[number]
    assert split_cases("no separator\n") == ["no separator\n"]


def test_each_case_runs_alone_and_an_error_stops_only_its_own(tmp_path):
    path = tmp_path / "cases.mlir"
    path.write_text(TEXT)
    status, out, err = run([str(path), "--split-input-file", "-p", "canonicalize"])
    assert status == 1
    printed = out.split("// -----\n")
    assert len(printed) == 2
    assert "@with_copy" in printed[0] and "nnef.copy" not in printed[0]  # the pass ran on it
    assert "@plain" in printed[1] and "nnef.exp" in printed[1]
    line = TEXT.splitlines().index(next(x for x in TEXT.splitlines() if "no_such_op" in x)) + 1
    assert err.startswith(f"{path}:{line}:")
    assert "nnef.no_such_op" in err and err.count("error:") == 1


def test_standard_input_and_success(tmp_path):
    status, out, err = run(["-", "--split-input-file"], stdin=f"{COPY}// -----\n{PLAIN}")
    assert status == 0, err
    assert out.count("// -----\n") == 1 and out.count("nnef.graph @") == 2
    assert "nnef.copy" in out  # no pipeline: printed as read


def test_without_the_flag_the_separator_is_a_comment(tmp_path):
    path = tmp_path / "one.mlir"
    path.write_text(f"// -----\n{PLAIN}")
    status, out, _ = run([str(path)])
    assert status == 0 and "@plain" in out


@pytest.mark.parametrize("args, message", [
    (["model.nnef", "--split-input-file"], "reads MLIR text"),
    (["m.mlir", "--split-input-file", "-o", "out.mlir"], "-o is not supported"),
])
def test_usage_errors(args, message, capsys):
    status, err = usage_error(args, capsys)
    assert status == 2 and message in err
