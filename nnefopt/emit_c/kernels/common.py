"""What every emitted kernel file starts with."""

# The largest rank the generic (odometer) kernels walk; the lowering checks it.
MAX_RANK = 8

PRELUDE = f"""#include <math.h>
#include <string.h>

/* The AVX2 + FMA paths of the kernels, where the compiler targets them (-march=native
   on such a machine); elsewhere the portable C path, equal within rounding. */
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define NN_AVX2 1
#endif

#define NN_MAX_RANK {MAX_RANK}
"""
