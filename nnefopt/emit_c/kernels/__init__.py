"""The C source of each kernel family, as text the writer copies into model.c.

Every function here returns (name, source) for one C function: the lowering asks for
the variants it needs (an activation epilogue, a reduction mode), and the writer puts
each distinct one into model.c once. Kernels are scalar C99 over dense row-major data;
a layout or a vector path is another variant with its own name, so the schedule does
not change when one is added.
"""

from nnefopt.emit_c.kernels.common import PRELUDE

__all__ = ["PRELUDE"]
