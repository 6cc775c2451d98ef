"""Reading a user's `.npy` file (inputs to run, calibration sets) under the input contract.

`np.load` trusts the header it parses: a mutated header escapes as SyntaxError,
tokenize.TokenError or MemoryError, and a declared shape larger than the file is
allocated before the short read is noticed. Here the array is memory-mapped first, which
checks the declared size against the file, and copied only once it fits; any failure of
numpy's header parser becomes one NNEFError naming the file.
"""

from __future__ import annotations

import stat
import tokenize
from pathlib import Path

import numpy as np

from nnefopt.errors import Location, NNEFError

# bool, signed and unsigned integers, floats: what a graph input or a calibration set holds
_NUMERIC_KINDS = "biuf"


def is_present(path: Path, what: str, kind: str = "file") -> bool:
    """Whether `path` is a file (kind "file") or a folder ("folder"); False when nothing is
    there; NNEFError when the system cannot say (a name too long, a loop of links)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return False
    except OSError as error:
        raise NNEFError(f"cannot read the {what} path: {error.strerror}", Location(str(path)[:300])) from None
    return stat.S_ISDIR(mode) if kind == "folder" else stat.S_ISREG(mode)


def _check_header_length(path: Path) -> None:
    """numpy reads as many header bytes as the file's length field says before it looks:
    a length beyond the file is refused here, before any allocation."""
    with open(path, "rb") as file:
        start = file.read(12)
    size = path.stat().st_size
    if len(start) < 10 or not start.startswith(b"\x93NUMPY"):
        raise ValueError("no .npy magic string at the start")
    wide = start[6] >= 2  # versions 2 and 3: a 4-byte header length
    length = int.from_bytes(start[8:12] if wide else start[8:10], "little")
    if (12 if wide else 10) + length > size:
        raise ValueError(f"the header says {length} bytes, beyond the file's {size}")


def read_npy(path: str | Path, what: str = "input", expected: str = "") -> np.ndarray:
    """The array in `path`, in memory; NNEFError (naming the file, what it is for, and
    `expected` if given) when it is missing, is not an .npy array, or holds a non-numeric
    dtype."""
    hint = f" (expected {expected})" if expected else ""
    path = Path(path)
    if not is_present(path, what, "file"):
        raise NNEFError(f"{what} file is missing{hint}", Location(str(path)))
    try:
        _check_header_length(path)
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
        if not isinstance(mapped, np.ndarray):
            raise ValueError("an .npz archive, not one array")
        if mapped.dtype.kind not in _NUMERIC_KINDS or mapped.dtype.fields is not None:
            raise ValueError(f"dtype {mapped.dtype} is not a number type")
        return np.array(mapped)  # a copy: the mapping closes with the file
    except (SyntaxError, tokenize.TokenError):  # from numpy's parsing of the header text
        reason = "its header is not a dictionary literal"
    except Exception as error:  # noqa: BLE001 - numpy raises many kinds for a bad file
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
    raise NNEFError(f"{what}: not a readable .npy array ({reason}){hint}", Location(str(path)))
