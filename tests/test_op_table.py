"""The op table's entries: traits where the signature or the one table puts them, cost
rules, slots other modules fill, and what registering refuses."""

from __future__ import annotations

import pytest

from nnefopt.dialects.nnef import OPERATIONS
from nnefopt.ops import CATEGORIES, op_table, register_operation, register_slot
from nnefopt.traits import (
    ALL_TRAITS,
    Activation,
    ChannelLastCapable,
    Declaration,
    Effectful,
    ElementWise,
    GraphInput,
    NotFoldable,
)
from xdsl.traits import Pure


def test_every_class_has_the_traits_of_its_entry():
    for name, entry in op_table().items():
        cls = OPERATIONS[name]
        for trait in ALL_TRAITS:
            assert cls.has_trait(trait) == entry.has_trait(trait), (name, trait)
        assert cls.has_trait(Pure) == (not entry.has_trait(Effectful)), name


def test_element_wise_comes_from_the_shape_rule():
    table = op_table()
    unary = table["exp"].shape_rule
    binary = table["add"].shape_rule
    derived = {name for name, e in table.items() if e.shape_rule in (unary, binary)}
    assert derived and derived <= {name for name, e in table.items() if e.has_trait(ElementWise)}
    assert not table["matmul"].has_trait(ElementWise) and not table["softmax"].has_trait(ElementWise)
    assert all(table[name].has_trait(ElementWise) for name, kinds in CATEGORIES.items() if Activation in kinds)


def test_fused_operations_exist_for_every_activation_and_may_be_channel_last():
    table = op_table()
    activations = [name for name, e in table.items() if e.has_trait(Activation) and not name.startswith("conv_")
                   and not name.startswith("linear_")]
    assert activations
    for name in activations:
        assert f"conv_{name}" in table and f"linear_{name}" in table
        assert table[f"conv_{name}"].has_trait(ChannelLastCapable)
        assert not table[f"linear_{name}"].has_trait(ChannelLastCapable)
        assert OPERATIONS[f"conv_{name}"].has_trait(ChannelLastCapable)


def test_graph_inputs_are_declarations_and_effectful():
    table = op_table()
    inputs = {name for name, e in table.items() if e.has_trait(GraphInput)}
    assert inputs == {"external", "tract_core_external"}
    assert all(table[n].has_trait(Declaration) and table[n].has_trait(NotFoldable) for n in inputs)


def test_conv_cost_counts_groups_through_the_filter():
    conv = op_table()["conv"]
    dense = conv.cost([(1, 8, 10, 10), (16, 8, 3, 3), (1, 16)], [(1, 16, 10, 10)], {"groups": 1})
    assert dense.macs == 1600 * 8 * 9
    assert dense.flops == 2 * dense.macs + 1600  # and the bias, once per output
    grouped = conv.cost([(1, 8, 10, 10), (16, 2, 3, 3), None], [(1, 16, 10, 10)], {"groups": 4})
    assert grouped.macs == dense.macs // 4 and grouped.flops == 2 * grouped.macs
    depthwise = conv.cost([(1, 8, 10, 10), (8, 1, 3, 3), None], [(1, 8, 10, 10)], {"groups": 0})
    assert depthwise.macs == 800 * 9
    assert dense.bytes_read == 4 * (800 + 16 * 8 * 9 + 16) and dense.bytes_written == 4 * 1600


def test_deconv_linear_matmul_pool_and_default_costs():
    table = op_table()
    assert table["deconv"].cost([(1, 4, 5, 5), (4, 6, 3, 3), None], [(1, 6, 7, 7)]).macs == 100 * 54
    assert table["linear"].cost([(2, 10), (3, 10), (1, 3)], [(2, 3)]).macs == 60
    assert table["matmul"].cost([(5, 7), (7, 2)], [(5, 2)]).macs == 70
    assert table["matmul"].cost([(7, 5), (7, 2)], [(5, 2)], {"transposeA": True}).macs == 70
    pooled = table["max_pool"].cost([(1, 3, 8, 8)], [(1, 3, 4, 4)], {"size": [1, 1, 2, 2]})
    assert (pooled.macs, pooled.flops) == (0, 48 * 4)
    assert table["sum_reduce"].cost([(2, 3, 4)], [(2, 1, 1)], {"axes": [1, 2]}).flops == 24
    assert table["transpose"].cost([(2, 3)], [(3, 2)], {"axes": [1, 0]}).flops == 6  # one per element
    variable = table["variable"].cost([], [(4, 4)], {"shape": [4, 4], "label": "w"})
    assert (variable.flops, variable.bytes_read, variable.bytes_written) == (0, 0, 64)


def test_fused_cost_is_the_convolution_and_its_activation():
    table = op_table()
    operands, results = [(1, 2, 4, 4), (3, 2, 1, 1), None], [(1, 3, 4, 4)]
    conv, fused = table["conv"].cost(operands, results), table["conv_relu"].cost(operands, results)
    assert fused.macs == conv.macs and fused.flops == conv.flops + 48


def test_a_split_into_contiguous_blocks_is_a_view_and_a_strided_one_a_copy():
    split = op_table()["split"]
    parts = [(1, 2, 4, 4), (1, 6, 4, 4)]
    channels = split.cost([(1, 8, 4, 4)], parts, {"axis": 1, "ratios": [1, 3]})
    assert (channels.flops, channels.bytes_read, channels.bytes_written) == (0, 0, 0)
    outer = split.cost([(8, 4)], [(2, 4), (6, 4)], {"axis": 0, "ratios": [1, 3]})
    assert outer.bytes_read == outer.bytes_written == 0
    # two images: each part is two blocks, one per image, so it is copied out
    batch = split.cost([(2, 8, 4, 4)], [(2, 2, 4, 4), (2, 6, 4, 4)], {"axis": 1, "ratios": [1, 3]})
    assert batch.bytes_read == batch.bytes_written == 4 * 256
    width = split.cost([(1, 8, 4, 4)], [(1, 8, 4, 1), (1, 8, 4, 3)], {"axis": 3, "ratios": [1, 3]})
    assert width.bytes_read == width.bytes_written == 4 * 128 and width.flops == 128


def test_a_concat_its_producers_write_in_place_moves_nothing():
    concat = op_table()["concat"]
    channels = concat.cost([[(1, 2, 4, 4), (1, 6, 4, 4)]], [(1, 8, 4, 4)], {"axis": 1})
    assert channels.bytes_read == channels.bytes_written == 0
    rows = concat.cost([[(8, 1), (8, 3)]], [(8, 4)], {"axis": 1})
    assert rows.bytes_read == rows.bytes_written == 4 * 32


def test_slots_are_filled_by_other_modules():
    entry = op_table()["relu"]
    marker = object()
    register_slot("relu", "test_op_table.marker", marker)
    try:
        assert entry.slot("test_op_table.marker") is marker
    finally:
        entry.slots.pop("test_op_table.marker")
    assert entry.slot("test_op_table.marker") is None


def test_registering_a_taken_name_or_two_fragments_is_refused():
    with pytest.raises(ValueError, match="already in the op table"):
        register_operation("fragment relu( x: tensor<scalar> ) -> ( y: tensor<scalar> );", abs)
    with pytest.raises(ValueError, match="one fragment"):
        register_operation("fragment f1( x: tensor<scalar> ) -> ( y: tensor<scalar> );\n"
                           "fragment f2( x: tensor<scalar> ) -> ( y: tensor<scalar> );", abs)
