"""What the operator remembers between evaluations of a placement to save CPU, bounded.

Each placement's admitted spec (validated by its model, its queries scoped to its namespace)
per generation: the API server bumps the generation with every change of the spec, so the
same (uid, generation) is the same spec.

The admitted specs were the operator's largest memory of its own: 9.3 KB of pydantic models
per placement (bench/scale.py's specs), most of it parts every placement made from one chart
or template writes alike (the costs, the batch window and Job template, the fallback, the
learning settings, the durations). Remembered specs share their equal parts (`SharedParts`):
one instance of each, however many placements hold it.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Any, TypeVar

from pydantic import BaseModel

from placement.core.api import WorkloadPlacementSpec

# (uid, generation, whether queries are scoped to the namespace)
SpecKey = tuple[str, int, bool]
# One per placement; past it the oldest goes (and is validated again when next evaluated).
SPECS_REMEMBERED = 20_000
# Distinct parts remembered for sharing; when full the table starts again (parts already
# shared stay shared: the table only finds the instance to share with the next spec).
PARTS_REMEMBERED = 8_192

T = TypeVar("T")


class SharedParts:
    """Equal parts of specs, one instance each: a spec's models, lists, dicts and values are
    replaced by an equal one seen before. Only for values nothing changes afterwards (the
    operator never assigns to a spec's fields: a scoped spec is a `model_copy`).

    Equal means the same type, the same fields set and equal values of the same types: 1,
    1.0 and True are three parts, "Enforce" and `Mode.ENFORCE` two, 0.0 and -0.0 two. Values
    of other types (none in a spec today) are kept as they are, and a part holding one is
    shared with no other (its key holds the value's identity, alive as long as the part)."""

    def __init__(self, size: int = PARTS_REMEMBERED) -> None:
        self.size = size
        self._parts: dict[Hashable, tuple[Any, Hashable]] = {}  # key: (part, key)

    def share(self, value: T) -> T:
        """`value`, or an equal part seen before. A model or container not seen before is
        kept (its own parts replaced by shared ones, in place: pass only what is yours)."""
        return self._share(value)[0]  # type: ignore[no-any-return]

    def __len__(self) -> int:
        return len(self._parts)

    def _share(self, value: Any) -> tuple[Any, Hashable]:
        """The shared part equal to `value` and its key (the key remembered: a part's key
        holds its parts' keys, and a new one per spec would cost what sharing saves)."""
        kind = type(value)
        key: Hashable
        if kind is str or value is None:
            key = value  # the commonest part: its own key
        elif kind is bool or kind is int:
            key = (kind, value)  # 1 == 1.0 == True: the type is part of the key
        elif kind is float:
            key = (kind, repr(value))  # 0.0 is not -0.0
        elif isinstance(value, str) and not hasattr(value, "__dict__"):
            key = (kind, str(value))  # Duration, enums: immutable str subclasses
        elif isinstance(value, BaseModel):
            return self._model(value)
        elif kind is list or kind is tuple:
            shared = [self._share(item) for item in value]
            key = (kind, tuple(k for _, k in shared))
            known = self._parts.get(key)
            if known is not None:
                return known
            value = kind(v for v, _ in shared)
        elif kind is dict:
            pairs = [(self.share(k), self._share(v)) for k, v in value.items()]
            key = (kind, tuple((k, vk) for k, (_, vk) in pairs))
            known = self._parts.get(key)
            if known is not None:
                return known
            value = {k: v for k, (v, _) in pairs}
        else:
            return value, (kind, id(value))  # unknown: shared with nothing
        return self._remember(key, value)

    def _model(self, model: BaseModel) -> tuple[BaseModel, Hashable]:
        fields = model.__dict__
        shared = {name: self._share(item) for name, item in fields.items()}
        extra = model.__pydantic_extra__
        extra_shared = self._share(extra) if extra else (extra, None)
        key = (
            type(model),
            tuple(k for _, k in shared.values()),
            self._remember(frozenset(model.model_fields_set), None)[1],
            extra_shared[1],
            None if model.__pydantic_private__ is None else id(model),  # never shared
        )
        known = self._parts.get(key)
        if known is not None:
            return known
        fields.update((name, v) for name, (v, _) in shared.items())
        if extra:
            object.__setattr__(model, "__pydantic_extra__", extra_shared[0])
        return self._remember(key, model)

    def _remember(self, key: Hashable, value: Any) -> tuple[Any, Hashable]:
        known = self._parts.get(key)
        if known is not None:
            return known
        if len(self._parts) >= self.size:
            self._parts.clear()
        self._parts[key] = known = (value, key)
        return known


class AdmittedSpecs:
    """The admitted spec of each placement, one generation each (a new generation replaces
    the old one), its equal parts shared with other placements'. Thread-safe."""

    def __init__(self, size: int, parts: int = PARTS_REMEMBERED) -> None:
        self.size = size
        self._specs: dict[str, tuple[int, bool, WorkloadPlacementSpec]] = {}
        self._parts = SharedParts(parts)
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
        """Remember `spec` (admit's, this evaluation's own: its parts become shared ones)."""
        if key is None:
            return
        uid, generation, scoped = key
        with self._lock:
            spec = self._parts.share(spec)
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
            self._parts = SharedParts(self._parts.size)

    def __len__(self) -> int:
        return len(self._specs)
