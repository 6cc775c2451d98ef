"""Quantization as typed data of the dialect.

A graph.quant entry (`"x": zero_point_linear_quantize(zero_point = 0, scale = 0.1, ...)`)
is the `#nnef.quant<"zero_point_linear_quantize", {zero_point = 0, ...}>` attribute, the
encoding of the tensor type of the value it describes:

    %x = nnef.conv ... : (...) -> tensor<1x8x4x4xf32, #nnef.quant<"...", {...}>>

A rewrite that gives a value's replacement the old value's type keeps the entry, with
no attribute to carry by hand; a new type made from an element type and a shape has
none, as a newly computed value has none.
"""

from __future__ import annotations

from xdsl.dialects.builtin import DictionaryAttr, NoneAttr, StringAttr, TensorType
from xdsl.ir import Attribute, ParametrizedAttribute, SSAValue
from xdsl.irdl import irdl_attr_definition
from xdsl.rewriter import Rewriter

from nnefopt.dialects.attributes import from_attribute, to_attribute


@irdl_attr_definition
class QuantAttr(ParametrizedAttribute):
    """A quantization entry: the quantize operation's name and its arguments (a scale or
    zero point may be a list: per channel)."""

    name = "nnef.quant"

    algorithm: StringAttr
    arguments: DictionaryAttr

    def params(self) -> dict[str, object]:
        """The arguments as Python values (the frontend's form)."""
        return {k: from_attribute(v) for k, v in self.arguments.data.items()}


def quantization(algorithm: str, arguments: dict[str, object]) -> QuantAttr:
    return QuantAttr(StringAttr(algorithm), DictionaryAttr({k: to_attribute(v) for k, v in arguments.items()}))


def type_quantization(type_: Attribute) -> QuantAttr | None:
    encoding = type_.encoding if isinstance(type_, TensorType) else None
    return encoding if isinstance(encoding, QuantAttr) else None


def quantization_of(value: SSAValue) -> QuantAttr | None:
    """The quantization entry of the tensor `value` is, if it has one."""
    return type_quantization(value.type)


def with_quantization(type_: Attribute, quant: QuantAttr | None) -> Attribute:
    """`type_` with `quant` as its encoding (None: without one); a type that is no
    tensor type cannot say it and stays."""
    if not isinstance(type_, TensorType) or type_quantization(type_) == quant:
        return type_
    return TensorType(type_.element_type, type_.shape, NoneAttr() if quant is None else quant)


def set_quantization(value: SSAValue, quant: QuantAttr | None) -> SSAValue:
    """`value` quantized by `quant`: a value's type cannot change, so a new value of the
    new type takes its place (and its uses and name); returns the value to use now."""
    type_ = with_quantization(value.type, quant)
    if type_ == value.type:
        return value
    return Rewriter.replace_value_with_new_type(value, type_)


def unquantized(type_: Attribute) -> Attribute:
    """`type_` less its quantization: what a comparison of shapes and dtypes compares."""
    return with_quantization(type_, None)
