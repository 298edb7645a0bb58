"""Reads answered from memory alone, on the event loop, without a trip to a worker thread.

In a steady cycle most placements' Prometheus reads are shared answers another placement
already fetched: sending such a read to a worker thread and back cost the event loop more
than the read itself (a sixth of a steady cycle's CPU, stop 16's profile). `attempt` runs a
read with fetching forbidden: every cache refuses to wait for a lock or to fetch (it raises
`NeedsFetch` instead), and whatever the attempt marked as read is undone when it gives up,
so the same read run again on a worker thread behaves as if the attempt never happened.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class NeedsFetch(Exception):  # a signal, not an error: no "Error" suffix
    """The read cannot be answered from memory now (a fetch, or a lock another thread holds)."""


class _Attempt(threading.local):
    def __init__(self) -> None:
        self.undo: list[Callable[[], None]] | None = None  # None: not in an attempt


_ATTEMPT = _Attempt()


def active() -> bool:
    """Whether this thread is in an attempt: fetching is forbidden."""
    return _ATTEMPT.undo is not None


def forbid_fetch() -> None:
    """Called where a read would ask Prometheus: refused during an attempt."""
    if _ATTEMPT.undo is not None:
        raise NeedsFetch


def on_give_up(undo: Callable[[], None]) -> None:
    """What to undo if the attempt gives up (e.g. a reader marked as served)."""
    if _ATTEMPT.undo is not None:
        _ATTEMPT.undo.append(undo)


GIVEN_UP: Any = object()  # what `attempt` returns when memory could not answer


def attempt(read: Callable[[], T]) -> T | Any:
    """`read()` from memory alone, or `GIVEN_UP` (and nothing it did is left) when it needed
    more. An exception other than NeedsFetch also gives up: the read, run again where it
    may fetch, raises it there, where the caller expects it."""
    if _ATTEMPT.undo is not None:
        raise RuntimeError("attempts do not nest")
    _ATTEMPT.undo = []
    try:
        return read()
    except Exception:
        for undo in reversed(_ATTEMPT.undo):
            undo()
        return GIVEN_UP
    finally:
        _ATTEMPT.undo = None
