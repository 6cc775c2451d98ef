"""nnefopt: a graph-optimization compiler for Khronos NNEF models.

    import nnefopt
    module = nnefopt.load("model/")      # NNEF folder, graph file, .tgz, .mlir, .onnx, .tflite
    print(nnefopt.to_mlir(module))        # the module in the `nnef` dialect
    nnefopt.optimize(module, "cse,dce")   # an xDSL pass pipeline
    outputs = nnefopt.run(module, {"input": array})   # the reference interpreter
    nnefopt.info(module)                  # inputs, operations, MACs, memory, ...
    nnefopt.save(module, "out/")          # specification-valid NNEF, written atomically
"""

from nnefopt.api import load, optimize, parse_mlir, run, save, to_mlir
from nnefopt.info import info
from nnefopt.passes import register_pass
from nnefopt.errors import Location, NNEFError, NNEFWarning

__all__ = ["load", "save", "info", "optimize", "run", "register_pass", "to_mlir", "parse_mlir", "NNEFError", "NNEFWarning",
           "Location"]
