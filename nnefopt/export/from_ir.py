"""An xDSL module in the `nnef` dialect → Model, which the NNEF writer prints.

The inverse of the importer: SSA values get their tensor names back (or fresh ones),
a rank-0 constant without a name that only feeds tensor arguments is written as the
literal it was, and weights come back from their resource handles.
"""

from __future__ import annotations

from collections.abc import Callable

from xdsl.dialects.builtin import DYNAMIC_INDEX, ArrayAttr, DictionaryAttr, FileLineColLoc, ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue

from nnefopt.dialects.nnef import (
    OPERATIONS,
    CallOp,
    FragmentOp,
    GraphOp,
    OpaqueOp,
    ReturnOp,
    dtype_of,
    field_name,
    from_attribute,
    origin_of,
    weight_of,
)
from nnefopt.dialects.attributes import operand_indices
from nnefopt.dialects.quantization import quantization_of
from nnefopt.dialects.tensor_names import fresh_name, tensor_name
from nnefopt.errors import Location, NNEFError
from nnefopt.frontend import ast
from nnefopt.frontend.binder import is_absent
from nnefopt.frontend.evaluate import evaluate_constant
from nnefopt.frontend.model import Model, Operation as ModelOperation, Quantization, Tensor, TensorRef
from nnefopt.frontend.parser import parse_document
from nnefopt.frontend.stdlib import known_operations
from nnefopt.frontend.tensor_file import TensorHeader
from nnefopt.traits import GraphInput


def location_of(op: Operation) -> Location:
    loc = op.location
    if isinstance(loc, FileLineColLoc):
        return Location(loc.filename.data, loc.line.data, loc.column.data)
    return ast.NOWHERE


def is_literal(op: Operation) -> bool:
    """A rank-0 constant of one value that nobody named: a literal in the source."""
    if op.name != "nnef.constant" or tensor_name(op.results[0]) is not None:
        return False
    value = op.properties["value"]
    return op.properties["shape"] == ArrayAttr([]) and isinstance(value, ArrayAttr) and len(value.data) == 1


def module_extensions(module: ModuleOp) -> list[ast.Extension]:
    items = module.attributes.get("nnef.extensions", ArrayAttr([]))
    return [ast.Extension(*(text.data.split(" ", 1) + [""])[:2]) for text in items.data]


def fragment_of(op: FragmentOp) -> ast.Fragment:
    """The fragment a `nnef.fragment` keeps as text."""
    return parse_document(op.text.data, f"<fragment {op.sym_name.data}>", require_graph=False).fragments[0]


def fragment_signatures(module: ModuleOp) -> dict[str, ast.Fragment]:
    """Every operation the module can invoke: the libraries its extensions name, then
    its own fragments (which win, as NNEF says)."""
    signatures = dict(known_operations(module_extensions(module)))
    signatures.update((op.sym_name.data, fragment_of(op)) for op in module.ops if isinstance(op, FragmentOp))
    return signatures


class _Exporter:
    def __init__(self, module: ModuleOp):
        self.module = module
        self.names: dict[SSAValue, str] = {}
        self.taken: set[str] = set()
        self.tensors: dict[str, Tensor] = {}
        self.fresh = 0

    def run(self) -> Model:
        graphs = [op for op in self.module.ops if isinstance(op, GraphOp)]
        if len(graphs) != 1:
            raise NNEFError(f"expected one nnef.graph in the module, found {len(graphs)}")
        graph = graphs[0]
        extensions = module_extensions(self.module)
        fragments = {f.name: f for f in map(fragment_of, (op for op in self.module.ops if isinstance(op, FragmentOp)))}
        signatures = {**known_operations(extensions), **fragments}
        block_ops = list(graph.body.block.ops)
        self.claim_names(block_ops)
        operations, outputs = [], []
        for op in block_ops:
            if isinstance(op, ReturnOp):
                outputs = [self.name(v) for v in op.operands]
            elif not is_literal(op):
                operations.append(self.operation(op, signatures))
        version = tuple(from_attribute(self.module.attributes.get("nnef.version", ArrayAttr([]))) or (1, 0))
        return Model(graph.sym_name.data, from_attribute(graph.inputs), outputs or from_attribute(graph.outputs),
                     self.tensors, operations, fragments, extensions, version, "<module>")

    def claim_names(self, block_ops: list[Operation]) -> None:
        """Names first, so that a given name wins over a generated one; the graph's inputs
        and outputs first of all, so that they keep theirs when passes made two values
        of one name."""
        interface = [v for op in block_ops if isinstance(op, ReturnOp) for v in op.operands]
        interface += [r for op in block_ops if op.has_trait(GraphInput) for r in op.results]
        for value in [*interface, *(r for op in block_ops for r in op.results)]:
            if value not in self.names and tensor_name(value):
                self.names[value] = fresh_name(tensor_name(value), self.taken)

    def name(self, value: SSAValue) -> str:
        if value not in self.names:
            self.fresh += 1
            self.names[value] = fresh_name(f"t{self.fresh}", self.taken)
        return self.names[value]

    def value(self, operand: SSAValue) -> object:
        owner = operand.owner
        if isinstance(owner, Operation) and is_literal(owner):
            return from_attribute(owner.properties["value"])[0]
        return TensorRef(self.name(operand))

    def define(self, result: SSAValue, op: Operation) -> TensorRef:
        name = self.name(result)
        type_ = result.type
        shape = tuple(d if d != DYNAMIC_INDEX else None for d in type_.get_shape()) if isinstance(type_, TensorType) else None
        key = tensor_name(result) or name  # what the operation's attributes call the value
        dims = op.attributes.get("nnef.dims")
        if isinstance(dims, DictionaryAttr) and key in dims.data:
            shape = tuple(from_attribute(dims.data[key]))
        tensor = Tensor(name, dtype_of(type_), shape, loc=location_of(op))
        quant = quantization_of(result)
        if quant is not None:
            tensor.quant = Quantization(quant.algorithm.data, quant.params(), tensor.loc)
        data = op.attributes.get("nnef.data")
        if data is not None:
            tensor.data, tensor.origin = weight_of(data), origin_of(data)
        item = op.attributes.get("nnef.item")
        if item is not None and tensor.data is not None:
            item_type, bits = from_attribute(item)
            count = int(tensor.data.size)
            tensor.header = TensorHeader((1, 0), tuple(tensor.data.shape), bits, item_type, (count * bits + 7) // 8)
        self.tensors[name] = tensor
        return TensorRef(name)

    def operation(self, op: Operation, signatures: dict[str, ast.Fragment]) -> ModelOperation:
        explicit = frozenset(from_attribute(op.attributes.get("nnef.explicit", ArrayAttr([]))))
        if isinstance(op, (CallOp, OpaqueOp)):
            return self.generic(op, signatures, explicit)
        cls = OPERATIONS.get(op.name.removeprefix("nnef."))
        if cls is None or not isinstance(op, cls):
            raise NNEFError(f"operation '{op.name}' has no NNEF form", location_of(op))
        entry = cls.OP_DEF
        inputs = {}
        for param in entry.tensor_params:
            operand = getattr(op, field_name(param.name))
            if operand is None:
                inputs[param.name] = None if param.default is None or is_absent(param.default) else evaluate_constant(param.default)
            elif isinstance(operand, SSAValue):
                inputs[param.name] = self.value(operand)
            else:
                inputs[param.name] = [self.value(v) for v in operand]
        attribs = {}
        for param in entry.attribute_params:
            prop = op.properties.get(field_name(param.name))
            attribs[param.name] = from_attribute(prop, param.type) if prop is not None else evaluate_constant(param.default)
        outputs = {}
        for result in entry.results:
            value = getattr(op, field_name(result.name))
            outputs[result.name] = [self.define(v, op) for v in value] if isinstance(value, tuple) else self.define(value, op)
        type_arg = dtype_of(op.results[0].type) if entry.signature.generic and op.results else None
        return ModelOperation(entry.name, type_arg, inputs, attribs, outputs, location_of(op), explicit,
                              signatures.get(entry.name, entry.signature))

    def generic(self, op, signatures, explicit) -> ModelOperation:
        if isinstance(op, OpaqueOp):
            inputs, attribs = opaque_arguments(op, self.value)
            outputs = {f"_{i}": self.define(v, op) for i, v in enumerate(op.outputs)}
            return ModelOperation(op.op_name.data, None, inputs, attribs, outputs, location_of(op), explicit, None)
        names = from_attribute(op.operand_names)
        inputs = {name: self.value(v) for name, v in zip(names, op.arguments)}
        if isinstance(op, CallOp):
            name, signature = op.callee.data, signatures[op.callee.data]
            result_names = [r.name for r in signature.results]
        else:
            name, signature = op.op_name.data, None
            result_names = [f"_{i}" for i in range(len(op.outputs))]
        # The declared types tell tuples ((integer, integer)[] paddings) from arrays.
        types = {p.name: p.type for p in signature.params} if signature is not None else {}
        attribs = {k: from_attribute(v, types.get(k)) for k, v in op.args.data.items()}
        outputs = {key: self.define(v, op) for key, v in zip(result_names, op.outputs)}
        return ModelOperation(name, None, inputs, attribs, outputs, location_of(op), explicit, signature)


def opaque_arguments(op: OpaqueOp, value: Callable[[SSAValue], object]) -> tuple[dict, dict]:
    """An undeclared operation's arguments by name, as (tensor arguments, attributes):
    each operand as `value` gives it, put back where it was given, alone or as an item
    of the argument that holds it ({operand = i} in `args`)."""
    names = from_attribute(op.operand_names)
    if len(names) != len(op.arguments) or not all(isinstance(n, str) for n in names):
        raise NNEFError(f"'{op.op_name.data}' names {len(names)} operands and has {len(op.arguments)}",
                        location_of(op))
    values = [value(v) for v in op.arguments]
    inputs, attribs = {}, {}
    for name, item in zip(names, values):
        if name not in op.args.data:
            inputs[name] = item
    for key, attr in op.args.data.items():
        try:
            decoded = from_attribute(attr, None, values)
        except TypeError as exc:
            raise NNEFError(f"argument '{key}' of '{op.op_name.data}' is not an NNEF value: {exc}",
                            location_of(op)) from None
        (inputs if operand_indices(attr) else attribs)[key] = decoded
    return inputs, attribs


def export_module(module: ModuleOp) -> Model:
    return _Exporter(module).run()


def graph_of(module: ModuleOp) -> GraphOp:
    graphs = [op for op in module.ops if isinstance(op, GraphOp)]
    if len(graphs) != 1:
        raise NNEFError(f"expected one nnef.graph in the module, found {len(graphs)}")
    return graphs[0]


def tensor_names(module: ModuleOp) -> dict[SSAValue, str]:
    """The tensor name export gives each value of the graph (literals have none), without
    exporting: what the interpreter keys its inputs, outputs and records by."""
    exporter = _Exporter(module)
    block_ops = list(graph_of(module).body.block.ops)
    exporter.claim_names(block_ops)
    for op in block_ops:
        if not is_literal(op):
            for result in op.results:
                exporter.name(result)
    return exporter.names
