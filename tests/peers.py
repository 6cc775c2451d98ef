"""The peers' optimizers as tests and benchmarks measure them: onnxruntime's graph
optimizer (ORT_ENABLE_EXTENDED) on the shared `model.onnx`."""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx
import onnxruntime


def onnx_operations(path: Path) -> int:
    """Nodes of an ONNX graph, `Constant` nodes aside (they are tensors, not compute)."""
    return sum(1 for node in onnx.load(str(path)).graph.node if node.op_type != "Constant")


def onnxruntime_optimized(path: Path) -> int:
    """Operations of the graph onnxruntime runs after its extended optimizations."""
    with tempfile.TemporaryDirectory() as scratch:
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(Path(scratch) / "optimized.onnx")
        options.log_severity_level = 3  # its own notes on what it fused are not ours to print
        onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return onnx_operations(Path(options.optimized_model_filepath))
