"""Model (the frontend's flat graph) → an xDSL module in the `nnef` dialect.

One SSA value per tensor, named after it (exactly: `tensor_names`), its graph.quant
entry the encoding of its type (`quantization`). A literal passed as a tensor becomes an
`nnef.constant` of rank 0; a tensor left at its default is an absent operand.
Every operation keeps where it came from (its MLIR location) and which arguments the
source gave (`nnef.explicit`), so that the NNEF written back reads like the input.
"""

from __future__ import annotations

from xdsl.context import Context
from xdsl.dialects.builtin import ArrayAttr, Builtin, DictionaryAttr, FileLineColLoc, IntAttr, ModuleOp, StringAttr
from xdsl.ir import Block, Operation, Region, SSAValue

from nnefopt.dialects.nnef import (
    OPERATIONS,
    CallOp,
    FragmentOp,
    GraphOp,
    OpaqueOp,
    ReturnOp,
    field_name,
    nnef_dialect,
    tensor_type,
    to_attribute,
    weight_attribute,
)
from nnefopt.dialects.quantization import quantization, with_quantization
from nnefopt.dialects.attributes import tuple_preserving_attribute
from nnefopt.progress import progress
from nnefopt.dialects.tensor_names import set_tensor_name
from nnefopt.dtypes import dtype_of_literal
from nnefopt.frontend.model import Model, Operation as ModelOperation, TensorRef
from nnefopt.frontend.printer import format_fragment


def context() -> Context:
    ctx = Context()
    ctx.load_dialect(Builtin)
    ctx.load_dialect(nnef_dialect())  # with the operations registered so far
    return ctx


class _Importer:
    def __init__(self, model: Model):
        self.model = model
        self.values: dict[str, SSAValue] = {}
        self.block = Block()

    def run(self) -> ModuleOp:
        # 100,000 operations take seconds: a bar on a terminal says it is not stuck.
        for op in progress(self.model.operations, what="importing operations"):
            self.block.add_op(self.operation(op))
        self.block.add_op(ReturnOp(operands=[[self.values[name] for name in self.model.outputs]]))
        graph = GraphOp(
            properties={
                "sym_name": StringAttr(self.model.name),
                "inputs": to_attribute(list(self.model.inputs)),
                "outputs": to_attribute(list(self.model.outputs)),
            },
            regions=[Region(self.block)],
        )
        fragments = [
            FragmentOp(properties={"sym_name": StringAttr(f.name), "text": StringAttr(format_fragment(f))})
            for f in self.model.fragments.values()
        ]
        module = ModuleOp([*fragments, graph])
        module.attributes["nnef.version"] = to_attribute(list(self.model.version))
        module.attributes["nnef.extensions"] = ArrayAttr(
            [StringAttr(f"{e.name} {e.args}".strip()) for e in self.model.extensions]
        )
        return module

    def operand(self, value: object) -> SSAValue | list[SSAValue] | None:
        if value is None:
            return None
        if isinstance(value, TensorRef):
            return self.values[value]
        if isinstance(value, list):
            return [self.operand(v) for v in value]
        return self.literal(value)

    def literal(self, value: object) -> SSAValue:
        dtype = dtype_of_literal(value)
        constant = OPERATIONS["constant"](
            properties={"shape": to_attribute([]), "value": to_attribute([value])},
            result_types=[tensor_type(dtype, ())],
        )
        self.block.add_op(constant)
        return constant.results[0]

    def operation(self, op: ModelOperation) -> Operation:
        result_types = [self.result_type(value) for value in op.outputs.values()]
        if op.signature is None or op.name in self.model.fragments:
            built = self.generic(op, result_types)
        else:
            built = self.known(op, result_types)
        built.location = FileLineColLoc(StringAttr(op.loc.file), IntAttr(op.loc.line), IntAttr(op.loc.column))
        built.attributes["nnef.explicit"] = to_attribute(sorted(op.explicit))
        self.name_results(op, built)
        return built

    def known(self, op: ModelOperation, result_types: list) -> Operation:
        cls = OPERATIONS[op.name]
        operands = [
            None if _defaulted(op, p) else self.operand(op.inputs.get(p.name)) for p in cls.OP_DEF.tensor_params
        ]
        properties = {field_name(name): to_attribute(value) for name, value in op.attribs.items()}
        built = cls(operands=operands, properties=properties, result_types=result_types)
        if op.name == "variable":
            tensor = self.model.tensors[op.outputs["output"]]
            if tensor.data is not None:
                built.attributes["nnef.data"] = weight_attribute(op.attribs["label"], tensor.data,
                                                                 tensor_type(tensor.dtype, tensor.shape), tensor.origin)
            if tensor.header is not None:  # item type and width, to write the file back alike
                header = tensor.header
                built.attributes["nnef.item"] = to_attribute([header.item_type, header.bits_per_item])
        return built

    def generic(self, op: ModelOperation, result_types: list) -> Operation:
        if op.signature is None:
            names, flat, structured = self.opaque_operands(op)
        else:
            names = [k for k, v in op.inputs.items() if v is not None]
            flat, structured = [self.operand(op.inputs[k]) for k in names], {}
        # Without a declaration only the attribute itself tells a tuple from an array.
        encode = to_attribute if op.signature is not None else tuple_preserving_attribute
        properties = {
            "operand_names": to_attribute(names),
            "args": DictionaryAttr({**structured, **{k: encode(v) for k, v in op.attribs.items()}}),
        }
        if op.signature is None:
            cls, properties["op_name"] = OpaqueOp, StringAttr(op.name)
        else:
            cls, properties["callee"] = CallOp, StringAttr(op.name)
        return cls(operands=[_flatten(flat)], properties=properties, result_types=[_flatten(result_types)])

    def opaque_operands(self, op: ModelOperation) -> tuple[list[str], list[SSAValue], dict]:
        """An undeclared operation's tensors as operands, each named by its argument; an
        argument that holds tensors among other items (tract's `scan = [("x_t", x, 0, 1)]`)
        stays in `args` as it was, each tensor an {operand = i} there."""
        names: list[str] = []
        operands: list[SSAValue] = []
        structured = {}
        for key, value in op.inputs.items():
            if value is None:
                continue
            if not isinstance(value, (list, tuple)):
                names.append(key)
                operands.append(self.operand(value))
                continue

            def place(item: object, key: str = key) -> int | None:
                if not isinstance(item, TensorRef):
                    return None
                names.append(key)
                operands.append(self.values[item])
                return len(operands) - 1

            structured[key] = tuple_preserving_attribute(value, place)
        return names, operands, structured

    def result_type(self, value: object):
        if isinstance(value, list):
            return [self.result_type(v) for v in value]
        tensor = self.model.tensors[value]
        quant = tensor.quant  # graph.quant's entry: the encoding of the tensor's type
        return with_quantization(tensor_type(tensor.dtype, tensor.shape),
                                 None if quant is None else quantization(quant.algorithm, quant.attributes))

    def name_results(self, op: ModelOperation, built: Operation) -> None:
        names = [n for value in op.outputs.values() for n in (value if isinstance(value, list) else [value])]
        symbolic = {}
        for name, result in zip(names, built.results):
            if not name.startswith("_t"):
                set_tensor_name(result, name)
            self.values[name] = result
            tensor = self.model.tensors[name]
            if tensor.shape is not None and any(not isinstance(d, int) for d in tensor.shape):
                symbolic[name] = tensor.shape
        if symbolic:  # the type says `?`; the expression (N, 2*N) is kept here
            built.attributes["nnef.dims"] = DictionaryAttr({n: to_attribute(list(s)) for n, s in symbolic.items()})


def _defaulted(op: ModelOperation, param) -> bool:
    """A tensor the source left at its literal default (`bias = 0.0`): an absent operand."""
    return param.name not in op.explicit and param.default is not None and not isinstance(
        op.inputs.get(param.name), (TensorRef, list))


def _flatten(items: list) -> list:
    return [x for item in items for x in (item if isinstance(item, list) else [item])]


def import_model(model: Model) -> ModuleOp:
    return _Importer(model).run()
