"""count_operations / operation_histogram count a graph's compute operations: the
statements of the NNEF text, less those that only introduce a tensor."""

from __future__ import annotations

import re
from collections import Counter

import pytest

import nnefopt
from nnefopt.passes.stats import count_operations, operation_histogram
from tests.models import graph_text, kt_variants

# `name = op(` or `[a, b] = op<scalar>(`: one statement per line in nnef-tools' output
STATEMENT = re.compile(r"^\s*(?:\w+|\[[\w\s,]*\])\s*=\s*(\w+)\s*[<(]", re.MULTILINE)


@pytest.mark.parametrize("name, path", kt_variants(), ids=[name for name, _ in kt_variants()])
def test_counts_the_statements_that_compute(name, path):
    text = graph_text(path)
    body = text[text.index("{", text.index("graph ")):]
    statements = Counter(STATEMENT.findall(body))
    expected = Counter({op: n for op, n in statements.items() if op not in ("external", "variable", "constant")})
    module = nnefopt.load(path)
    assert operation_histogram(module) == expected
    assert count_operations(module) == sum(expected.values()) == body.count(";") - sum(
        statements[op] for op in ("external", "variable", "constant"))


def test_dead_operations_leave_the_count():
    module = nnefopt.load(kt_variants()[0][1])
    before = count_operations(module)
    graph = next(op for op in module.ops if op.name == "nnef.graph")
    relu = next(op for op in graph.body.block.ops if op.name == "nnef.relu")
    copy = relu.clone()
    graph.body.block.insert_op_before(copy, relu)
    assert count_operations(module) == before + 1
    nnefopt.optimize(module, "dce")
    assert count_operations(module) == before
