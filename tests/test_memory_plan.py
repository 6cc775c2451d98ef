"""The greedy arena plan: no two tensors alive at once share a byte, and reuse makes the
arena smaller than one buffer per tensor."""

from __future__ import annotations

import pytest

import nnefopt
from nnefopt.memory_plan import plan
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
