"""The categories of operations, as xDSL traits of the generated operation classes.

A pass asks `op.has_trait(ElementWise)` (or an op-table entry `entry.has_trait(...)`)
instead of keeping a list of names: an operation registered later is in the category
its traits say, and nothing else needs to learn its name. Where each operation's traits
come from is `nnefopt.ops` (derived from its signature and shape rule, or its one table).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.traits import OpTrait


@dataclass(frozen=True)
class ElementWise(OpTrait):
    """Each result item depends only on the items at the same index of the tensor
    operands, which broadcast to the one result."""


@dataclass(frozen=True)
class Activation(OpTrait):
    """A unary element-wise function that `fuse` may fold into a preceding conv or
    linear (`conv_<name>`, `linear_<name>`); its further tensor parameters (clamp's
    bounds) become scalar attributes of the fused operation."""


@dataclass(frozen=True)
class Declaration(OpTrait):
    """Computes nothing at run time: a graph input, a weight, metadata."""


@dataclass(frozen=True)
class GraphInput(OpTrait):
    """Introduces one of the graph's inputs."""


@dataclass(frozen=True)
class TensorSource(OpTrait):
    """Introduces a tensor rather than computing one (inputs, variables, constants):
    not counted as an operation of the graph."""


@dataclass(frozen=True)
class Effectful(OpTrait):
    """Must stay even when its results are unused (graph inputs, `update`)."""


@dataclass(frozen=True)
class NotFoldable(OpTrait):
    """Never computed ahead of time: what the graph is made of (inputs, weights,
    constants) and effects."""


@dataclass(frozen=True)
class ChannelLastCapable(OpTrait):
    """Its first operand `input` and its one result may be stored channel-last
    (`layout = "nhwc"`, set by the layout pass); the other operands and the attributes
    keep NNEF's channel-first order."""


@dataclass(frozen=True)
class SlidingWindow(OpTrait):
    """A pooling over a window of every axis (`size`, `stride`, `padding`, ...)."""


@dataclass(frozen=True)
class AxesReduction(OpTrait):
    """Reduces `axes` to extent 1, keeping the rank, in a way that does not depend on
    the order of `axes` (the layout pass may permute them)."""


@dataclass(frozen=True)
class Biased(OpTrait):
    """A weighted operation (`input`, `filter`, `bias`) whose bias adds per output
    channel."""


@dataclass(frozen=True)
class PadFoldable(OpTrait):
    """A window whose `padding` (with `border`) may absorb a preceding zero `pad`."""


@dataclass(frozen=True)
class Reshaping(OpTrait):
    """Changes only the shape of its one tensor operand, not the order of its items."""


@dataclass(frozen=True)
class DataMovement(OpTrait):
    """Moves the items of its one tensor operand without computing new ones
    (transposes and reshapes)."""


@dataclass(frozen=True)
class PositivelyHomogeneous(OpTrait):
    """Scaling its tensor input by a positive factor scales its result by the same
    factor, f(s * x) = s * f(x) for s > 0 (relu, leaky relu, pools): a per-channel
    scale passes through it where it keeps channels apart (cross-layer equalization)."""


@dataclass(frozen=True)
class KeepsQuantization(OpTrait):
    """Its result's items are items of its first operand (moved, selected, or clipped to
    a bound that operand's range holds): an int8 engine moves the codes, so the result
    keeps the operand's quantization entry (quantize pass)."""


@dataclass(frozen=True)
class WithinOperandRange(OpTrait):
    """Each item of its result lies between zero and items of its first operand (an
    average pool, leaky relu's alpha * x for 0 <= alpha <= 1): the operand's range
    holds the result, so an int8 engine computes it on the operand's scale and the
    result keeps the operand's quantization entry (quantize pass; tract pools only so)."""


@dataclass(frozen=True)
class Requantizing(OpTrait):
    """An int8 engine computes it on its operand's codes and requantizes into an entry
    of its result's own, chosen from its values (sigmoid, tanh, exp, softmax, a mean,
    whose range is narrower than its operand's; quantize pass)."""


@dataclass(frozen=True)
class Clipping(OpTrait):
    """An activation that only clips (relu, clamp): an int8 engine folds it into the
    requantization of its producer, so the two share one entry, chosen from the clipped
    values (quantize pass)."""


@dataclass(frozen=True)
class SharedQuantization(OpTrait):
    """An int8 engine computes it on codes of one scale: all its tensor operands share
    one quantization entry (add, concat; quantize pass)."""


@dataclass(frozen=True)
class Contraction(OpTrait):
    """Multiplies two activations and sums in an accumulator (matmul): an int8 engine
    computes it in int32 from quantized operands."""


@dataclass(frozen=True)
class Fused(OpTrait):
    """A fused `<base>_<activation>` operation (nnefopt.frontend.fused); its entry's
    slot "fused" holds the two operations' names, to split it again."""


ALL_TRAITS = (ElementWise, Activation, Declaration, GraphInput, TensorSource, Effectful, NotFoldable,
              ChannelLastCapable, SlidingWindow, AxesReduction, Biased, PadFoldable, Reshaping, DataMovement,
              PositivelyHomogeneous, KeepsQuantization, WithinOperandRange, Requantizing, Clipping,
              SharedQuantization, Contraction, Fused)

__all__ = [t.__name__ for t in ALL_TRAITS] + ["ALL_TRAITS"]
