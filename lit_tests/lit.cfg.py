# lit configuration: FileCheck tests of what nnef-opt reads, prints and reports.
import os
import sys

import lit.formats

config.name = "nnefopt"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".nnef", ".mlir"]
config.excludes = ["Inputs"]
config.test_source_root = os.path.dirname(__file__)

# The tools of the Python environment running lit (nnef-opt, filecheck) come first.
bindir = os.path.dirname(sys.executable)
config.environment["PATH"] = os.pathsep.join([bindir, os.environ.get("PATH", "")])
config.substitutions.append(("FileCheck", "filecheck"))
# The checkout holding these tests is the nnefopt they test, whatever else is installed.
root = os.path.dirname(config.test_source_root)
config.environment["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
# The shared test models beside the repository (../shared/models), as %{models}.
config.substitutions.append(("%{models}", os.path.join(os.path.dirname(root), "shared", "models")))
