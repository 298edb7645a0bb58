"""Keep the operator's resident memory proportional to what it holds.

glibc gives each contending thread a malloc arena of its own (up to 8 per core), and
Python's small, short-lived allocations (HTTP responses, JSON, API models) leave every arena
fragmented: when kopf ran the evaluations on 20 threads, 1,000 placements peaked at 327 MB,
197 MB with two arenas (bench/scale.py, MALLOC_ARENA_MAX=2). Evaluations run in the event
loop now, but the Prometheus reads (JSON answers, the largest transient allocations) still run
on a few threads: the cap and the trim stay (they cost nothing; see docs/development.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time

M_ARENA_MAX = -8  # glibc's mallopt parameter number


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas; call before threads start. False where there is no glibc
    (musl, macOS): nothing to cap there."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))


def trim_periodically(interval_seconds: float = 5.0) -> bool:
    """Hand freed heap pages back to the kernel every `interval_seconds` (glibc's
    malloc_trim), from a daemon thread: the evaluations' transient allocations otherwise stay
    resident as free chunks between live ones. False where there is no glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        malloc_trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return False

    def trim() -> None:
        while True:
            time.sleep(interval_seconds)
            malloc_trim(0)

    threading.Thread(target=trim, name="malloc-trim", daemon=True).start()
    return True


SNAPSHOT_ENV = "PLACEMENT_TRACEMALLOC_SNAPSHOT"
FRAMES_ENV = "PLACEMENT_TRACEMALLOC_FRAMES"


def snapshot_on_signal() -> bool:
    """A debugging aid: with PLACEMENT_TRACEMALLOC_SNAPSHOT=<file> in the environment, trace
    allocations from now on (after the imports: the growth is what is looked for;
    PLACEMENT_TRACEMALLOC_FRAMES frames each, 8 by default), and on SIGUSR1 write a
    tracemalloc snapshot of the live process to the file (bench/scale.py --tracemalloc reads
    it). False (nothing traced) unless the variable is set."""
    import os
    import signal
    import tracemalloc

    target = os.environ.get(SNAPSHOT_ENV)
    if not target:
        return False
    tracemalloc.start(int(os.environ.get(FRAMES_ENV) or 8))

    def dump(_signum: int, _frame: object) -> None:
        tracemalloc.take_snapshot().dump(target + ".partial")
        os.replace(target + ".partial", target)  # readers never see half a snapshot

    signal.signal(signal.SIGUSR1, dump)
    return True
