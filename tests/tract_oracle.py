"""tract (sonos/tract, Python bindings) as a test oracle: run an NNEF model, get numpy outputs.

Not a test file: tests import `run_tract` and compare its outputs with their own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

TIMEOUT_S = 60.0

# Runs in a child interpreter: argv = [model path, folder with in0.npy, in1.npy, ...].
_CHILD = r"""
import sys
from pathlib import Path
import numpy as np
import tract

path, work = sys.argv[1], Path(sys.argv[2])
inputs = [np.load(work / f"in{i}.npy") for i in range(int(sys.argv[3]))]
try:
    # tract.nnef() has the tract_core registry on by default (tract_core_* ops, and
    # `extension tract_registry tract_core`); load() takes a folder, a .tar or a .tgz and
    # gives a typed model; into_runnable() optimizes it (into_optimized) and plans it.
    runnable = tract.nnef().load(path).into_runnable()
    outputs = []
    for tensor in runnable.run(inputs):
        try:
            outputs.append(tensor.to_numpy())  # copies out of tract's buffer
        except tract.TractError:
            # A quantized output (graph.quant, e.g. qu8) has no numpy type: dequantize it.
            outputs.append(tensor.convert_to(tract.DatumType.F32).to_numpy())
except tract.TractError as e:
    (work / "error.txt").write_text(str(e), encoding="utf-8")
    sys.exit(3)
for i, array in enumerate(outputs):
    np.save(work / f"out{i}.npy", array)
"""


class TractError(Exception):
    """tract refused or failed to run the model; str() is tract's own message."""


class TractTimeout(TractError):
    """tract did not finish within the timeout (one shared t2n model makes it loop)."""


def run_tract(path: str | os.PathLike, inputs: list[np.ndarray], timeout: float = TIMEOUT_S) -> list[np.ndarray]:
    """Run the NNEF model at `path` (folder or .tgz/.tar) with tract on `inputs`; return its outputs."""
    # A subprocess, not an in-process call: tract can hang (no way to interrupt a native call)
    # or abort the interpreter on a Rust panic; a child can be killed and its death reported.
    with tempfile.TemporaryDirectory(prefix="tract_oracle_") as tmp:
        work = Path(tmp)
        for i, array in enumerate(inputs):
            np.save(work / f"in{i}.npy", np.asarray(array), allow_pickle=False)
        # RUST_BACKTRACE=0: otherwise tract's error strings carry a long stack trace.
        env = dict(os.environ, RUST_BACKTRACE="0", RUST_LIB_BACKTRACE="0")
        cmd = [sys.executable, "-c", _CHILD, str(Path(path).resolve()), tmp, str(len(inputs))]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:  # subprocess.run kills the child before raising
            raise TractTimeout(f"tract did not finish within {timeout:g} s on {path}") from None
        if proc.returncode == 3:
            raise TractError((work / "error.txt").read_text(encoding="utf-8"))
        if proc.returncode != 0:  # crash, panic, or tract not importable
            raise TractError(f"tract child exited with {proc.returncode}: {proc.stderr.strip()[-2000:]}")
        outputs = sorted(work.glob("out*.npy"), key=lambda p: int(p.stem[3:]))
        return [np.load(p) for p in outputs]
