"""Building an emitted C model for the tests: emit after -O, compile a shared library
once per (model, flags) per session, call it through ctypes."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np

import nnefopt
from nnefopt.emit_c.runtime import CFLAGS

COMPILERS = [c for c in ("gcc", "clang") if shutil.which(c)]


def compile_library(folder: Path, arch: str, compiler: str = "gcc", prefix: str = "model") -> Path:
    """lib<prefix>.so from every .c and .S in `folder` (assembled there: .incbin finds its blob)."""
    library = folder / f"lib{prefix}_{compiler}_{arch.replace('-', '_').replace('=', '_')}.so"
    sources = sorted(p.name for p in folder.iterdir() if p.suffix in (".c", ".S") and p.name != "main.c")
    command = [compiler, *CFLAGS.split(), arch, "-fPIC", "-shared", "-o", library.name, *sources, "-lm"]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{done.stderr}")
    assert done.stderr == "", done.stderr  # warning-free
    return library


class Library:
    """A compiled model called with numpy arrays."""

    def __init__(self, path: Path, prefix: str = "model"):
        self.dll = ctypes.CDLL(str(path))
        self.run_function = getattr(self.dll, f"{prefix}_run")
        self.run_function.restype = ctypes.c_int

    def run(self, inputs: list[np.ndarray], output_shapes: list[tuple], arena_bytes: int) -> list[np.ndarray]:
        inputs = [np.ascontiguousarray(x, np.float32) for x in inputs]
        outputs = [np.empty(shape, np.float32) for shape in output_shapes]
        arena = np.empty(arena_bytes + 64, np.uint8)
        base = arena.ctypes.data
        aligned = base + (-base % 64)
        in_ptrs = (ctypes.c_void_p * max(len(inputs), 1))(*[x.ctypes.data for x in inputs])
        out_ptrs = (ctypes.c_void_p * max(len(outputs), 1))(*[y.ctypes.data for y in outputs])
        assert self.run_function(in_ptrs, out_ptrs, ctypes.c_void_p(aligned)) == 0
        return outputs

    def prepared(self, inputs: list[np.ndarray], output_shapes: list[tuple], arena_bytes: int):
        """A call with its pointers made once (for benchmarks); it returns the first output."""
        inputs = [np.ascontiguousarray(x, np.float32) for x in inputs]
        outputs = [np.empty(shape, np.float32) for shape in output_shapes]
        arena = np.empty(arena_bytes + 64, np.uint8)
        aligned = arena.ctypes.data + (-arena.ctypes.data % 64)
        in_ptrs = (ctypes.c_void_p * max(len(inputs), 1))(*[x.ctypes.data for x in inputs])
        out_ptrs = (ctypes.c_void_p * max(len(outputs), 1))(*[y.ctypes.data for y in outputs])
        arena_ptr = ctypes.c_void_p(aligned)
        function = self.run_function

        def call() -> np.ndarray:
            function(in_ptrs, out_ptrs, arena_ptr)
            return outputs[0]

        call.keep = (inputs, arena)  # alive as long as the call
        return call


def emitted(model: Path, folder: Path, prefix: str = "model"):
    """The -O module of `model` and its C folder."""
    module = nnefopt.load(model)
    nnefopt.optimize(module, "default")
    nnefopt.save(module, folder, emit="c", c_prefix=prefix)
    return module
