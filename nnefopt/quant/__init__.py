"""Post-training quantization: calibration statistics (observe), range choice (ranges) and
the integer semantics of int8 engines (integer).

Importing the package registers the integer kernels in the op table (slot
"int8_kernel" of conv, linear and matmul)."""

from nnefopt.quant import integer as integer  # registers the int8 kernels
