"""The pass registry: name → pass class, as xDSL's pipeline syntax names them.

`nnef-opt -p 'cse,dce'` and `nnefopt.optimize(module, "cse,dce")` look passes up here;
`register_pass` adds a user's own. xDSL's generic dce and cse work on the nnef
dialect as they are, because its operations declare that they have no side effects.
"""

from __future__ import annotations

import difflib
import re
from typing import Callable

from xdsl.passes import ModulePass, PassPipeline
from xdsl.transforms.common_subexpression_elimination import CommonSubexpressionElimination
from xdsl.transforms.dead_code_elimination import DeadCodeElimination
from xdsl.utils.exceptions import ArgSpecParseError

from nnefopt.errors import Location, NNEFError

PASSES: dict[str, Callable[[], type[ModulePass]]] = {}


def register_pass(cls: type[ModulePass]) -> type[ModulePass]:
    """Make a pass available by its `name`; usable as a class decorator."""
    PASSES[cls.name] = lambda: cls
    return cls


register_pass(DeadCodeElimination)
register_pass(CommonSubexpressionElimination)


# Named pipelines: `-O` and `--pass=default` run the passes deployment wants, in order.
PIPELINES = {"default": "fold-constants,canonicalize,fuse,canonicalize"}


def _expand_named(spec: str) -> str:
    """A named pipeline stands for its passes (each then timed and checked alone)."""
    return ",".join(PIPELINES.get(item.strip(), item) for item in _top_level_items(spec))


def _top_level_items(spec: str) -> list[str]:
    items, depth, current = [], 0, ""
    for char in spec:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    return [*items, current] if current or items else []


# An option value written bare that xDSL's pipeline lexer takes for no token: a path
# such as `calib=calib.npy` or `report=out/q.json` (a number or a word it reads itself).
_BARE_PATH = re.compile(r'(?<=[{\s])([A-Za-z_][\w-]*)=(?![-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?[\s},])([^\s"{},]*[./~][^\s"{},]*)')


def _quote_bare_paths(spec: str) -> str:
    """`quantize{calib=calib.npy}` as `quantize{calib="calib.npy"}`: users write paths
    bare, as on a command line."""
    return _BARE_PATH.sub(lambda m: f'{m[1]}="{m[2]}"', spec)


def parse_pipeline(spec: str, callback=None) -> PassPipeline:
    """xDSL pipeline text, such as `cse,dce` or `fuse{activations=false}`, or a named
    pipeline (`default`); an option's path may be written bare (`calib=data/calib.npy`)."""
    from xdsl.utils.arg_spec import parse_pipeline as parse_specs

    spec = _quote_bare_paths(_expand_named(spec))

    try:
        specs = list(parse_specs(spec))
    except ArgSpecParseError as exc:  # a BaseException in xDSL: `except Exception` misses it
        raise _pipeline_error(spec, exc) from None
    except Exception as exc:  # xDSL's pipeline lexer raises its own error types
        raise NNEFError(f"bad pass pipeline '{spec}': {exc}") from None
    for item in specs:
        if item.name not in PASSES:
            close = difflib.get_close_matches(item.name, [*PASSES, *PIPELINES], n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise NNEFError(f"unknown pass '{item.name}'{hint} (nnef-opt --list-passes lists them)")
    try:
        return PassPipeline.parse_spec(PASSES, spec, callback)
    except ArgSpecParseError as exc:
        raise _pipeline_error(spec, exc) from None
    except Exception as exc:
        raise NNEFError(f"bad options in pass pipeline '{spec}': {exc}") from None


def _pipeline_error(spec: str, exc: BaseException) -> NNEFError:
    """xDSL's message spans lines (the text, a caret, the reason): one line, with the place."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    place = next((line for line in lines if line.startswith("pass-pipeline:")), "")
    line, column = (int(n) for n in place.split(":")[1:3]) if place.count(":") == 2 else (0, 0)
    reason = lines[-1] if lines else "cannot parse"
    shown = spec if len(spec) <= 80 else spec[:80] + "..."
    return NNEFError(f"bad pass pipeline {shown!r}: {reason}", Location("pass-pipeline", line, column))


_SUMMARIES = {  # xDSL's own passes carry no docstring
    "dce": "remove operations whose results nothing uses",
    "cse": "merge operations that compute the same value from the same operands",
}


def describe_passes() -> list[str]:
    lines = [f"{name:<24} pipeline: {passes}" for name, passes in PIPELINES.items()]
    for name, get in sorted(PASSES.items()):
        doc = (get().__doc__ or "").strip().splitlines()
        lines.append(f"{name:<24} {_SUMMARIES.get(name) or (doc[0] if doc else '')}")
    return lines


def _register_own_passes() -> None:
    # Imported here, after the registry exists: each pass module registers itself.
    from nnefopt.passes import canonicalize, fold_constants, fuse, layout, lower_tract, portable, quantize  # noqa: F401
    from nnefopt.passes import equalize  # noqa: F401
    from nnefopt.passes import rewrite  # noqa: F401


_register_own_passes()
