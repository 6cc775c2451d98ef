"""Running NNEF graphs on numpy: kernels (`kernels.KERNELS`) and the interpreter."""
