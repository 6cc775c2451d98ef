"""The graph of a module as Graphviz dot text: what a person reads to see a model.

One node per operation with its op name, the attributes that say something (those that
differ from the op table's default), and its weights collapsed into it as lines
(`filter 16x1x3x3`); edges carry the shape and dtype of the tensor they move. Fused
operations (`conv_relu`), channel-last operations and quantized tensors are marked;
given the module before the passes, what they added or changed is coloured.
Everything is decided from the op table's entry and traits, never from a list of names.
"""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Attribute, Operation, SSAValue

from nnefopt.dialects.attributes import from_attribute
from nnefopt.dialects.layout import LAYOUT, is_channel_last
from nnefopt.dialects.quantization import QuantAttr, type_quantization
from nnefopt.dialects.tensor_names import tensor_name
from nnefopt.export.graph_diff import ADDED, CHANGED, Changes, graph_of
from nnefopt.frontend.fused import BASES, fused_name
from nnefopt.ops import OpDef
from nnefopt.traits import Activation, Declaration, GraphInput, TensorSource

# Colours: inputs and outputs grey, fused operations warm; a diff's fill wins over both.
INPUT_FILL, OP_FILL, FUSED_FILL = "#e8e8e8", "#ffffff", "#fde2c4"
DIFF_FILL = {ADDED: "#b9f0b4", CHANGED: "#ffe08a"}
QUANT_COLOUR = "#1f5fbf"
MAX_ITEMS = 6  # a longer list attribute is shortened: labels stay one line each


def module_to_dot(module: ModuleOp, before: ModuleOp | None = None) -> str:
    """The graph of `module` as dot text; with `before` (the module the passes started
    from), operations they added or changed are filled, and a note counts what they removed."""
    graph = graph_of(module)
    changes = Changes(before, module) if before is not None else None
    return _Drawing(graph, changes).text()


# ---- what an operation is --------------------------------------------------------------


def op_def(op: Operation) -> OpDef | None:
    return getattr(type(op), "OP_DEF", None)


def is_weight(op: Operation) -> bool:
    """A variable or constant: drawn inside the operations that use it."""
    entry = op_def(op)
    return entry is not None and entry.has_trait(TensorSource) and not entry.has_trait(GraphInput)


def is_metadata(op: Operation) -> bool:
    entry = op_def(op)
    return entry is not None and entry.has_trait(Declaration) and not entry.has_trait(TensorSource)


def fused_parts(name: str) -> tuple[str, str] | None:
    """(base, activation) of a fused operation's name (`conv_relu`: conv, relu)."""
    from nnefopt.ops import names_with

    for base in BASES:
        for activation in names_with(Activation):
            if name == fused_name(base, activation):
                return base, activation
    return None


def display_name(op: Operation) -> str:
    entry = op_def(op)
    if entry is not None:
        return entry.name
    callee = op.properties.get("callee")  # a fragment of the model's own
    if callee is not None:
        return callee.root_reference.data
    op_name = op.properties.get("op_name")  # an operation of a registry nnefopt does not know
    return op_name.data if op_name is not None else op.name


def notable_attributes(op: Operation) -> list[tuple[str, object]]:
    """The attributes worth a line: those not at their default, in declaration order.
    A per-axis list of identities (strides of 1, pads of 0) is the empty default written
    out and says nothing either."""
    entry = op_def(op)
    if entry is None:  # a call or an opaque operation: its arguments as given
        args = op.properties.get("args")
        return [(k, _plain(from_attribute(v))) for k, v in getattr(args, "data", {}).items()]
    rank = _rank(op.operands[0].type) if op.operands else None
    shown = []
    for param in entry.attribute_params:
        attr = op.properties.get(param.name)
        if attr is None:
            continue
        value, default = _plain(from_attribute(attr)), _plain(entry.attribute_defaults.get(param.name))
        if value == default or (default == [] and _per_axis_identity(value, rank)):
            continue
        shown.append((param.name, value))
    return shown


def _plain(value: object) -> object:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _rank(type_: Attribute) -> int | None:
    return len(type_.get_shape()) if isinstance(type_, TensorType) else None


def _per_axis_identity(value: object, rank: int | None) -> bool:
    if not isinstance(value, list) or not value or rank is None or len(value) not in (rank, rank - 2):
        return False
    if all(isinstance(v, list) for v in value):
        return all(item == 0 for v in value for item in v)
    return all(v == 1 for v in value)


# ---- text --------------------------------------------------------------------------------


def shape_text(type_: Attribute) -> str:
    if not isinstance(type_, TensorType):
        return str(type_)
    dims = ["?" if d < 0 else str(d) for d in type_.get_shape()]
    return "x".join(dims) if dims else "scalar"


def quant_text(quant: QuantAttr) -> str:
    """`q8u`: bits and signedness, what a reader looks for first."""
    params = quant.params()
    bits = params.get("bits")
    sign = "" if "signed" not in params else ("s" if params["signed"] else "u")
    return f"q{bits if bits is not None else ''}{sign}"


def type_text(type_: Attribute) -> str:
    text = shape_text(type_)
    if isinstance(type_, TensorType):
        text += f" {type_.element_type}"
    quant = type_quantization(type_)
    return text + (f" {quant_text(quant)}" if quant is not None else "")


def value_text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, list):
        items = [value_text(v) for v in value[:MAX_ITEMS]]
        return "[" + ",".join(items) + (",…" if len(value) > MAX_ITEMS else "") + "]"
    return str(value)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(**attrs: object) -> str:
    return "[" + ", ".join(f"{k}={_quote(str(v))}" for k, v in attrs.items()) + "]"


# ---- the drawing ----------------------------------------------------------------------


class _Drawing:
    def __init__(self, graph: Operation, changes: Changes | None):
        self.graph = graph
        self.changes = changes
        self.ids: dict[Operation, str] = {}
        self.lines: list[str] = []

    def text(self) -> str:
        title = self.graph.properties["sym_name"].data
        ops = list(self.graph.regions[0].block.ops)
        self.lines += [
            f"digraph {_quote(title)} {{",
            "  rankdir=TB; nodesep=0.25; ranksep=0.3;",
            '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, margin="0.08,0.03", '
            f'height=0.3, fillcolor="{OP_FILL}"];',
            '  edge [fontname="Helvetica", fontsize=8, arrowsize=0.6];',
        ]
        note = self._note()
        if note:
            self.lines.append(f"  label={_quote(note)}; labelloc=t; fontname=\"Helvetica\"; fontsize=10;")
        for op in ops:
            if op.name == "nnef.return":
                self._outputs(op)
            elif not (is_metadata(op) or (is_weight(op) and not self._feeds_return(op))):
                self._node(op)
        self.lines.append("}")
        return "\n".join(self.lines) + "\n"

    def _note(self) -> str:
        if self.changes is None:
            return ""
        removed = self.changes.removed
        text = "filled green: added by the passes; yellow: changed"
        if removed:
            shown = ", ".join(removed[:5]) + (", …" if len(removed) > 5 else "")
            text += f"\nremoved: {len(removed)} operations ({shown})"
        return text

    def _feeds_return(self, op: Operation) -> bool:
        return any(use.operation.name == "nnef.return" for r in op.results for use in r.uses)

    def _node(self, op: Operation) -> None:
        node = self.ids[op] = f"n{len(self.ids)}"
        entry = op_def(op)
        header = display_name(op)
        marks = []
        parts = fused_parts(header)
        if parts is not None:
            marks.append("fused")
        if LAYOUT in op.properties and is_channel_last(op):
            marks.append("nhwc")
        lines = [header + "".join(f" [{m}]" for m in marks)]
        attributes = notable_attributes(op)
        if attributes:
            lines.append(" ".join(f"{k}={value_text(v)}" for k, v in attributes))
        style: dict[str, object] = {}
        edges = []
        weights: dict[str, list[str]] = {}  # what a weight is -> the parameters given one like it
        for label, value in self._operands(op):
            producer = value.owner if isinstance(value.owner, Operation) else None
            if producer is not None and is_weight(producer) and producer not in self.ids:
                weights.setdefault(self._weight_text(value, producer), []).append(label)
            elif producer is not None and producer in self.ids:
                edges.append((self.ids[producer], value))
        # One line for weights alike (a batch norm's four statistics): `mean,variance,offset,scale 1x16`.
        lines += [f"{','.join(labels)} {text}" for text, labels in weights.items()]
        is_input = entry is not None and entry.has_trait(GraphInput)
        if is_input or (is_weight(op)):
            lines = [f"{tensor_name(op.results[0]) or header}", type_text(op.results[0].type)]
            style.update(shape="ellipse", fillcolor=INPUT_FILL)
        elif parts is not None:
            style.update(fillcolor=FUSED_FILL, peripheries=2)
        if any(type_quantization(r.type) is not None for r in op.results):
            style.update(color=QUANT_COLOUR, penwidth=1.5)
        if self.changes is not None and (change := self.changes.of(op)):
            style["fillcolor"] = DIFF_FILL[change]
        names = [n for r in op.results if (n := tensor_name(r))]
        self.lines.append(f"  {node} {_attrs(label=chr(10).join(lines), tooltip=', '.join(names), **style)};")
        for source, value in edges:
            self._edge(source, node, value)

    def _edge(self, source: str, target: str, value: SSAValue) -> None:
        style: dict[str, object] = {"label": type_text(value.type)}
        owner = value.owner
        if isinstance(owner, Operation) and len(owner.results) > 1:
            style["label"] = f"{tensor_name(value)}: {style['label']}"
        if type_quantization(value.type) is not None:
            style.update(color=QUANT_COLOUR, fontcolor=QUANT_COLOUR, penwidth=1.5)
        self.lines.append(f"  {source} -> {target} {_attrs(**style)};")

    def _weight_text(self, value: SSAValue, producer: Operation) -> str:
        line = shape_text(value.type)
        element = value.type.element_type if isinstance(value.type, TensorType) else None
        if element is not None and str(element) != "f32":
            line += f" {element}"
        quant = type_quantization(value.type)
        if quant is not None:
            line += f" {quant_text(quant)}"
        if op_def(producer) is not None and not op_def(producer).has_trait(Declaration):  # a constant: its value
            constant = producer.properties.get("value")
            items = _plain(from_attribute(constant)) if constant is not None else None
            if isinstance(items, list) and len(items) == 1:
                line += f" = {value_text(items[0])}"
        return line

    def _operands(self, op: Operation) -> list[tuple[str, SSAValue]]:
        """Each tensor operand with the parameter it is passed as."""
        definition = type(op).get_irdl_definition() if hasattr(type(op), "get_irdl_definition") else None
        if op_def(op) is None or definition is None:
            names = op.properties.get("operand_names")
            labels = [getattr(n, "data", "") for n in getattr(names, "data", ())]
            return [(labels[i] if i < len(labels) else f"arg{i}", v) for i, v in enumerate(op.operands)]
        found = []
        for field, _ in definition.operands:
            value = getattr(op, field)
            label = field.rstrip("_")
            if value is None:
                continue
            if isinstance(value, SSAValue):
                found.append((label, value))
            else:
                found += [(f"{label}{i}", v) for i, v in enumerate(value)]
        return found

    def _outputs(self, op: Operation) -> None:
        names = [n.data for n in self.graph.properties["outputs"].data]
        for index, value in enumerate(op.operands):
            node = f"out{index}"
            name = names[index] if index < len(names) else tensor_name(value) or node
            self.lines.append(f"  {node} {_attrs(label=name, shape='ellipse', fillcolor=INPUT_FILL)};")
            producer = value.owner if isinstance(value.owner, Operation) else None
            if producer in self.ids:
                self._edge(self.ids[producer], node, value)
