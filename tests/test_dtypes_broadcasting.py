"""One dtype table and one broadcasting rule: the IR, the kernels and the passes agree
on both because they read the same ones."""

from __future__ import annotations

import numpy as np
import pytest

import nnefopt
from nnefopt.broadcasting import align, aligned, aligned_shape, broadcast_shape
from nnefopt.dialects.types import dtype_of, tensor_type
from nnefopt.dtypes import TABLE, dtype_of_array, dtype_of_literal, item_dtype
from nnefopt.interp.kernels_elementwise import to_dtype
from nnefopt.shapes import broadcast


@pytest.mark.parametrize("entry", TABLE, ids=lambda d: d.name)
def test_each_dtype_reads_the_same_in_every_spelling(entry):
    type_ = tensor_type(entry.name, (2,))
    assert type_.element_type == entry.element
    assert dtype_of(type_) == entry.name
    assert to_dtype(entry.name) == np.dtype(entry.numpy)
    assert dtype_of_array(np.zeros(2, entry.numpy)) == entry.name
    assert item_dtype(entry.element) == np.dtype(entry.numpy)
    assert item_dtype(entry.element).byteorder in "<|="  # weights are stored little-endian


def test_arrays_and_literals_find_their_dtype():
    assert dtype_of_array(np.zeros(1, np.uint8)) == "integer"
    assert dtype_of_array(np.zeros(1, np.float64)) == "scalar"
    assert [dtype_of_literal(v) for v in (True, 3, 2.5)] == ["logical", "integer", "scalar"]
    assert to_dtype("i8") == np.int8 and to_dtype("f16") == np.float16


def test_shapes_align_from_the_left():
    assert aligned_shape((1, 4), 4) == (1, 4, 1, 1)
    assert broadcast_shape((1, 4), (1, 4, 2, 2)) == (1, 4, 2, 2)
    assert broadcast_shape((4,), (4, 3)) == (4, 3)  # numpy would refuse: it aligns from the right
    assert broadcast_shape((2,), (3,)) is None
    assert broadcast((1, 4), (1, 4, 2, 2)) == (1, 4, 2, 2)
    with pytest.raises(ValueError, match="do not broadcast"):
        broadcast((2,), (3,))


def test_arrays_align_as_shapes_do():
    bias = np.arange(4.0).reshape(1, 4)
    assert aligned(bias, 4).shape == (1, 4, 1, 1)
    assert [a.shape for a in align(bias, np.zeros((1, 4, 2, 2)))] == [(1, 4, 1, 1), (1, 4, 2, 2)]
    assert aligned(np.zeros((2, 3)), 1).shape == (2, 3)  # never fewer axes


def test_canonicalize_merges_constants_that_broadcast_from_the_left(tmp_path):
    # x of rank 1 against [4, 3] constants: the rule numpy follows would refuse the shapes.
    path = tmp_path / "g.nnef"
    path.write_text("""version 1.0;
graph G( x ) -> ( y )
{
    x = external<scalar>(shape = [4]);
    a = constant<scalar>(shape = [4, 3], value = [1.0]);
    b = constant<scalar>(shape = [4, 3], value = [2.0]);
    i = add(x, a);
    y = add(i, b);
}
""")
    module = nnefopt.load(path)
    x = np.arange(4, dtype=np.float32)
    before = nnefopt.run(module, {"x": x})["y"]
    nnefopt.optimize(module, "canonicalize")
    adds = [op for op in module.walk() if op.name == "nnef.add"]
    assert len(adds) == 1
    after = nnefopt.run(module, {"x": x})["y"]
    np.testing.assert_array_equal(after, before)
    np.testing.assert_array_equal(after, np.broadcast_to(x[:, None] + 3.0, (4, 3)))
