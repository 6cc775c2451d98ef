"""equalize: cross-layer equalization of conv/linear pairs (nnefopt.quant.equalize), a
float-to-float rewrite that evens out per-channel weight ranges before quantization."""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from nnefopt.passes import register_pass


@register_pass
@dataclass(frozen=True)
class Equalize(ModulePass):
    """even out the per-channel weight ranges of consecutive convs (same outputs)"""

    name = "equalize"
    sweeps: int = 16

    def apply(self, ctx, op: ModuleOp) -> None:
        from nnefopt.quant.equalize import equalize

        equalize(op, self.sweeps)
