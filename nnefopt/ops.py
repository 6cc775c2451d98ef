"""The op table: everything nnefopt knows about each operation, in one entry.

An entry holds the signature (the operation's fragment in the shipped NNEF libraries),
its categories as xDSL traits (`nnefopt.traits`), its shape rule, its numpy kernel and
its cost rule. Shape rules, kernels and cost rules are written in their own modules
(`shapes`, `interp.kernels`, `costs`) and joined here once; everything else (the
dialect, shape inference, the interpreter, the passes) asks the entry. Later concerns
(a quantization rule, a C kernel) put their part into an entry's `slots` from their own
module with `register_slot`, so this module depends on none of them.

Traits come from the signature where it says them (an operation whose shape rule is
the element-wise one is element-wise; an activation is element-wise; a fused
`conv_<activation>` may be channel-last as conv is) and otherwise from `CATEGORIES`,
the one table of them. `register_operation` adds an operation from its NNEF
declaration and its kernel.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from xdsl.traits import OpTrait

from nnefopt import shapes
from nnefopt.costs import COST_RULES, Cost, data_bytes, default_cost
from nnefopt.frontend import ast, stdlib
from nnefopt.frontend.binder import is_tensor_type
from nnefopt.frontend.evaluate import evaluate_constant
from nnefopt.frontend.fused import BASES, fused_name, fused_operations
from nnefopt.frontend.parser import parse_document
from nnefopt.interp.kernels import KERNELS
from nnefopt.shapes import SHAPE_RULES
from nnefopt.traits import (
    Activation,
    AxesReduction,
    Biased,
    ChannelLastCapable,
    Clipping,
    Contraction,
    DataMovement,
    Declaration,
    Effectful,
    ElementWise,
    Fused,
    GraphInput,
    KeepsQuantization,
    NotFoldable,
    PadFoldable,
    PositivelyHomogeneous,
    Requantizing,
    Reshaping,
    SharedQuantization,
    SlidingWindow,
    TensorSource,
    WithinOperandRange,
)

_INPUT = (Declaration, GraphInput, TensorSource, Effectful, NotFoldable)
_SPATIAL = (ChannelLastCapable,)
_POOL = (ChannelLastCapable, SlidingWindow, PositivelyHomogeneous)

# The categories the signatures do not say. Element-wise operations are not listed:
# their shape rule says it (see `derived_traits`); activations are element-wise too.
CATEGORIES: dict[str, tuple[type[OpTrait], ...]] = {
    "external": _INPUT,
    "tract_core_external": _INPUT,
    "variable": (Declaration, TensorSource, NotFoldable),
    "constant": (TensorSource, NotFoldable),
    "update": (Effectful, NotFoldable),
    "tract_core_properties": (Declaration, NotFoldable),
    "prelu": (ElementWise,),  # its rule is its own (alpha broadcasts to x, not both ways)
    **{name: (Activation, Requantizing) for name in ("sigmoid", "tanh", "elu")},
    "gelu": (Activation,),
    **{name: (Requantizing,) for name in ("exp", "softmax")},
    "leaky_relu": (Activation, PositivelyHomogeneous, WithinOperandRange),
    "relu": (Activation, PositivelyHomogeneous, Clipping, KeepsQuantization),
    "clamp": (Activation, Clipping, KeepsQuantization),
    "conv": (ChannelLastCapable, Biased, PadFoldable),
    "deconv": (ChannelLastCapable, Biased),
    "linear": (Biased,),
    **{name: _SPATIAL for name in ("batch_normalization", "nearest_upsample", "nearest_downsample",
                                   "area_downsample", "multilinear_upsample")},
    "box": (*_POOL, PadFoldable),
    "avg_pool": (*_POOL, PadFoldable, WithinOperandRange),
    "max_pool": (*_POOL, PadFoldable, KeepsQuantization),
    "rms_pool": _POOL,
    **{name: (AxesReduction,) for name in ("sum_reduce", "max_reduce", "min_reduce", "any_reduce", "all_reduce")},
    "mean_reduce": (AxesReduction, Requantizing),
    **{name: (Reshaping, DataMovement, KeepsQuantization) for name in ("reshape", "squeeze", "unsqueeze")},
    "transpose": (DataMovement, KeepsQuantization),
    **{name: (KeepsQuantization,) for name in ("pad", "slice", "tile")},
    **{name: (*_SPATIAL, KeepsQuantization) for name in ("nearest_upsample", "nearest_downsample")},
    "add": (SharedQuantization,),
    "concat": (SharedQuantization, KeepsQuantization),
    "matmul": (Contraction,),
    "copy": (DataMovement,),
}

# The shape rules that make an operation element-wise.
_ELEMENTWISE_RULES = (shapes.unary, shapes.elementwise)


@dataclass(frozen=True, eq=False)
class OpDef:
    name: str
    signature: ast.Fragment
    shape_rule: Callable | None
    kernel: Callable | None
    traits: tuple[OpTrait, ...] = ()
    cost_rule: Callable | None = None
    slots: dict[str, object] = field(default_factory=dict)  # filled by other modules: register_slot

    # Computed once: passes ask for them on every operation they visit.
    @cached_property
    def tensor_params(self) -> list[ast.Param]:
        return [p for p in self.signature.params if is_tensor_type(p.type)]

    @cached_property
    def attribute_params(self) -> list[ast.Param]:
        return [p for p in self.signature.params if not is_tensor_type(p.type)]

    @cached_property
    def kernel_takes_dtype(self) -> bool:
        """Whether the kernel computes a result of the dtype it is given (`cast`,
        `constant`: the generic type argument is the target), by its `dtype` parameter."""
        return self.kernel is not None and "dtype" in inspect.signature(self.kernel).parameters

    @cached_property
    def attribute_defaults(self) -> dict[str, object]:
        """Each attribute parameter's default value (None where it has none)."""
        return {p.name: None if p.default is None else evaluate_constant(p.default) for p in self.attribute_params}

    @property
    def results(self) -> list[ast.Result]:
        return self.signature.results

    def has_trait(self, trait: type[OpTrait]) -> bool:
        return any(isinstance(t, trait) for t in self.traits)

    def slot(self, name: str, default: object = None) -> object:
        return self.slots.get(name, default)

    def cost(self, operands: list, results: list, attribs: dict | None = None, itemsize: int = 4) -> Cost:
        """MACs, FLOPs and bytes moved for operand shapes `operands` (declaration order;
        a tensor array as a list of shapes, an absent tensor as None), result shapes
        `results` and attributes `attribs` (defaults filled in where left out)."""
        attribs = {**self.attribute_defaults, **(attribs or {})}
        if self.has_trait(TensorSource) or self.has_trait(Declaration):
            return Cost(0, 0, 0, data_bytes(results, itemsize) if self.has_trait(TensorSource) else 0)
        rule = self.cost_rule or default_cost
        macs, flops, *moves = rule(operands, results, attribs)
        if moves and not moves[0]:  # a view: no bytes move
            return Cost(macs, flops, 0, 0)
        return Cost(macs, flops, data_bytes(operands, itemsize), data_bytes(results, itemsize))


def derived_traits(name: str, signature: ast.Fragment, shape_rule: Callable | None,
                   declared: tuple[type[OpTrait], ...] = ()) -> tuple[OpTrait, ...]:
    kinds = list(CATEGORIES.get(name, ())) + [t for t in declared if t not in CATEGORIES.get(name, ())]
    if Activation in kinds or shape_rule in _ELEMENTWISE_RULES:
        kinds.append(ElementWise)
    return tuple(kind() for kind in dict.fromkeys(kinds))


_TABLE: dict[str, OpDef] = {}


def _entry(name: str, signature: ast.Fragment, kernel=None, shape_rule=None, cost_rule=None,
           traits: tuple[type[OpTrait], ...] = ()) -> OpDef:
    shape_rule = shape_rule or SHAPE_RULES.get(name)
    return OpDef(name, signature, shape_rule, kernel or KERNELS.get(name),
                 derived_traits(name, signature, shape_rule, traits),
                 cost_rule or COST_RULES.get(name))


def _fused_entries(bases: dict[str, OpDef], activations: list[OpDef]) -> dict[str, OpDef]:
    """`conv_<act>` and `linear_<act>` for every activation: channel-last capable where
    the base is, costing the base's work and the activation's."""
    fragments = fused_operations({e.name: e.signature for e in [*bases.values(), *activations]},
                                 list(bases), [a.name for a in activations])
    stdlib.add_operations(fragments)
    entries = {}
    for base in bases.values():
        for act in activations:
            name = fused_name(base.name, act.name)
            traits = ((ChannelLastCapable,) if base.has_trait(ChannelLastCapable) else ()) + (Fused,)
            entries[name] = _entry(name, fragments[name], cost_rule=_fused_cost(base, act), traits=traits)
            entries[name].slots["fused"] = (base.name, act.name)
    return entries


def _fused_cost(base: OpDef, activation: OpDef) -> Callable:
    def rule(operands, results, attribs):
        macs, flops = (base.cost_rule or default_cost)(operands[:3], results, attribs)
        _, extra = (activation.cost_rule or default_cost)([results[0]], results, {})
        return macs, flops + extra

    return rule


def op_table() -> dict[str, OpDef]:
    if not _TABLE:
        signatures = {**stdlib.standard_operations(), **stdlib.library(stdlib.EXTRAS), **stdlib.tract_operations()}
        _TABLE.update((name, _entry(name, signature)) for name, signature in signatures.items())
        activations = [e for e in _TABLE.values() if e.has_trait(Activation)]
        _TABLE.update(_fused_entries({b: _TABLE[b] for b in BASES}, activations))
    return _TABLE


# ---- adding operations -----------------------------------------------------------------

_LISTENERS: list[Callable[[list[OpDef]], None]] = []


def on_register(listener: Callable[[list[OpDef]], None]) -> None:
    """Call `listener(new_entries)` whenever operations are registered (the dialect
    generates their classes)."""
    _LISTENERS.append(listener)


def register_operation(declaration: str, kernel: Callable, *, shape_rule: Callable | None = None,
                       cost_rule: Callable | None = None, traits: tuple[type[OpTrait], ...] = ()) -> OpDef:
    """Add the operation declared by `declaration` (one NNEF `fragment` declaration)
    with its numpy kernel (called as the op-table kernels are: tensors positionally,
    attributes by name). An element-wise operation without a shape rule gets the
    element-wise one (broadcasting). An Activation also gets its fused `conv_<name>`
    and `linear_<name>`. Registering the same declaration again returns the entry it
    made; a different one under a taken name is an error."""
    doc = parse_document(declaration, "<register_operation>", require_graph=False)
    if len(doc.fragments) != 1:
        raise ValueError("register_operation takes the declaration of one fragment")
    signature = doc.fragments[0]
    name = signature.name
    table = op_table()
    if name in table:
        existing = table[name]
        if existing.slot("declaration") == declaration and existing.kernel is kernel:
            return existing
        raise ValueError(f"operation {name!r} is already in the op table")
    traits = tuple(traits)
    if shape_rule is None and (ElementWise in traits or Activation in traits):
        shape_rule = shapes.unary if len([p for p in signature.params if is_tensor_type(p.type)]) == 1 \
            else shapes.elementwise
    entry = _entry(name, signature, kernel, shape_rule, cost_rule, traits)
    entry.slots["declaration"] = declaration
    stdlib.add_operations({name: signature})
    new = {name: entry}
    if entry.has_trait(Activation):
        new.update(_fused_entries({b: table[b] for b in BASES}, [entry]))
    table.update(new)
    for listener in _LISTENERS:
        listener(list(new.values()))
    return entry


def register_slot(op_name: str, slot: str, value: object) -> None:
    """Put another module's part of an operation (its quantization rule, its C kernel)
    into its entry, under `slot`."""
    op_table()[op_name].slots[slot] = value


def entry_of(name: str) -> OpDef | None:
    return op_table().get(name)


def shape_rule_of(name: str) -> Callable | None:
    entry = op_table().get(name)
    return None if entry is None else entry.shape_rule


def kernel_of(name: str) -> Callable | None:
    entry = op_table().get(name)
    return None if entry is None else entry.kernel


def has_trait(name: str, trait: type[OpTrait]) -> bool:
    """Whether the op-table operation `name` has `trait` (False for a name not in it)."""
    entry = op_table().get(name)
    return entry is not None and entry.has_trait(trait)


def names_with(trait: type[OpTrait]) -> frozenset[str]:
    return frozenset(name for name, entry in op_table().items() if entry.has_trait(trait))
