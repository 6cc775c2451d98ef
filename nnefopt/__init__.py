"""nnefopt: a graph-optimization compiler for Khronos NNEF models.

    import nnefopt
    module = nnefopt.load("model/")      # NNEF folder, graph file, .tgz, or .mlir
    print(nnefopt.to_mlir(module))        # the module in the `nnef` dialect
    nnefopt.save(module, "out/")          # specification-valid NNEF, written atomically
"""

from nnefopt.api import load, parse_mlir, save, to_mlir
from nnefopt.errors import Location, NNEFError, NNEFWarning

__all__ = ["load", "save", "to_mlir", "parse_mlir", "NNEFError", "NNEFWarning", "Location"]
