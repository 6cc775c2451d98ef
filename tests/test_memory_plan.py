"""The greedy arena plan: no two tensors alive at once share a byte, and reuse makes the
arena smaller than one buffer per tensor."""

from __future__ import annotations

import pytest

import nnefopt
from nnefopt.memory_plan import Buffer, lower_bound, place, plan
from tests.models import SHARED


@pytest.mark.parametrize("model", ["resnet8", "mobilenetv2_035", "tiny_unet"])
def test_live_tensors_never_overlap(model):
    arena = plan(nnefopt.load(SHARED / model / "kt"))
    buffers = arena.buffers
    for i, a in enumerate(buffers):
        start = arena.offsets[a.value]
        assert start % arena.alignment == 0 and start + a.size <= arena.peak_bytes
        for b in buffers[i + 1:]:
            if a.first <= b.last and b.first <= a.last:  # alive together
                other = arena.offsets[b.value]
                assert start + a.size <= other or other + b.size <= start, (a, b)
    assert max(b.size for b in buffers) <= arena.peak_bytes < arena.unplanned_bytes


def test_a_chain_needs_two_buffers(tmp_path):
    """In a chain of same-shaped element-wise operations each tensor dies when the next
    is made: two buffers suffice."""
    (tmp_path / "graph.nnef").write_text("""version 1.0;
graph g( x ) -> ( z )
{
    x = external<scalar>(shape = [1, 1000]);
    a = relu(x);
    b = relu(a);
    z = relu(b);
}
""")
    arena = plan(nnefopt.load(tmp_path))
    assert len(arena.buffers) == 4 and arena.peak_bytes == 2 * 4000


def test_the_plan_reaches_the_bound_where_largest_first_does_not():
    """Largest first puts the 48-byte pair on top of the 32-byte tensors (112 bytes); by
    size x lifetime the long-lived 32s go first and both 48s fit beside them: the bound."""
    buffers = [Buffer("a", 32, 1, 3), Buffer("b", 48, 2, 2), Buffer("c", 32, 3, 6), Buffer("d", 48, 4, 6)]
    made = place(buffers, 16)
    assert lower_bound(buffers, 16) == made.peak_bytes == 80
    for x, y in ((x, y) for x in buffers for y in buffers if x is not y):
        if x.first <= y.last and y.first <= x.last:  # live together: apart in the arena
            ox, oy = made.offsets[x.value], made.offsets[y.value]
            assert ox + x.size <= oy or oy + y.size <= ox
