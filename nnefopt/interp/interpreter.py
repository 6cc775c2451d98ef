"""The reference interpreter: a model's outputs, computed by the numpy kernels.

Primitives run their kernel (the op-table entry's); fragments (the model's own, or compound operations
without a kernel) run their body over arrays, through the same walk that shape
inference uses over shapes.

Modules in the `nnef` dialect are run by the IR interpreter (`ir_interpreter.Plan`),
which binds each operation once through `ArrayDomain` and the kernels. `run_model`, the
walk of the flat exported Model by tensor name, stays only as the baseline that
bench/bench_interp.py measures the plan against.
"""

from __future__ import annotations

import numpy as np

from nnefopt.dialects.weights import missing_weight
from nnefopt.dtypes import NUMPY_TYPES
from nnefopt.errors import Location, NNEFError
from nnefopt.frontend.fragments import NoMeaning, OperationDomain
from nnefopt.frontend.model import Model, TensorRef
from nnefopt.frontend.stdlib import known_operations
from nnefopt.interp.quantized import real_bias, real_weight, settle
from nnefopt.ops import entry_of, has_trait, kernel_of
from nnefopt.traits import Declaration



class ArrayDomain(OperationDomain):
    def __init__(self, signatures: dict):
        super().__init__(signatures, kernel_of)

    def is_tensor(self, value: object) -> bool:
        return isinstance(value, np.ndarray)

    def shape_of(self, value: np.ndarray) -> list:
        return list(value.shape)

    def operand(self, value: object) -> object:
        if isinstance(value, list):
            return [self.operand(v) for v in value]
        if isinstance(value, bool):
            return np.asarray(value)
        if isinstance(value, int):
            return np.asarray(value, np.int32)
        if isinstance(value, float):
            return np.asarray(value, np.float32)
        return value

    def call(self, kernel, signature, operands, attribs, type_arg, loc) -> object:
        if type_arg and (entry := entry_of(signature.name)) is not None and entry.kernel_takes_dtype:
            attribs = {**attribs, "dtype": type_arg}
        try:
            return kernel(*operands, **attribs)
        except (ValueError, TypeError, IndexError, ZeroDivisionError, FloatingPointError) as exc:
            raise NNEFError(f"'{signature.name}' failed at run time: {exc}", loc) from None


def check_inputs(model: Model, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The graph's inputs, each present, of the declared shape, in the declared type."""
    return check_declared(declared_inputs(model), inputs)


def declared_inputs(model: Model) -> dict[str, tuple]:
    """Each graph input's declared (shape, dtype, location)."""
    return {name: (model.tensors[name].shape, model.tensors[name].dtype, Location(model.file, field=name))
            for name in model.inputs}


def check_declared(declared: dict[str, tuple], inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`inputs` checked against `declared` (name → shape, dtype, location): each present,
    of the declared shape, in the declared type."""
    missing = [name for name in declared if name not in inputs]
    unknown = [name for name in inputs if name not in declared]
    if missing or unknown:
        raise NNEFError(f"graph inputs are {list(declared)}; missing {missing}, unknown {unknown}")
    checked = {}
    for name, (shape, dtype, loc) in declared.items():
        array = np.asarray(inputs[name])
        if shape is not None and all(isinstance(d, int) for d in shape) and tuple(array.shape) != tuple(shape):
            raise NNEFError(f"input '{name}' has shape {list(array.shape)}, the graph declares {list(shape)}", loc)
        checked[name] = array.astype(NUMPY_TYPES.get(dtype, array.dtype), copy=False)
    return checked


def run_model(model: Model, inputs: dict[str, np.ndarray], record: bool = False) -> dict[str, np.ndarray]:
    """Outputs by name; with `record`, every tensor the run computed."""
    domain = ArrayDomain({**known_operations(model.extensions), **model.fragments})
    values: dict[str, object] = {
        name: settle(model, name, array, domain, domain.signatures) for name, array in check_inputs(model, inputs).items()
    }

    def value(item):
        if isinstance(item, TensorRef):
            return values[item]
        if isinstance(item, list):
            return [value(v) for v in item]
        return item  # a literal, or None for an absent tensor

    for op in model.operations:
        if has_trait(op.name, Declaration):  # inputs, weights, metadata: nothing to compute
            if op.name == "variable":
                name = op.outputs["output"]
                data = model.tensors[name].data
                if data is None:
                    raise missing_weight(op.attribs["label"], op.loc)
                values[name] = real_weight(model, name, np.asarray(data))
            continue
        real_bias(model, op, values)
        if op.signature is None:
            raise NNEFError(f"operation '{op.name}' of an unknown registry cannot be run", op.loc)
        try:
            result = domain.run(op.signature, [value(v) for v in op.inputs.values()], dict(op.attribs), op.loc,
                                op.type_arg)
        except NoMeaning:
            raise NNEFError(f"nnefopt has no kernel for operation '{op.name}'", op.loc) from None
        outputs = list(op.outputs.values())
        for names, computed in zip(outputs, [result] if len(outputs) == 1 else result):
            if isinstance(names, list):
                values.update((n, settle(model, n, c, domain, domain.signatures)) for n, c in zip(names, computed))
            else:
                values[names] = settle(model, names, computed, domain, domain.signatures)
    if record:
        return {name: v for name, v in values.items() if isinstance(v, np.ndarray)}
    return {name: values[name] for name in model.outputs}


def random_inputs(model: Model, seed: int) -> dict[str, np.ndarray]:
    """Seeded inputs of the declared shapes: normal floats, small integers, coin flips."""
    return random_declared(declared_inputs(model), seed)


def random_declared(declared: dict[str, tuple], seed: int) -> dict[str, np.ndarray]:
    """Seeded inputs for `declared` (name → shape, dtype, location)."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for name, (shape, dtype, loc) in declared.items():
        if shape is None or not all(isinstance(d, int) for d in shape):
            raise NNEFError(f"input '{name}' has no static shape; give it with --input", Location(loc.file))
        if dtype == "integer":
            inputs[name] = rng.integers(0, 10, shape, dtype=np.int32)
        elif dtype == "logical":
            inputs[name] = rng.random(shape) < 0.5
        else:
            inputs[name] = rng.standard_normal(shape).astype(np.float32)
    return inputs
