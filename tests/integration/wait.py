"""Polling with a deadline and a message that says what was expected and what was seen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def until(
    probe: Callable[[], T],
    accept: Callable[[T], bool],
    *,
    timeout: float = 60.0,
    interval: float = 0.25,
    what: str = "condition",
) -> T:
    """Call probe until accept(result); raise with the last result after timeout."""
    deadline = time.monotonic() + timeout
    last: T = probe()
    while not accept(last):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached after {timeout:.0f}s; last seen: {last!r}")
        time.sleep(interval)
        last = probe()
    return last
