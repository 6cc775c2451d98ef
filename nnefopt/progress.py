"""A progress bar for work a person waits for (calibration, large loads), on stderr.

Only on a terminal, and only once the work has taken a second: a pipe, a log or a
quick run sees nothing, so output stays the same wherever it is read.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")

DELAY_SECONDS = 1.0  # no bar for work that ends sooner
REDRAW_SECONDS = 0.1
WIDTH = 30


def progress(iterable: Iterable[T], total: int | None = None, what: str = "",
             stream: TextIO | None = None, delay: float = DELAY_SECONDS) -> Iterator[T]:
    """Each item of `iterable`, drawing `what [#####.....] done/total` on `stream`
    (stderr) while they come; the line is cleared when they end."""
    stream = stream if stream is not None else sys.stderr
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if not _is_terminal(stream):
        yield from iterable
        return
    started = time.monotonic()
    drawn_at, drawn = 0.0, False
    done = 0
    try:
        for item in iterable:
            yield item
            done += 1
            now = time.monotonic()
            if now - started >= delay and now - drawn_at >= REDRAW_SECONDS:
                stream.write("\r" + bar(done, total, what, now - started))
                stream.flush()
                drawn_at, drawn = now, True
    finally:
        if drawn:
            stream.write("\r\033[K")  # the bar goes; what follows starts a clean line
            stream.flush()


def bar(done: int, total: int | None, what: str = "", seconds: float = 0.0) -> str:
    """The bar's text: `what [#####.....] 5/10 3.2s` (a count alone without a total)."""
    label = f"{what} " if what else ""
    if not total:
        return f"{label}{done} {seconds:.1f}s"
    filled = min(WIDTH, WIDTH * done // total)
    return f"{label}[{'#' * filled}{'.' * (WIDTH - filled)}] {done}/{total} {seconds:.1f}s"


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-less stream
        return False
