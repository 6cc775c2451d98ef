"""Output for people: warnings one line per kind, exit statuses as compilers use them,
--stats, the progress bar, and the README's first command on the bundled example."""

from __future__ import annotations

import io
import re
import shlex
from pathlib import Path

import nnefopt
from nnefopt.diagnostics import warning_kind
from nnefopt.frontend.tensor_file import read_header
from nnefopt.progress import bar, progress
from tests.test_driver import run
from tests.test_readme import quickstart_commands
from tests.test_targets import usage_error

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cnn_digits"
WARNING = re.compile(r"^(?P<where>\S+): warning: (?P<message>.*?)(?: \(and (?P<more>\d+) more like it; -v lists each\))?$")


def _warnings(err: str) -> list[re.Match]:
    found = [WARNING.match(line) for line in err.splitlines() if ": warning: " in line]
    assert all(found), err
    return found


def readme_nnef_opt_arguments(out_dir: Path) -> list[str]:
    """The nnef-opt part of the README's first command, its output moved under `out_dir`."""
    command = quickstart_commands()[0].split("&&")[-1]
    words = shlex.split(command)
    assert words[0].endswith("nnef-opt")
    args = words[1:]
    output = args.index("-o") + 1
    args[output] = str(out_dir / args[output])
    return [str(ROOT / a) if a.startswith("examples/") else a for a in args]


def test_readme_first_command_optimizes_and_prints_one_warning_line_per_kind(tmp_path):
    args = readme_nnef_opt_arguments(tmp_path)
    assert "-O" in args and "--stats" in args  # it optimizes and says what changed
    status, out, err = run(args)
    assert status == 0, err
    assert out == ""  # everything for people is on stderr
    grouped = _warnings(err)
    kinds = [warning_kind(m["message"]) for m in grouped]
    assert len(kinds) == len(set(kinds)) >= 1
    # -v lists each: as many lines as the grouped lines count, of the same kinds.
    status, _, verbose_err = run([*args, "-v"])
    each = _warnings(verbose_err)
    assert len(each) == sum(1 + int(m["more"] or 0) for m in grouped) > len(grouped)
    assert {warning_kind(m["message"]) for m in each} == set(kinds)
    # The first of each kind is where the grouped line points.
    firsts = {}
    for m in each:
        firsts.setdefault(warning_kind(m["message"]), m.group(0))
    assert [firsts[k] for k in kinds] == [re.sub(r" \(and \d+ more.*\)$", "", m.group(0)) for m in grouped]
    # The stats table: the default pipeline fused the convolutions.
    table = {line.split()[0]: line.split()[1:] for line in err.splitlines() if re.match(r"^\w+ +[\d,]+ +[\d,]+", line)}
    assert table["conv_relu"][:2] == ["0", "2"] and table["batch_normalization"][:2] == ["2", "0"]
    assert (tmp_path / "out" / "cnn_digits" / "graph.nnef").is_file()


def test_quiet_prints_no_warning(tmp_path):
    status, _, err = run([str(EXAMPLE), "-q", "-o", str(tmp_path / "o")])
    assert status == 0 and err == ""


def test_stats_count_operations_and_parameter_bytes_as_stored(tmp_path):
    status, _, err = run([str(EXAMPLE), "-q", "--stats", "-O", "-o", str(tmp_path / "o")])
    assert status == 0, err
    rows = {" ".join(re.findall(r"[a-z_]+(?: [a-z]+)?", line)[:1]): line for line in err.splitlines()}
    numbers = lambda row: [int(n.replace(",", "")) for n in re.findall(r"(?<![\w+-])[\d,]+\d|(?<![\w+-])\d", row)]  # noqa: E731
    # Before: every weight file's data once (a variable declared twice is one file).
    stored = sum(f.stat().st_size - read_header(f).data_offset for f in EXAMPLE.glob("*.dat"))
    assert numbers(rows["parameter bytes"])[0] == stored
    # Operations: what the graph computes, before and after the passes.
    before = nnefopt.load(EXAMPLE)
    after = nnefopt.optimize(before.clone(), "default")
    computed = lambda m: sum(1 for op in m.walk() if op.name.startswith("nnef.")  # noqa: E731
                             and op.name not in ("nnef.graph", "nnef.return", "nnef.variable", "nnef.external"))
    assert numbers(rows["operations"])[:2] == [computed(before), computed(after)]


def test_exit_statuses_are_those_of_compilers(tmp_path, capsys):
    assert run([str(EXAMPLE), "-q", "-o", str(tmp_path / "o")])[0] == 0
    bad = tmp_path / "bad.nnef"
    bad.write_text("version 1.0;\ngraph G( x ) -> ( y ) { x = external(shape = [2]); y = nosuch(x); }\n")
    status, out, err = run([str(bad)])
    assert status == 1 and out == "" and "error:" in err  # bad input
    assert usage_error([], capsys)[0] == 2  # no model
    assert usage_error([str(EXAMPLE), "--emit", "nosuch"], capsys)[0] == 2
    assert usage_error([str(EXAMPLE), "--diff", str(EXAMPLE)], capsys)[0] == 2  # --diff draws: no picture asked


def test_warnings_come_before_the_error_they_precede(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "graph.nnef").write_text(
        "version 1.0;\ngraph G( x ) -> ( y )\n{\n    x = external(shape = [1, 3]);\n"
        "    s = softmax(x, 1);\n    y = nosuch(s);\n}\n")
    status, _, err = run([str(model)])
    lines = err.splitlines()
    assert status == 1 and ": warning: " in lines[0] and ": error: " in lines[-1]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_terminal_only_and_clears_its_line():
    terminal = _Terminal()
    assert list(progress(range(5), what="calibrating", stream=terminal, delay=0.0)) == list(range(5))
    drawn = terminal.getvalue()
    assert "\rcalibrating [" in drawn and drawn.endswith("\r\033[K")
    pipe = io.StringIO()
    assert list(progress(iter(range(3)), total=3, stream=pipe, delay=0.0)) == [0, 1, 2]
    assert pipe.getvalue() == ""
    quick = _Terminal()  # work that ends within the delay draws nothing
    assert list(progress(range(3), stream=quick, delay=60.0)) == [0, 1, 2] and quick.getvalue() == ""


def test_progress_bar_text():
    assert bar(5, 10, "x", 1.25) == f"x [{'#' * 15}{'.' * 15}] 5/10 1.2s"
    assert bar(3, None, "", 0.0) == "3 0.0s"
    assert bar(12, 10).startswith("[" + "#" * 30 + "]")


def test_warning_kind_ignores_the_particulars():
    a = "'mean' of batch_normalization has shape [1, 1, 1, 16]; per-channel values of [1, 16] assumed"
    b = "'scale' of batch_normalization has shape [1, 1, 1, 32]; per-channel values of [1, 32] assumed"
    assert warning_kind(a) == warning_kind(b)
    assert warning_kind("attribute 'axes' of 'softmax' given by position") != \
        warning_kind("attribute 'axes' of 'softmax' is an array; [1] assumed")
