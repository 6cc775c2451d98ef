"""tract as the oracle of nnefopt's integer semantics: run a quantized NNEF export in tract
(int8 arithmetic, its outputs of quantized types) and count how far nnefopt's interpreter,
in integer arithmetic, is from it, in output quantization steps.

Not a test file: the quantize-pass tests call `tract_integer_agreement` for every
quantized CNN they export.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

import nnefopt
from nnefopt.errors import NNEFWarning
from nnefopt.interp.integer_binding import codes_of
from nnefopt.interp.ir_binding import quant_entry
from nnefopt.interp.ir_interpreter import Plan
from tests.tract_oracle import TractError

TIMEOUT_S = 600.0

# One child runs every sample (loading a model in tract costs more than running it):
# argv = [model path, samples.npz (one array per input, samples along axis 0), out.npz].
# Each output is written as tract's codes' reals (convert_to f32) and its datum type.
_CHILD = r"""
import sys
import numpy as np
import tract

path, samples, out = sys.argv[1:4]
arrays = np.load(samples)
names = sorted(arrays.files, key=lambda k: int(k[2:]))
try:
    model = tract.nnef().load(path)
    facts = [str(model.output_fact(i)) for i in range(model.output_count())]
    runnable = model.into_runnable()
    count = arrays[names[0]].shape[0]
    results = [[] for _ in facts]
    for s in range(count):
        for i, tensor in enumerate(runnable.run([arrays[n][s] for n in names])):
            try:
                results[i].append(tensor.to_numpy())
            except tract.TractError:
                results[i].append(tensor.convert_to(tract.DatumType.F32).to_numpy())
except tract.TractError as e:
    sys.stderr.write(str(e))
    sys.exit(3)
np.savez(out, facts=np.array(facts), **{f"out{i}": np.stack(r) for i, r in enumerate(results)})
"""


class Agreement(NamedTuple):
    """How nnefopt's integer semantics compare with tract on every output element of
    every sample: the largest difference in output steps, how many elements differ,
    of how many, and tract's output types (a quantized type, e.g. `qu8(...)`, shows
    tract computed the output in integers)."""

    max_steps: float
    n_diff: int
    total: int
    tract_types: tuple[str, ...]


def run_tract_batch(path: str | os.PathLike, samples: list[np.ndarray],
                    timeout: float = TIMEOUT_S) -> tuple[list[np.ndarray], list[str]]:
    """tract's outputs for every sample (`samples[i]`: input i, samples along axis 0, each
    sample with the model's full input shape), stacked along a new axis 0, and the
    output types tract declares."""
    with tempfile.TemporaryDirectory(prefix="tract_integer_") as tmp:
        work = Path(tmp)
        np.savez(work / "in.npz", **{f"in{i}": np.asarray(a) for i, a in enumerate(samples)})
        env = dict(os.environ, RUST_BACKTRACE="0", RUST_LIB_BACKTRACE="0")
        cmd = [sys.executable, "-c", _CHILD, str(Path(path).resolve()), str(work / "in.npz"), str(work / "out.npz")]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TractError(f"tract did not finish within {timeout:g} s on {path}") from None
        if proc.returncode != 0:
            raise TractError(proc.stderr.strip()[-2000:] or f"tract child exited with {proc.returncode}")
        with np.load(work / "out.npz") as out:
            outputs = [out[f"out{i}"] for i in range(len(out.files) - 1)]
            return outputs, [str(f) for f in out["facts"]]


def output_steps(module) -> list[float]:
    """Each graph output's quantization step: its entry's scale, or (an output copied or
    cast out of a quantized tensor, as exports write it) that of the quantized value it
    is taken from through single-operand operations."""
    plan = Plan(module)
    by_name = {name: value for value, name in plan.names.items()}
    steps = []
    for name, _ in plan.outputs:
        value = by_name[name]
        codes = codes_of(quant_entry(value))
        while codes is None and len(getattr(value.owner, "operands", ())) == 1:
            value = value.owner.operands[0]
            codes = codes_of(quant_entry(value))
        if codes is None or not codes.per_tensor():
            raise ValueError(f"output '{name}' is not taken from a per-tensor quantized value")
        steps.append(float(codes.scale[0]))
    return steps


def tract_integer_agreement(path: str | os.PathLike, samples: np.ndarray | list[np.ndarray]) -> Agreement:
    """Run the quantized NNEF model at `path` (folder or archive) in tract and in
    nnefopt's interpreter (integer arithmetic) on every sample (an array of samples
    concatenated along the batch axis of the single input, of the input's batch size
    each, or a list of such arrays, one per input) and compare them in output steps."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        module = nnefopt.load(path)
    plan = Plan(module, arithmetic="integer")
    names = list(plan.inputs)
    arrays = [np.asarray(samples, np.float32)] if not isinstance(samples, list) else [np.asarray(s, np.float32) for s in samples]
    batched = []
    for name, array in zip(names, arrays):
        shape = plan.inputs[name][0]
        batch = shape[0] if shape and shape[0] else 1
        batched.append(array.reshape(-1, batch, *array.shape[1:]))
    theirs, types = run_tract_batch(path, batched)
    steps = output_steps(module)
    worst, differing, total = 0.0, 0, 0
    for s in range(batched[0].shape[0]):
        ours = plan.run({name: a[s] for name, a in zip(names, batched)})
        for i, (key, step) in enumerate(zip(ours, steps)):
            diff = np.abs(ours[key].astype(np.float64) - theirs[i][s].astype(np.float64)) / step
            worst = max(worst, float(diff.max(initial=0.0)))
            differing += int(np.count_nonzero(diff > 0.5))
            total += diff.size
    return Agreement(round(worst, 6), differing, total, tuple(types))
