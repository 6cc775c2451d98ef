"""What the nnef passes' patterns share.

- `known_value`: the array an SSA value is known to hold (a variable's data, a constant);
  `constant_value`: the array of a `constant` operation, quantized or not (one value
  filling its shape is a read-only broadcast view: nothing is allocated for it);
- `stored(array)`: the items such a view is made of; `affordable`: whether a pass may
  make an array of so many items from operands that store so few;
- `create`: a new operation of the op table, its result types from the shape rule;
- `Weights`: new variables with labels no other tensor file of the model uses
  (`fresh_name`, from `tensor_names`: a name not yet taken);
- `replace_value`: replace uses without losing a name the graph's interface promises
  (a graph output keeps its name; its producer changes); `take_place`: a value made to
  stand for another takes its tensor name and quantization.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from functools import cached_property

import numpy as np
from xdsl.dialects.builtin import DenseResourceAttr, DictionaryAttr, ModuleOp, StringAttr, TensorType
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter
from xdsl.rewriter import InsertPoint
from xdsl.transforms.dead_code_elimination import is_trivially_dead

from nnefopt.dialects.nnef import (
    OPERATIONS,
    ReturnOp,
    dtype_of,
    field_name,
    from_attribute,
    tensor_type,
    to_attribute,
    weight_attribute,
    weight_of,
)
from nnefopt.dialects.quantization import quantization_of, set_quantization
from nnefopt.dialects.tensor_names import fresh_name, set_tensor_name, tensor_name
from nnefopt.frontend.evaluate import evaluate_constant
from nnefopt.broadcasting import aligned  # noqa: F401  (the passes' name for it)
from nnefopt.dtypes import NUMPY_TYPES, dtype_of_array
from nnefopt.traits import GraphInput


def is_op(op: Operation, *names: str) -> bool:
    """Whether `op` is an instance of one of the op-table operations `names` (`conv`,
    not `nnef.conv`)."""
    return any(isinstance(op, OPERATIONS[name]) for name in names)


def op_named(value: SSAValue, *names: str) -> Operation | None:
    """The operation defining `value` when it is one of `names` (`conv`, not `nnef.conv`)."""
    owner = value.owner
    if isinstance(owner, Operation) and is_op(owner, *names):
        return owner
    return None


def producer_with(value: SSAValue, trait: type) -> Operation | None:
    """The operation defining `value` when it has `trait` (an nnefopt.traits class)."""
    owner = value.owner
    return owner if isinstance(owner, Operation) and owner.has_trait(trait) else None


def is_quantized(value: SSAValue) -> bool:
    return quantization_of(value) is not None


def is_known(value: SSAValue) -> bool:
    """Whether the value is a constant or a variable with data, without reading it.
    A quantized tensor is not: graph.quant rounds its values, and folding would lose that."""
    owner = value.owner
    if not isinstance(owner, Operation) or is_quantized(value):
        return False
    if is_op(owner, "variable"):
        data = owner.attributes.get("nnef.data")
        return isinstance(data, DenseResourceAttr) and weight_of(data) is not None
    return is_op(owner, "constant") and _fills_its_shape(owner)


def _fills_its_shape(op: Operation) -> bool:
    """Whether a `constant`'s values fill its static shape (one value, or one per item):
    checked on its values as written, without making the array of its shape."""
    shape, values = _constant_parts(op)
    return values is not None and (values.size == 1 or values.size == math.prod(shape))


def _constant_parts(op: Operation) -> tuple[list, np.ndarray | None]:
    """A `constant`'s shape and its values as written (None when the shape is symbolic
    or the values are not an array of one type)."""
    shape = from_attribute(op.properties["shape"])
    if not all(isinstance(d, int) for d in shape):
        return shape, None
    try:
        values = np.asarray(from_attribute(op.properties["value"]),
                            NUMPY_TYPES.get(dtype_of(op.results[0].type), np.float32))
    except (ValueError, TypeError, OverflowError):  # ragged, or a value of another type
        return shape, None
    return shape, values


def known_value(value: SSAValue) -> np.ndarray | None:
    if not is_known(value):
        return None
    owner = value.owner
    if is_op(owner, "variable"):
        data = weight_of(owner.attributes["nnef.data"])
        return None if data is None else np.asarray(data)
    return constant_value(owner)


def constant_value(op: Operation) -> np.ndarray | None:
    """The array a `constant` operation holds (one value fills its shape), whether
    quantized or not; None when its shape is symbolic or its values do not fill it."""
    shape, values = _constant_parts(op)
    if values is None:
        return None
    if values.size == 1:  # a view: a constant of 2^31 items declared costs one
        return np.broadcast_to(values.reshape(()), shape)
    return values.reshape(shape) if values.size == math.prod(shape) else None


def stored(array: np.ndarray) -> np.ndarray:
    """The part of `array` its memory holds: each broadcast axis (stride 0) cut to one
    item, so that np.broadcast_to(stored(a), a.shape) is `a` again. A view, never a copy:
    what an element-wise computation on a broadcast constant should work on."""
    return array[tuple(slice(0, 1) if stride == 0 and size > 1 else slice(None)
                       for stride, size in zip(array.strides, array.shape))]


def is_one_value(array: np.ndarray) -> bool:
    """Whether `array` is one value broadcast (or has one item): known from its strides,
    without reading it."""
    return array.size <= 1 or all(stride == 0 for stride in array.strides)


# How much a pass may materialize from known operands (fold-constants' results, fused
# filters, new weights): anything up to SMALL_ELEMENTS items, above that at most GROWTH
# times the items the operands store, and (fold-constants) never more than MAX_ELEMENTS. Element-wise
# work, transposes, reshapes and the conv fusions stay within GROWTH; a tile, a pad or a
# broadcast of a small tensor (a one-value constant declared with 2^31 items) would turn
# a line of the graph into a large file and as much memory, so it stays an operation.
# XLA's constant folding refuses broadcasts and results past a size for the same reason.
SMALL_ELEMENTS = 1 << 16
GROWTH = 4
MAX_ELEMENTS = 1 << 22


def stored_elements(value: SSAValue) -> int:
    """The items a known value keeps in memory or on disk (one for a one-value constant,
    whatever its shape); 0 for a value that is not known."""
    array = known_value(value)
    return 0 if array is None else stored(array).size


def affordable(elements: int, operands: Iterable[SSAValue], max_elements: float = math.inf) -> bool:
    """Whether making an array of `elements` items from `operands` stays within the bounds
    above (SMALL_ELEMENTS, GROWTH; `max_elements` is fold-constants' MAX_ELEMENTS: a
    fused filter is as large as the model's own)."""
    if elements > max_elements:
        return False
    return elements <= SMALL_ELEMENTS or elements <= GROWTH * sum(stored_elements(v) for v in operands)


def static_shape(value: SSAValue) -> tuple[int, ...] | None:
    type_ = value.type
    if not isinstance(type_, TensorType) or any(d < 0 for d in type_.get_shape()):
        return None
    return tuple(type_.get_shape())


def attribute(op: Operation, name: str) -> object:
    """An attribute parameter of a table operation, its default when the op leaves it out."""
    prop = op.properties.get(field_name(name))
    if prop is None:
        return op.OP_DEF.attribute_defaults[name]
    param = next(p for p in op.OP_DEF.attribute_params if p.name == name)
    return from_attribute(prop, param.type)


def attributes(op: Operation) -> dict[str, object]:
    return {p.name: attribute(op, p.name) for p in op.OP_DEF.attribute_params}


def create(op_name: str, operands: list, attribs: dict[str, object] | None = None, *,
           result_types: list[Attribute] | None = None, like: Operation | None = None,
           name: str | None = None) -> Operation:
    """A table operation. Without result types, the shape rule gives them (static shapes,
    the first operand's element type); `like` lends its location, and `name` is the
    tensor name of its (first) result."""
    cls = OPERATIONS[op_name]
    attribs = attribs or {}
    if result_types is None:
        result_types = _inferred_types(cls.OP_DEF, operands, attribs)
    properties = {field_name(k): to_attribute(v) for k, v in attribs.items()}
    op = cls(operands=operands, properties=properties, result_types=result_types)
    if like is not None:
        op.location = like.location
    if name is not None:
        set_tensor_name(op.results[0], name)
    return op


def _inferred_types(entry, operands: list, attribs: dict) -> list[Attribute]:
    shapes = [None if o is None else [static_shape(v) for v in o] if isinstance(o, (list, tuple)) else static_shape(o)
              for o in operands]
    defaults = {p.name: evaluate_constant(p.default) for p in entry.attribute_params
                if p.name not in attribs and p.default is not None}
    shape = entry.shape_rule(*shapes, **defaults, **attribs)
    first = next(o for o in operands if o is not None)
    first = first[0] if isinstance(first, (list, tuple)) else first
    return [TensorType(first.type.element_type, list(shape))]


MAX_HINT = 60  # characters of a new weight's label taken from its hint (4 UTF-8 bytes each at most)


class Weights:
    """New weights of one pass run: variables (or, for one value of rank 0, a literal)
    whose labels no variable of the module already uses."""

    def __init__(self, module: ModuleOp):
        self.module = module
        self.origins: dict[str, str] = {}  # label of a new weight -> the weight it derives from
        self.tried: dict[str, int] = {}  # fresh_name's suffixes per hint

    @cached_property
    def labels(self) -> set[str]:
        # gathered when the first new weight is named: most pass runs make none
        return {op.properties["label"].data for op in self.module.walk() if is_op(op, "variable")}

    def origin(self, variable: Operation) -> str:
        label = from_attribute(variable.properties["label"])
        return self.origins.get(label, label)

    def label(self, hint: str) -> str:
        # A hint is a tensor's name or a label, and may be 10,000 characters: a label
        # names a file, so keep it well inside a file name's 255 bytes.
        return fresh_name(hint[:MAX_HINT], self.labels, tried=self.tried)

    def new(self, array: np.ndarray, hint: str, like: Operation | None = None) -> Operation:
        array = np.asarray(array)
        dtype = dtype_of_array(array)
        array = array.astype(NUMPY_TYPES[dtype], copy=False)
        type_ = tensor_type(dtype, array.shape)
        if array.ndim == 0 or (array.size > 1 and is_one_value(array)):
            # one value, even broadcast to a large shape, is a constant: no file of copies
            value = stored(array).reshape(-1)[0].item()
            op = OPERATIONS["constant"](properties={"shape": to_attribute(list(array.shape)),
                                                    "value": to_attribute([value])},
                                        result_types=[type_])
        else:
            label = self.label(hint)
            self.origins[label] = hint
            op = OPERATIONS["variable"](properties={"shape": to_attribute(list(array.shape)), "label": StringAttr(label)},
                                        result_types=[type_])
            set_tensor_name(op.results[0], re.sub(r"\W", "_", label))  # the tensor is called as its file
            op.attributes["nnef.data"] = weight_attribute(label, np.ascontiguousarray(array), type_)
        if like is not None:
            op.location = like.location
        return op

    def hint(self, value: SSAValue, suffix: str) -> str:
        """A label for a weight derived from `value`: its origin's label and what was done
        (`conv1.weight_fused`), without repeating the suffix when it is derived again."""
        base = self.source_label(value)
        return base if base.endswith(f"_{suffix}") else f"{base}_{suffix}"

    def bias_hint(self, filter_: SSAValue, suffix: str) -> str:
        """A new bias is named after its filter: `conv1.weight` → `conv1.bias_fused`."""
        base = self.source_label(filter_).removesuffix(f"_{suffix}")
        stem = base[: -len("weight")] if base.endswith("weight") else f"{base}_"
        return f"{stem}bias_{suffix}"

    def source_label(self, value: SSAValue) -> str:
        """The label of the weight a value was made from, or its name."""
        owner = value.owner
        if isinstance(owner, Operation) and is_op(owner, "variable"):
            return self.origin(owner)
        return tensor_name(value) or "folded"

    def insert(self, rewriter: PatternRewriter, array: np.ndarray, hint: str, before: Operation) -> SSAValue:
        op = self.new(array, hint, like=before)
        rewriter.insert(op, InsertPoint.before(before))
        return op.results[0]


def is_graph_output(value: SSAValue) -> bool:
    return any(isinstance(use.operation, ReturnOp) for use in value.uses)


def is_graph_input(value: SSAValue) -> bool:
    owner = value.owner
    return isinstance(owner, Operation) and owner.has_trait(GraphInput)


def replace_value(rewriter: PatternRewriter, old: SSAValue, new: SSAValue) -> bool:
    """Every use of `old` becomes a use of `new`. A graph output keeps its name, so `new`
    takes it; when `new` is itself a graph input or output, nothing changes (False)."""
    if old is new:
        return False
    output = is_graph_output(old)
    if output and (is_graph_output(new) or is_graph_input(new)):
        return False
    if tensor_name(new) is None:  # a value made for `old`
        new = take_place(old, new)
    elif output:
        rename(new, tensor_name(old))
    rewriter.replace_all_uses_with(old, new)
    return True


def take_place(old: SSAValue, new: SSAValue, name: str | None = None) -> SSAValue:
    """`new` is made to stand for `old`: it takes `name` (by default old's tensor name)
    and, having none of its own, old's quantization. Returns the value to use from now
    on (another value in new's place when its type had to change)."""
    rename(new, name if name is not None else tensor_name(old))
    quant = quantization_of(old)
    if quant is not None and quantization_of(new) is None:
        new = set_quantization(new, quant)
    return new


def replace_op(rewriter: PatternRewriter, op: Operation, new: SSAValue, new_ops: list[Operation] = ()) -> bool:
    """Replace a one-result operation by `new` (made by `new_ops`, inserted before it)."""
    old = op.results[0]
    if is_graph_output(old) and (is_graph_output(new) or is_graph_input(new)):
        return False
    for created in new_ops:
        rewriter.insert(created, InsertPoint.before(op))
    replace_value(rewriter, old, new)
    rewriter.erase(op)
    return True


def erase_if_dead(rewriter: PatternRewriter, value: SSAValue | None) -> None:
    """The operation computing `value`, and in turn its own inputs' operations, once
    nothing uses them any more (a weight only a rewritten operation read)."""
    erase_dead_producers([value], rewriter.erase)


def erase_with_dead_producers(rewriter: PatternRewriter, op: Operation) -> None:
    """Erase `op`, then what computed its operands once nothing else uses it."""
    operands = list(op.operands)
    rewriter.erase(op)
    erase_dead_producers(operands, rewriter.erase)


def erase_dead_producers(values: Iterable[SSAValue | None], erase: Callable[[Operation], None]) -> None:
    """`erase_if_dead` for several values, with any way of erasing."""
    pending = list(values)
    while pending:
        owner = getattr(pending.pop(), "owner", None)
        if isinstance(owner, Operation) and owner.parent is not None and is_trivially_dead(owner):
            pending.extend(owner.operands)
            erase(owner)


def rename(value: SSAValue, name: str | None) -> None:
    """Give a value another tensor name, with the symbolic dims its operation keeps
    under the old name."""
    owner, old = value.owner, tensor_name(value)
    set_tensor_name(value, name)
    if not isinstance(owner, Operation) or old is None or old == name:
        return
    dims = owner.attributes.get("nnef.dims")
    if isinstance(dims, DictionaryAttr) and old in dims.data:
        entries = dict(dims.data)
        entries[name] = entries.pop(old)
        owner.attributes["nnef.dims"] = DictionaryAttr(entries)


def single_use(value: SSAValue) -> bool:
    return value.has_one_use()


__all__ = ["is_op", "op_named", "producer_with",
           "is_quantized", "is_known", "known_value", "constant_value", "stored", "is_one_value",
           "affordable", "stored_elements", "static_shape", "attribute",
           "attributes", "create", "fresh_name", "Weights", "replace_value", "take_place", "replace_op", "rename", "single_use",
           "is_graph_output"]
