"""nnef-opt as a driver: pass pipelines, the pass list, IR dumps, timing, the API."""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from contextlib import redirect_stderr, redirect_stdout

import pytest
from xdsl.passes import ModulePass

import nnefopt
from nnefopt.cli import main
from nnefopt.passes import PASSES, PIPELINES
from tests.models import SHARED

GRAPH = """version 1.0;
graph G( x ) -> ( y )
{
    x = external(shape = [2]);
    a = relu(x);
    b = relu(x);
    unused = exp(x);
    y = add(a, b);
}
"""


def run(args, stdin: str | None = None):
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            status = main(args)
    finally:
        sys.stdin = saved
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def graph(tmp_path):
    path = tmp_path / "g.nnef"
    path.write_text(GRAPH)
    return str(path)


def test_pass_spellings_are_the_same(graph):
    short = run([graph, "-p", "cse,dce", "--emit", "nnef"])
    long = run([graph, "--pass=cse,dce", "--emit", "nnef"])
    assert short == long and short[0] == 0
    assert "exp" not in short[1] and short[1].count("relu") == 1


def test_list_passes():
    status, out, _ = run(["--list-passes"])
    assert status == 0
    assert [line.split()[0] for line in out.splitlines()] == [*PIPELINES, *sorted(PASSES)]


def test_unknown_pass_suggests_close_names(graph):
    status, out, err = run([graph, "-p", "cs"])
    assert status == 1 and out == ""
    assert "unknown pass 'cs'; did you mean 'cse'" in err


def test_unknown_option_is_an_error(graph):
    status, _, err = run([graph, "-p", "dce{aggressive=true}"])
    assert status == 1 and "aggressive" in err and "Traceback" not in err


def test_print_ir_after_all_and_timing(graph):
    status, out, err = run([graph, "-p", "cse,dce", "--print-ir-after-all", "--timing", "--verify-each"])
    assert status == 0
    assert err.index("IR after cse") < err.index("IR after dce")
    after_cse = err.split("IR after cse")[1].split("IR after dce")[0]
    assert after_cse.count(" = nnef.relu %x") == 1
    assert "= nnef.exp %" not in err.split("IR after dce")[1]
    assert [line.split()[-1] for line in err.splitlines() if " ms " in line] == ["cse", "dce", "total"]


@pytest.mark.parametrize("form", [[], ["--mlir-print-op-generic"]], ids=["custom", "generic"])
def test_mlir_through_stdin_is_a_fixed_point(form):
    model = str(SHARED / "resnet8" / "t2n")
    status, first, _ = run([model, "-q", "--emit", "mlir", *form])
    assert status == 0
    assert ('"nnef.conv"(' in first) == bool(form) and ("= nnef.conv %" in first) != bool(form)
    status, second, _ = run(["-", "--emit", "mlir", *form], stdin=first)
    assert status == 0 and second == first
    # and the other form reads it too
    other = [] if form else ["--mlir-print-op-generic"]
    status, third, _ = run(["-", "--emit", "mlir", *other], stdin=first)
    assert status == 0 and run(["-", "--emit", "mlir", *form], stdin=third)[1] == first


def test_generic_flag_applies_to_ir_dumps(graph):
    status, _, err = run([graph, "-p", "cse", "--print-ir-after-all", "--mlir-print-op-generic"])
    assert status == 0 and '"nnef.relu"(%x)' in err
    status, _, err = run([graph, "-p", "cse", "--print-ir-after-all"])
    assert status == 0 and "nnef.relu %x" in err and '"nnef.' not in err


def test_mlir_output_file(tmp_path, graph):
    assert run([graph, "-o", str(tmp_path / "g.mlir")])[0] == 0
    status, out, _ = run([str(tmp_path / "g.mlir"), "--emit", "nnef"])
    assert status == 0 and "y = add(a, b);" in out


def test_user_pass_through_the_api(graph):
    @nnefopt.register_pass
    @dataclass(frozen=True)
    class RenameGraph(ModulePass):
        """Set the graph's name (a pass written by a user)."""

        name = "test-rename-graph"
        to: str = "renamed"

        def apply(self, ctx, op):
            from xdsl.dialects.builtin import StringAttr

            graph_op = next(o for o in op.ops if o.name == "nnef.graph")
            graph_op.properties["sym_name"] = StringAttr(self.to)

    try:
        module = nnefopt.optimize(nnefopt.load(graph), "test-rename-graph{to=other}")
        assert "nnef.graph @other inputs" in nnefopt.to_mlir(module)
        assert 'sym_name = "other"' in nnefopt.to_mlir(module, generic=True)
        status, out, _ = run([graph, "-p", "test-rename-graph", "--emit", "nnef"])
        assert status == 0 and "graph renamed(" in out.replace(" ", "").replace("graphrenamed", "graph renamed")
    finally:
        PASSES.pop("test-rename-graph")
