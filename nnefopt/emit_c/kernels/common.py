"""What every emitted kernel file starts with."""

# The largest rank the generic (odometer) kernels walk; the lowering checks it.
MAX_RANK = 8

PRELUDE = f"""#include <math.h>
#include <string.h>

#define NN_MAX_RANK {MAX_RANK}
"""
