"""Running one input in a forked child: a hang is killed, a memory blowup hits the
child's address-space limit, and nothing the input does reaches the campaign itself."""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import time
import traceback
from dataclasses import dataclass

OUTCOMES = ["ok", "refused", "crash", "hang", "memory", "roundtrip"]


class RoundTripFailure(Exception):
    """What nnefopt wrote does not read back to the same module."""


class Refused(Exception):
    """The input was refused the way the contract says (raised by CLI targets)."""


def time_bound(size: int) -> float:
    """Seconds of CPU time an input of `size` bytes may take: 2 s + 1 s per 100 kB."""
    return 2.0 + size / 100_000


# A child still running after this many time bounds of wall-clock time is killed as hung.
KILL_FACTOR = 10


def memory_bound(size: int) -> int:
    """Bytes an input of `size` bytes may allocate beyond the process it starts in."""
    return 200 * 2**20 + 50 * size


@dataclass
class Result:
    outcome: str
    seconds: float = 0.0
    peak_growth: int = 0  # bytes of resident memory beyond the child's start
    detail: str = ""


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def _measure(work, size: int) -> dict:
    """Run `work()` here under the input's bounds: its outcome, time and peak growth."""
    vm = _rss_kib("VmSize:") * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + memory_bound(size), resource.RLIM_INFINITY))
    try:  # the peak-RSS counter restarts for this input alone
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass
    start_rss = _rss_kib("VmRSS:")
    # CPU time, not wall time: on a machine shared with other jobs the wall clock
    # measures the neighbours (a child that truly loops is still killed by the wall clock).
    start = time.process_time()
    try:
        work()
        outcome, detail = "ok", ""
    except MemoryError:
        outcome, detail = "memory", "MemoryError"
    except RoundTripFailure as exc:
        outcome, detail = "roundtrip", str(exc)[:4000]
    except Refused as exc:
        outcome, detail = "refused", str(exc)[:500]
    except BaseException as exc:  # noqa: BLE001 - classifying is the point
        from nnefopt.errors import NNEFError

        if isinstance(exc, NNEFError):
            outcome, detail = "refused", str(exc)[:500]
        else:
            outcome, detail = "crash", "".join(traceback.format_exception(exc))[-6000:]
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    seconds = time.process_time() - start
    if outcome not in ("crash", "memory", "roundtrip") and seconds > time_bound(size):
        outcome, detail = "hang", f"took {seconds:.1f} s, bound {time_bound(size):.1f} s"
    growth = max(0, _rss_kib("VmHWM:") - start_rss) * 1024
    if outcome in ("ok", "refused") and growth > memory_bound(size):
        outcome, detail = "memory", f"peak RSS grew by {growth >> 20} MiB"
    return {"outcome": outcome, "seconds": seconds, "growth": growth, "detail": detail}


def _send(fd: int, message: dict) -> None:
    data = (json.dumps(message) + "\n").encode()
    while data:
        data = data[os.write(fd, data):]


class _Child:
    """One forked child running its share of the inputs in turn, and what the parent
    knows of it: the input it is inside (with its wall-clock deadline) and the rest."""

    def __init__(self, make, pending: list[int]):
        self.pending = pending
        self.current: int | None = None
        self.began = 0.0
        self.deadline: float | None = None
        self.buffer = b""
        read_fd, write_fd = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns into the caller's code
            os.close(read_fd)
            try:
                for index in pending:
                    try:
                        work, size = make(index)
                    except BaseException as exc:  # noqa: BLE001 - the generator's own failure
                        detail = "".join(traceback.format_exception(exc))[-6000:]
                        _send(write_fd, {"index": index, "outcome": "crash", "seconds": 0.0, "growth": 0,
                                         "detail": f"making the input failed: {detail}"})
                        continue
                    _send(write_fd, {"begin": index, "size": size})
                    _send(write_fd, {"index": index, **_measure(work, size)})
            finally:
                os._exit(0)
        os.close(write_fd)
        self.fd = read_fd

    def messages(self, chunk: bytes):
        """The results complete in what the child has sent so far."""
        self.buffer += chunk
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            message = json.loads(line)
            if "begin" in message:
                self.current, self.began = message["begin"], time.monotonic()
                self.deadline = self.began + KILL_FACTOR * time_bound(message["size"])
                continue
            self.pending.remove(message["index"])
            self.current = None
            yield message["index"], Result(message["outcome"], message["seconds"], message["growth"],
                                           message["detail"])

    def end(self, kill: bool = False) -> int:
        """Reap the child (killed first if asked); its wait status."""
        if kill:
            os.kill(self.pid, signal.SIGKILL)
        os.close(self.fd)
        return os.waitpid(self.pid, 0)[1]


def run_batch(make, indices: list[int], workers: int = 1):
    """Yield (index, Result) for each index (in the order they finish), running
    `make(index) -> (work, size)` and then `work()` in forked children, `workers` at once,
    each on its share of the indices: a child runs inputs in turn until one hangs (it is
    killed after KILL_FACTOR time bounds of wall time) or dies; a new child takes up the
    rest of its share. Forking once per share rather than per input keeps thousands of
    inputs a minute."""
    workers = max(1, workers)
    children = {c.fd: c for c in (_Child(make, indices[k::workers]) for k in range(workers) if indices[k::workers])}

    def replace(child: _Child) -> None:
        del children[child.fd]
        if child.pending:
            successor = _Child(make, child.pending)
            children[successor.fd] = successor

    while children:
        deadlines = [c.deadline for c in children.values() if c.current is not None]
        timeout = None if not deadlines else max(0.0, min(deadlines) - time.monotonic())
        ready, _, _ = select.select(list(children), [], [], timeout)
        for fd in ready:
            child = children[fd]
            chunk = os.read(fd, 1 << 16)
            yield from child.messages(chunk)
            if chunk:
                continue
            status = child.end()  # the child closed its pipe: finished, or died inside an input
            if child.current is not None:
                child.pending.remove(child.current)
                yield child.current, Result("crash", 0.0, 0, f"the process died: wait status {status}")
            replace(child)
        now = time.monotonic()
        for child in [c for c in children.values() if c.current is not None and c.deadline <= now]:
            child.end(kill=True)
            child.pending.remove(child.current)
            yield child.current, Result("hang", now - child.began, 0, f"killed after {KILL_FACTOR}x its time bound")
            replace(child)
