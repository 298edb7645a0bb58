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


PROBE_ENV = "PLACEMENT_MEMORY_PROBE"
PROBE_SECONDS_ENV = "PLACEMENT_MEMORY_PROBE_SECONDS"


MALLINFO2 = (
    "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
    "fsmblks", "uordblks", "fordblks", "keepcost",
)  # fmt: skip


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in MALLINFO2]


def memory_figures(types: bool = False) -> dict[str, object]:
    """Where the process's memory is, by layer: the kernel's (resident, anonymous), glibc's
    (mallinfo2: its heaps in use and free, its mmaps), pymalloc's (arenas, bytes in blocks
    used and free) and Python's (allocated blocks; with `types`, the live objects the
    collector tracks, by type, what holds them and the garbage in cycles). A debugging aid
    (probe_periodically)."""
    import gc
    import sys

    figures: dict[str, object] = {"t": round(time.time(), 1), **_kernel_figures()}
    malloc = _malloc_figures()
    if malloc:
        figures["malloc"] = malloc
    figures["allocated_blocks"] = sys.getallocatedblocks()
    figures.update(_pymalloc_figures())
    figures["gc_count"] = gc.get_count()
    if types:
        figures.update(_objects())
        figures["holders"] = _holders()
        figures["garbage"] = _cyclic_garbage()
    return figures


def _kernel_figures() -> dict[str, int]:
    figures: dict[str, int] = {}
    try:
        with open("/proc/self/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                    figures[key] = int(value.split()[0])
    except OSError:
        pass
    return figures


def _malloc_figures() -> dict[str, int]:
    """glibc's mallinfo2, in KiB; empty where there is no glibc (or an older one)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return {}
    try:
        mallinfo2 = ctypes.CDLL(name).mallinfo2
    except (OSError, AttributeError):
        return {}
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return {key: getattr(info, key) >> 10 for key in MALLINFO2}


PYMALLOC_FIGURES = (
    "arenas allocated current",
    "arenas highwater mark",
    "bytes in allocated blocks",
    "bytes in available blocks",
    "bytes lost to pool headers",
    "bytes lost to quantization",
    "Total",
)


def _pymalloc_figures() -> dict[str, int]:
    """pymalloc's own figures (sys._debugmallocstats), which it prints to the C stderr:
    caught in a file for the time of the call."""
    import os
    import sys
    import tempfile

    with tempfile.TemporaryFile() as caught:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(caught.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        caught.seek(0)
        text = caught.read().decode(errors="replace")
    figures: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.rpartition("=")
        key = "pymalloc " + key.strip().lstrip("#").strip()
        # The first "Total" is the arenas'.
        if key.removeprefix("pymalloc ") in PYMALLOC_FIGURES and key not in figures:
            figures[key] = int(value.strip().replace(",", ""))
    return figures


def _objects(top: int = 40) -> dict[str, object]:
    """The live objects by type, and the functions, coroutines, generators, tasks and weak
    references by their code's name."""
    import gc

    counts: dict[str, int] = {}
    named: dict[str, int] = {}
    for obj in gc.get_objects():
        kind = type(obj).__qualname__
        counts[kind] = counts.get(kind, 0) + 1
        if kind in ("function", "coroutine", "async_generator", "generator"):
            code = getattr(obj, "cr_code", None) or getattr(obj, "ag_code", None)
            code = code or getattr(obj, "gi_code", None) or getattr(obj, "__code__", None)
            where = kind + " " + str(getattr(code, "co_qualname", "?"))
        elif kind in ("ReferenceType", "Task", "partial", "method"):
            target = getattr(obj, "__callback__", None) or getattr(obj, "func", None)
            target = target or getattr(obj, "__func__", None) or getattr(obj, "get_coro", None)
            where = kind + " " + str(getattr(target, "__qualname__", type(target).__name__))
        else:
            continue
        named[where] = named.get(where, 0) + 1
    return {
        "objects": sum(counts.values()),
        "types": dict(sorted(counts.items(), key=lambda kv: -kv[1])[:top]),
        "named": dict(sorted(named.items(), key=lambda kv: -kv[1])[: top + 20]),
    }


def _holders(top: int = 60) -> dict[str, int]:
    """The live containers by type and the type of what holds them ("list<-Foo"): which
    objects keep the many small lists, dicts and tuples."""
    import gc

    counts: dict[str, int] = {}
    kinds = (list, dict, tuple, set)
    for holder in gc.get_objects():
        outer = type(holder).__qualname__
        if type(holder) is dict:  # which dicts: by their first keys
            outer += "{" + ",".join(str(k)[:24] for k in list(holder)[:4]) + "}"
        for child in gc.get_referents(holder):
            if isinstance(child, kinds):
                key = type(child).__qualname__ + "<-" + outer
                counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:top])


def _cyclic_garbage(top: int = 40) -> dict[str, int]:
    """What a full collection frees now, by type (and frames, coroutines and functions by
    their code's name): the garbage in reference cycles, which waits for a full collection."""
    import gc

    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        counts: dict[str, int] = {}
        for obj in gc.garbage:
            kind = type(obj).__qualname__
            code = getattr(obj, "f_code", None) or getattr(obj, "cr_code", None)
            code = code or getattr(obj, "gi_code", None) or getattr(obj, "__code__", None)
            if code is not None:
                kind += " " + code.co_qualname
            counts[kind] = counts.get(kind, 0) + 1
        counts["(all)"] = len(gc.garbage)
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
    return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:top])


def probe_periodically() -> bool:
    """A debugging aid: with PLACEMENT_MEMORY_PROBE=<file> in the environment, append one JSON
    line of memory_figures to the file every PLACEMENT_MEMORY_PROBE_SECONDS (30), and one
    with the live objects by type on SIGUSR2. False (nothing probed) unless the variable is
    set."""
    import json
    import os
    import signal

    target = os.environ.get(PROBE_ENV)
    if not target:
        return False
    every = float(os.environ.get(PROBE_SECONDS_ENV) or 30)

    def write(types: bool) -> None:
        line = json.dumps(memory_figures(types))
        with open(target, "a") as out:
            out.write(line + "\n")

    def loop() -> None:
        while True:
            write(False)
            time.sleep(every)

    threading.Thread(target=loop, name="memory-probe", daemon=True).start()
    signal.signal(signal.SIGUSR2, lambda _signum, _frame: write(True))
    return True
