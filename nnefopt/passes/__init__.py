"""The pass registry: name → pass class, as xDSL's pipeline syntax names them.

`nnef-opt -p 'cse,dce'` and `nnefopt.optimize(module, "cse,dce")` look passes up here;
`register_pass` adds a user's own. xDSL's generic dce and cse work on the nnef
dialect as they are, because its operations declare that they have no side effects.
"""

from __future__ import annotations

import difflib
from typing import Callable

from xdsl.passes import ModulePass, PassPipeline
from xdsl.transforms.common_subexpression_elimination import CommonSubexpressionElimination
from xdsl.transforms.dead_code_elimination import DeadCodeElimination

from nnefopt.errors import NNEFError

PASSES: dict[str, Callable[[], type[ModulePass]]] = {}


def register_pass(cls: type[ModulePass]) -> type[ModulePass]:
    """Make a pass available by its `name`; usable as a class decorator."""
    PASSES[cls.name] = lambda: cls
    return cls


register_pass(DeadCodeElimination)
register_pass(CommonSubexpressionElimination)


def parse_pipeline(spec: str, callback=None) -> PassPipeline:
    """xDSL pipeline text, such as `cse,dce` or `fuse{activations=false}`."""
    from xdsl.utils.arg_spec import parse_pipeline as parse_specs

    try:
        specs = list(parse_specs(spec))
    except Exception as exc:  # xDSL's pipeline lexer raises its own error types
        raise NNEFError(f"bad pass pipeline '{spec}': {exc}") from None
    for item in specs:
        if item.name not in PASSES:
            close = difflib.get_close_matches(item.name, PASSES, n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise NNEFError(f"unknown pass '{item.name}'{hint} (nnef-opt --list-passes lists them)")
    try:
        return PassPipeline.parse_spec(PASSES, spec, callback)
    except Exception as exc:
        raise NNEFError(f"bad options in pass pipeline '{spec}': {exc}") from None


_SUMMARIES = {  # xDSL's own passes carry no docstring
    "dce": "remove operations whose results nothing uses",
    "cse": "merge operations that compute the same value from the same operands",
}


def describe_passes() -> list[str]:
    lines = []
    for name, get in sorted(PASSES.items()):
        doc = (get().__doc__ or "").strip().splitlines()
        lines.append(f"{name:<24} {_SUMMARIES.get(name) or (doc[0] if doc else '')}")
    return lines


def _register_own_passes() -> None:
    # Imported here, after the registry exists: each pass module registers itself.
    from nnefopt.passes import lower_tract  # noqa: F401


_register_own_passes()
