"""Document → Model: binds every invocation of the graph body to its signature, checks
types and identifiers, flattens nested expressions, and attaches weights and quantization.

Dialects: torch-to-nnef and tract write forms the specification does not allow
(attributes by position, a tensor where a scalar attribute belongs, fragments that
redefine a standard operation, tract's extension operations). They are accepted with
a warning that names the place, or refused when `strict` is set.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import sympy

from nnefopt.dtypes import NUMPY_TYPES, dtype_of_literal
from nnefopt.errors import Location, NNEFError, warn
from nnefopt.frontend import ast
from nnefopt.frontend.binder import check_attribute, evaluate_arguments, is_tensor_type, resolve_generic
from nnefopt.frontend.evaluate import Evaluator, evaluate_constant
from nnefopt.frontend.model import EXPLICIT_TYPE, Model, Operation, Quantization, Tensor, TensorRef
from nnefopt.frontend.stdlib import extra_operations, is_tract_dialect, known_operations, standard_operations
from nnefopt.frontend.tensor_file import TensorHeader
from nnefopt.ops import has_trait
from nnefopt.traits import GraphInput, TensorSource

# Elements a declared shape may count: numpy's sizes and strides are 64-bit.
MAX_ELEMENTS = 2**62
_TRACT_DATUM_TYPES = {"f16": "scalar", "f32": "scalar", "f64": "scalar", "bool": "logical"}

# Reads a variable's data: (label, shape, location) → (header, array, file name for
# messages, the file itself when it stays on disk).
TensorLoader = Callable[[str, tuple, Location], tuple[TensorHeader, np.ndarray, str, Path | None]]


class GraphBuilder:
    def __init__(self, doc: ast.Document, load_tensor: TensorLoader | None, strict: bool = False):
        if doc.graph is None:
            raise NNEFError("the document has no graph", Location(doc.file))
        self.doc = doc
        self.graph = doc.graph
        self.load_tensor = load_tensor
        self.strict = strict
        self.tract = is_tract_dialect(doc.extensions)
        self.signatures = known_operations(doc.extensions)
        self.fragments: dict[str, ast.Fragment] = {}
        for fragment in doc.fragments:
            self.define_fragment(fragment)
        self.tensors: dict[str, Tensor] = {}
        self.operations: list[Operation] = []
        self.env: dict[str, object] = {}
        self.temporaries = 0
        self.pending: tuple[ast.Invocation, ast.Expr] | None = None
        for ext in doc.extensions:  # `extension tract_symbol N;`: N is a dimension, unknown until run time
            if ext.name == "tract_symbol":
                for symbol in ext.args.split():
                    self.env[symbol] = sympy.Symbol(symbol, integer=True, positive=True)  # as dim_symbol does

    def lenient(self, message: str, loc: Location) -> None:
        if self.strict:
            raise NNEFError(message, loc)
        warn(message, loc)

    def define_fragment(self, fragment: ast.Fragment) -> None:
        if fragment.name in self.fragments:
            first = self.fragments[fragment.name].loc
            raise NNEFError(f"fragment '{fragment.name}' is already defined at {first}", fragment.loc)
        if fragment.name in standard_operations():
            self.lenient(
                f"fragment '{fragment.name}' redefines a standard operation; its own definition is used",
                fragment.loc,
            )
        self.fragments[fragment.name] = fragment
        self.signatures[fragment.name] = fragment

    # ---- the graph body ---------------------------------------------------------

    def build(self) -> Model:
        evaluator = Evaluator(self.env, _GraphDomain(self))
        for stmt in self.graph.body:
            self.assign(stmt, evaluator)
        self.check_interface()
        return Model(
            self.graph.name, list(self.graph.inputs), list(self.graph.outputs), self.tensors,
            self.operations, self.fragments, list(self.doc.extensions), self.doc.version, self.doc.file,
        )

    def assign(self, stmt: ast.Assignment, evaluator: Evaluator) -> None:
        if not isinstance(stmt.rhs, ast.Invocation) and not self.doc.has_extension("KHR_enable_operator_expressions"):
            self.lenient("operator expressions in the graph body need extension KHR_enable_operator_expressions", stmt.loc)
        self.pending = (stmt.rhs, stmt.lhs)  # the outermost call takes the assigned names
        value = evaluator.eval(stmt.rhs)
        self.pending = None
        if isinstance(stmt.lhs, ast.Identifier) and self.is_fresh_temporary(value):
            self.rename(value, stmt.lhs)  # `y = a + b;`: the last operation's result is y
        elif isinstance(stmt.lhs, ast.Identifier) and literal_array_type(value) is not None:
            self.literal_tensor(value, stmt.lhs, stmt.loc)  # tract writes `c = [0.5];`
        elif not self.names_match(stmt.lhs, value):
            # `y = x;` or `y = 1.0;`: the value has no operation of its own to carry the name.
            source = value if isinstance(value, (TensorRef, int, float, bool)) else None
            if source is None or not isinstance(stmt.lhs, ast.Identifier):
                raise NNEFError("the left-hand side does not match the value assigned", stmt.loc)
            dtype = self.tensors[source].dtype if isinstance(source, TensorRef) else dtype_of_literal(source)
            self.add_operation("copy", None, {"x": source}, {}, {"y": self.define(stmt.lhs, dtype)}, stmt.loc, {"x"})

    def is_fresh_temporary(self, value: object) -> bool:
        return isinstance(value, TensorRef) and value.startswith("_t") and value in self.operations[-1].output_names()

    def rename(self, old: TensorRef, target: ast.Identifier) -> None:
        dtype = self.tensors.pop(old).dtype
        del self.env[old]
        new = self.define(target, dtype)
        outputs = self.operations[-1].outputs
        for key, value in outputs.items():
            if value == old:
                outputs[key] = new

    def names_match(self, lhs: ast.Expr, value: object) -> bool:
        if isinstance(lhs, ast.Identifier):
            return isinstance(value, TensorRef) and value == lhs.name
        if isinstance(value, (list, tuple)) and isinstance(lhs, (ast.ArrayExpr, ast.TupleExpr)):
            return len(lhs.items) == len(value) and all(map(self.names_match, lhs.items, value))
        return False

    def check_interface(self) -> None:
        graph = self.graph
        # One pass over the operations, not one per input: a graph of 10,000 inputs.
        producers: dict[str, Operation] = {}
        for op in self.operations:
            for output in op.output_names():
                producers.setdefault(output, op)
        inputs = set(graph.inputs)
        for name in graph.inputs:
            producer = producers.get(name)
            if producer is None:
                raise NNEFError(f"graph input '{name}' is never assigned", graph.loc)
            if not has_trait(producer.name, GraphInput):
                raise NNEFError(f"graph input '{name}' must be defined by 'external', not '{producer.name}'", producer.loc)
        for op in self.operations:
            if has_trait(op.name, GraphInput) and op.outputs["output"] not in inputs:
                raise NNEFError(f"'{op.outputs['output']}' is an external but not a graph input", op.loc)
        for name in graph.outputs:
            if name not in self.tensors:
                raise NNEFError(f"graph output '{name}' is never assigned", graph.loc)

    # ---- operations -------------------------------------------------------------

    def invoke(self, call: ast.Invocation, evaluator: Evaluator) -> object:
        signature = self.signatures.get(call.name)
        if signature is None:
            if not self.tract:
                raise NNEFError(f"unknown operation '{call.name}'", call.loc)
            return self.opaque(call, evaluator)
        if signature is extra_operations().get(call.name):
            self.lenient(f"operation '{call.name}' is not in the NNEF 1.0.5 standard library and is not declared", call.loc)
        type_arg = call.type_arg
        if type_arg is not None and not signature.generic:
            raise NNEFError(f"operation '{call.name}' is not generic; remove '<{type_arg}>'", call.loc)

        def lenient_attribute(param, value, loc):
            value = self.tensors_as_values(call, param, value, loc)
            if isinstance(param.type, ast.ArrayType) and not isinstance(value, list):
                self.lenient(f"attribute '{param.name}' of '{call.name}' is an array; [{value!r}] assumed", loc)
                value = [value]
            as_tuples = _arrays_as_tuples(value, param.type)
            if as_tuples != value or type(as_tuples) is not type(value):
                # tract writes pad's `padding = [[0, 0], [1, 2]]` for `[(0, 0), (1, 2)]`
                self.lenient(f"attribute '{param.name}' of '{call.name}' has arrays where its type "
                             f"{param.type} has tuples; read as tuples", loc)
                value = as_tuples
            return value

        inputs, attribs, explicit = evaluate_arguments(call, signature, evaluator, self.lenient, lenient_attribute)
        for param in signature.params:
            if inputs.get(param.name) is not None:
                inputs[param.name] = self.check_tensor_value(call, param, inputs[param.name], param.type, call.loc)
        type_arg = type_arg or self.infer_generic(signature, inputs)
        if call.name in ("tract_core_cast", "tract_core_external"):
            type_arg = _TRACT_DATUM_TYPES.get(attribs.get("to") or attribs.get("datum_type"), type_arg)
        outputs = self.name_results(call, signature, type_arg)
        if call.type_arg is not None:
            explicit.add(EXPLICIT_TYPE)
        op = self.add_operation(call.name, type_arg, inputs, attribs, outputs, call.loc, explicit, signature)
        self.materialize(op)
        values = list(op.outputs.values())
        return values[0] if len(values) == 1 else tuple(values)

    def check_tensor_value(self, call, param, value, type_, loc) -> object:
        if isinstance(type_, ast.ArrayType):
            if not isinstance(value, list):
                raise NNEFError(f"argument '{param.name}' of '{call.name}' must be an array of tensors", loc)
            return [self.check_tensor_value(call, param, item, type_.item, loc) for item in value]
        if isinstance(value, TensorRef):
            dtype, wanted = self.tensors[value].dtype, type_.item.name
            if wanted not in ("?", "") and dtype not in ("?", wanted):
                self.lenient(
                    f"argument '{param.name}' of '{call.name}' must be tensor<{wanted}>, "
                    f"found tensor<{dtype}> '{value}'", loc,
                )
            return value
        if isinstance(value, (bool, int, float)):
            return check_attribute(value, type_.item, f"argument '{param.name}' of '{call.name}'", loc)
        if literal_array_type(value) is not None:  # tract: `tract_core_cast([4, 0], to = 'i64')`
            return self.literal_tensor(value, None, loc)
        raise NNEFError(f"argument '{param.name}' of '{call.name}' must be a tensor, found {value!r}", loc)

    def tensors_as_values(self, call, param, value, loc) -> object:
        """torch-to-nnef passes a one-element tensor where a scalar attribute belongs."""
        if isinstance(value, list):
            return [self.tensors_as_values(call, param, item, loc) for item in value]
        if not isinstance(value, TensorRef):
            return value
        tensor = self.tensors[value]
        if tensor.data is None or tensor.data.size != 1:
            raise NNEFError(
                f"argument '{param.name}' of '{call.name}' must be a constant, found tensor '{value}'", loc
            )
        number = tensor.data.reshape(()).item()
        self.lenient(
            f"tensor '{value}' passed as attribute '{param.name}' of '{call.name}'; using its value {number!r}", loc
        )
        return number

    def infer_generic(self, signature: ast.Fragment, inputs: dict) -> str | None:
        if not signature.generic:
            return None
        for param in signature.params:
            if is_tensor_type(param.type) and _generic_item(param.type):
                for ref in _flatten(inputs[param.name]):
                    if isinstance(ref, TensorRef) and self.tensors[ref].dtype != "?":
                        return self.tensors[ref].dtype
        return signature.generic_default.name if signature.generic_default else None

    def name_results(self, call, signature, type_arg) -> dict[str, object]:
        wanted = None
        if self.pending is not None and self.pending[0] is call:
            wanted = self.pending[1]
        results = signature.results
        if wanted is not None and len(results) > 1:
            if not isinstance(wanted, ast.TupleExpr):
                raise NNEFError(f"'{call.name}' has {len(results)} results; assign them as a, b = ...", call.loc)
            if len(wanted.items) != len(results):
                raise NNEFError(f"'{call.name}' has {len(results)} results, {len(wanted.items)} names given", call.loc)
        single = len(results) == 1 and not isinstance(results[0].type, ast.ArrayType)
        if single and isinstance(wanted, (ast.TupleExpr, ast.ArrayExpr)):
            raise NNEFError(f"'{call.name}' has 1 result, {len(wanted.items)} names are assigned", wanted.loc)
        outputs = {}
        for index, result in enumerate(results):
            target = wanted if len(results) == 1 else (wanted.items[index] if wanted is not None else None)
            dtype = _dtype_of(resolve_generic(result.type, type_arg))
            if isinstance(result.type, ast.ArrayType):
                outputs[result.name] = self.name_array_result(call, target, dtype)
            else:
                outputs[result.name] = self.define(target, dtype, call)
        return outputs

    def name_array_result(self, call, target, dtype) -> list[TensorRef]:
        if isinstance(target, ast.TupleExpr):
            self.lenient(f"array result of '{call.name}' assigned to a tuple; the specification writes [a, b, ...]", target.loc)
        elif not isinstance(target, ast.ArrayExpr):
            raise NNEFError(f"the array result of '{call.name}' must be assigned to an array of names [a, b, ...]", call.loc)
        return [self.define(item, dtype, call) for item in target.items]

    def define(self, target: ast.Expr | None, dtype: str, call: ast.Invocation | None = None) -> TensorRef:
        if target is None:  # a nested expression's result gets a fresh name
            self.temporaries += 1
            name = f"_t{self.temporaries}"
            while name in self.env:
                name += "_"
            loc = call.loc if call is not None else ast.NOWHERE
        else:
            if not isinstance(target, ast.Identifier):
                raise NNEFError("expected an identifier on the left-hand side", target.loc)
            name, loc = target.name, target.loc
            if name in self.env:
                self.rebind(name, loc)
        ref = TensorRef(name)
        self.env[name] = ref
        self.tensors[name] = Tensor(name, dtype, loc=loc)
        return ref

    def rebind(self, name: str, loc: Location) -> None:
        """tract's writer assigns a name twice (`y = matmul(...); ...; y = y_unmerge;`) and
        means the later value; the earlier tensor takes a fresh name everywhere it is used."""
        tensor = self.tensors.get(name)
        if not self.tract or tensor is None or name in self.graph.inputs:
            where = tensor.loc if tensor is not None else "a fragment or symbol"
            raise NNEFError(f"identifier '{name}' is already defined at {where}", loc)
        self.lenient(f"identifier '{name}' is assigned again (defined at {tensor.loc}); the later value is used", loc)
        index = 1
        while f"{name}_{index}" in self.env:
            index += 1
        fresh = TensorRef(f"{name}_{index}")
        del self.env[name], self.tensors[name]
        tensor.name = fresh
        self.env[fresh], self.tensors[fresh] = fresh, tensor
        old = TensorRef(name)
        for op in self.operations:
            for values in (op.inputs, op.outputs):
                for key, value in values.items():
                    values[key] = _renamed(value, old, fresh)

    def add_operation(self, name, type_arg, inputs, attribs, outputs, loc, explicit, signature=None) -> Operation:
        if signature is None:
            signature = self.signatures.get(name)
        op = Operation(name, type_arg, inputs, attribs, outputs, loc, frozenset(explicit), signature)
        self.operations.append(op)
        return op

    def opaque(self, call: ast.Invocation, evaluator: Evaluator) -> object:
        """An operation of an unknown registry: kept with all its arguments, unchecked."""
        inputs, attribs = {}, {}
        for index, arg in enumerate(call.args):
            value = evaluator.eval(arg.value)
            key = arg.name if arg.name is not None else f"_{index}"
            target = inputs if any(isinstance(v, TensorRef) for v in _flatten(value)) else attribs
            target[key] = value
        wanted = self.pending[1] if self.pending is not None and self.pending[0] is call else None
        items = wanted.items if isinstance(wanted, (ast.TupleExpr, ast.ArrayExpr)) else [wanted]
        outputs = {f"_{i}": self.define(target, "?", call) for i, target in enumerate(items)}
        op = self.add_operation(call.name, call.type_arg, inputs, attribs, outputs, call.loc, set(inputs) | set(attribs))
        values = list(op.outputs.values())
        return values[0] if len(values) == 1 else tuple(values)

    def literal_tensor(self, value: list, target: ast.Identifier | None, loc: Location) -> TensorRef:
        """A literal array where a tensor belongs (the specification has only scalar
        literals there; tract writes arrays): a `constant` of the array's shape."""
        self.lenient("a literal array as a tensor; read as a constant", loc)
        dtype = literal_array_type(value)
        array = np.asarray(value, dtype=NUMPY_TYPES[dtype])
        attribs = {"shape": list(array.shape), "value": array.reshape(-1).tolist()}
        outputs = {"output": self.define(target, dtype)}
        op = self.add_operation("constant", dtype, {}, attribs, outputs, loc, {"shape", "value", EXPLICIT_TYPE})
        self.materialize(op)
        return outputs["output"]

    # ---- data of variables and constants ------------------------------------------

    def materialize(self, op: Operation) -> None:
        if has_trait(op.name, TensorSource):
            shape = op.attribs["shape"]
            if any(isinstance(d, bool) or not isinstance(d, (int, sympy.Expr)) or (isinstance(d, int) and d < 0) for d in shape):
                raise NNEFError(f"shape of '{op.name}' must be non-negative integers, found {shape}", op.loc)
            if math.prod(d for d in shape if isinstance(d, int)) > MAX_ELEMENTS:
                raise NNEFError(f"shape of '{op.name}' has more than 2^62 elements: {shape}", op.loc)
        if op.name == "variable":
            self.load_variable(op)
        elif op.name == "constant":
            self.make_constant(op)

    def load_variable(self, op: Operation) -> None:
        tensor = self.tensors[op.outputs["output"]]
        label, shape = op.attribs["label"], tuple(op.attribs["shape"])
        if label.startswith("/") and label.strip("/"):
            # tract writes labels rooted at the model folder ('/conv1/Conv.bias'): the
            # specification's labels are relative paths, and that is what is read and written.
            self.lenient(f"variable label '{label}' is rooted; read as '{label.lstrip('/')}' in the model folder", op.loc)
            label = op.attribs["label"] = label.lstrip("/")
        if self.load_tensor is None:
            return
        header, data, file, origin = self.load_tensor(label, shape, op.loc)
        if tuple(data.shape) != shape:
            raise NNEFError(
                f"variable '{tensor.name}' is declared with shape {list(shape)} "
                f"but its data has shape {list(data.shape)}",
                Location(file),
            )
        tensor.data, tensor.header, tensor.origin = data, header, origin

    def make_constant(self, op: Operation) -> None:
        tensor = self.tensors[op.outputs["output"]]
        shape, values = tuple(op.attribs["shape"]), op.attribs["value"]
        count = int(np.prod(shape, dtype=np.int64))
        if len(values) not in (1, count):
            raise NNEFError(
                f"constant of shape {list(shape)} needs 1 or {count} values, found {len(values)}", op.loc
            )
        dtype = NUMPY_TYPES.get(tensor.dtype, np.float32)
        if len(values) == 1:
            # One value fills the shape: a read-only view of it, not a copy per element,
            # so a constant that declares 2^31 elements costs nothing until computed with.
            tensor.data = np.broadcast_to(np.asarray(values[0], dtype=dtype), shape)
        else:
            tensor.data = np.asarray(values, dtype=dtype).reshape(shape)

    # ---- graph.quant --------------------------------------------------------------

    def attach_quantization(self, entries: list[ast.QuantEntry]) -> None:
        seen: dict[str, Location] = {}
        for entry in entries:
            if entry.tensor in seen:
                raise NNEFError(f"second quantization entry for tensor '{entry.tensor}' (first at {seen[entry.tensor]})", entry.loc)
            seen[entry.tensor] = entry.loc
            tensor = self.tensors.get(entry.tensor)
            if tensor is None:
                raise NNEFError(f"quantization entry for unknown tensor '{entry.tensor}'", entry.loc)
            attributes = {name: self.quant_value(entry, name, expr) for name, expr in entry.attributes.items()}
            self.check_quant_arguments(entry, attributes)
            tensor.quant = Quantization(entry.algorithm, attributes, entry.loc)

    def check_quant_arguments(self, entry: ast.QuantEntry, attributes: dict) -> None:
        """An argument of a known quantization fragment has the type its parameter says
        (a tensor parameter takes a literal of its item type, or an array of them): the
        passes and the interpreter compute with it."""
        fragment = self.signatures.get(entry.algorithm) or self.fragments.get(entry.algorithm)
        params = {p.name: p.type for p in fragment.params} if fragment is not None else {}
        for name, value in attributes.items():
            type_ = params.get(name)
            if type_ is None:
                continue
            what = f"'{name}' of the quantization of tensor '{entry.tensor}'"
            if isinstance(type_, ast.TensorType):
                items = value if isinstance(value, list) and value else [value]
                for item in items:
                    check_attribute(item, type_.item, what, entry.attributes[name].loc)
            else:
                check_attribute(value, type_, what, entry.attributes[name].loc)

    def quant_value(self, entry: ast.QuantEntry, name: str, expr: ast.Expr) -> object:
        # A torch-to-nnef writer bug: `NamedTensor(0.0039, nnef_name='...')` instead of a number.
        if isinstance(expr, ast.Invocation) and expr.name == "NamedTensor" and expr.args and expr.args[0].name is None:
            value = evaluate_constant(expr.args[0].value)
            self.lenient(f"'{name}' of tensor '{entry.tensor}' is written as NamedTensor(...); using {value!r}", expr.loc)
            return value
        return evaluate_constant(expr)


class _GraphDomain:
    """Evaluating the graph body builds the graph: tensors are their names."""

    def __init__(self, builder: GraphBuilder):
        self.builder = builder

    def is_tensor(self, value: object) -> bool:
        return isinstance(value, TensorRef)

    def shape_of(self, value: object) -> list:
        raise NNEFError(f"shape_of('{value}') cannot be used in the graph body", ast.NOWHERE)

    def invoke(self, call: ast.Invocation, evaluator: Evaluator) -> object:
        return self.builder.invoke(call, evaluator)

    def apply(self, op: str, inputs: list, loc: Location) -> object:
        args = [ast.Argument(None, Evaluated(v), loc) for v in inputs]
        return self.builder.invoke(ast.Invocation(op, None, args, loc), _ValueEvaluator(self.builder.env, self))


class Evaluated:
    """An already evaluated operand, carried through an Invocation node."""

    def __init__(self, value: object):
        self.value = value


class _ValueEvaluator(Evaluator):
    def _Evaluated(self, node: Evaluated) -> object:
        return node.value


def literal_array_type(value: object) -> str | None:
    """The NNEF type of a non-empty rectangular array of literals of one kind, else None."""
    if not isinstance(value, list) or not value:
        return None
    kinds, shapes = set(), set()
    stack = [(value, 0)]
    while stack:  # iterative: a deeply nested literal must not exhaust the stack
        item, depth = stack.pop()
        if isinstance(item, list):
            if not item:
                return None
            shapes.add((depth, len(item)))
            stack.extend((x, depth + 1) for x in item)
        elif isinstance(item, bool):
            kinds.add(("logical", depth))
        elif isinstance(item, int) and not isinstance(item, TensorRef):
            kinds.add(("integer", depth))
        elif isinstance(item, float):
            kinds.add(("scalar", depth))
        else:
            return None
    depths = {depth for _, depth in kinds}
    names = {name for name, _ in kinds}
    if len(depths) != 1 or len({d for d, _ in shapes}) != len(shapes):
        return None  # ragged, or items at several depths
    if names <= {"integer", "scalar"} and "scalar" in names:
        return "scalar"  # `[1, 0.5]`: a real array
    return names.pop() if len(names) == 1 else None


def _generic_item(type_: ast.Type) -> bool:
    while isinstance(type_, ast.ArrayType):
        type_ = type_.item
    return isinstance(type_, ast.TensorType) and type_.item.name == "?"


def _dtype_of(type_: ast.Type) -> str:
    while isinstance(type_, ast.ArrayType):
        type_ = type_.item
    if isinstance(type_, ast.TensorType) and type_.item.name in ast.PRIMITIVES:
        return type_.item.name
    return "?"


def _arrays_as_tuples(value: object, type_: ast.Type) -> object:
    """`value` with an array where `type_` has a tuple of that length read as the tuple."""
    if isinstance(type_, ast.ArrayType) and isinstance(value, list):
        return [_arrays_as_tuples(item, type_.item) for item in value]
    if isinstance(type_, ast.TupleType) and isinstance(value, (list, tuple)) and len(value) == len(type_.items):
        return tuple(_arrays_as_tuples(item, t) for item, t in zip(value, type_.items))
    return value


def _renamed(value: object, old: TensorRef, new: TensorRef) -> object:
    if isinstance(value, TensorRef):
        return new if value == old else value
    if isinstance(value, (list, tuple)):
        return type(value)(_renamed(item, old, new) for item in value)
    return value


def _flatten(value: object) -> list:
    if isinstance(value, (list, tuple)):
        return [x for item in value for x in _flatten(item)]
    return [value]
