"""Whether evaluations still make progress, for kopf's `/healthz`. No I/O.

kopf answers `/healthz` as long as its event loop runs, even while every worker thread waits
on an API server that stopped answering (six threads did, for 30 s, behind a 200). The timer
records each evaluation here; the probe fails when one has run longer than the bound, or
when evaluations have been failing for longer than the bound with none completing. No
placements, or placements not yet due, are never a reason to fail.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Liveness:
    def __init__(self, bound_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.bound = bound_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._running: dict[str, float] = {}  # evaluation key -> when it started
        self._failing_since: float | None = None  # first failure since the last completion
        self._completed = 0

    def started(self, key: str) -> None:
        with self._lock:
            self._running[key] = self._clock()

    def finished(self, key: str, *, ok: bool) -> None:
        with self._lock:
            self._running.pop(key, None)
            if ok:
                self._completed += 1
                self._failing_since = None
            elif self._failing_since is None:
                self._failing_since = self._clock()

    def problem(self) -> str | None:
        """Why the operator is not live, or None."""
        with self._lock:
            now = self._clock()
            if self._running:
                key, since = min(self._running.items(), key=lambda item: item[1])
                if now - since > self.bound:
                    return (
                        f"evaluation of {key} running for {now - since:.0f}s "
                        f"(bound {self.bound:g}s)"
                    )
            if self._failing_since is not None and now - self._failing_since > self.bound:
                return (
                    f"no evaluation completed for {now - self._failing_since:.0f}s while "
                    f"evaluations failed (bound {self.bound:g}s)"
                )
        return None

    def summary(self) -> dict[str, int]:
        with self._lock:
            return {"completed": self._completed, "running": len(self._running)}
