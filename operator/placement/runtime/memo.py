"""What the operator remembers between evaluations of a placement to save CPU, bounded.

Each placement's admitted spec (validated by its model, its queries scoped to its namespace)
per generation: the API server bumps the generation with every change of the spec, so the
same (uid, generation) is the same spec.
"""

from __future__ import annotations

import threading

from placement.core.api import WorkloadPlacementSpec

# (uid, generation, whether queries are scoped to the namespace)
SpecKey = tuple[str, int, bool]
# One per placement; past it the oldest goes (and is validated again when next evaluated).
SPECS_REMEMBERED = 20_000


class AdmittedSpecs:
    """The admitted spec of each placement, one generation each (a new generation replaces
    the old one). Thread-safe."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._specs: dict[str, tuple[int, bool, WorkloadPlacementSpec]] = {}
        self._lock = threading.Lock()

    def get(self, key: SpecKey | None) -> WorkloadPlacementSpec | None:
        if key is None:
            return None
        uid, generation, scoped = key
        known = self._specs.get(uid)
        if known is None or known[:2] != (generation, scoped):
            return None
        return known[2]

    def remember(self, key: SpecKey | None, spec: WorkloadPlacementSpec) -> None:
        if key is None:
            return
        uid, generation, scoped = key
        with self._lock:
            self._specs.pop(uid, None)  # re-inserted last: the oldest is the least recent
            while len(self._specs) >= self.size:
                del self._specs[next(iter(self._specs))]
            self._specs[uid] = (generation, scoped, spec)

    def forget(self, uid: str) -> None:
        with self._lock:
            self._specs.pop(uid, None)

    def clear(self) -> None:
        with self._lock:
            self._specs.clear()

    def __len__(self) -> int:
        return len(self._specs)
