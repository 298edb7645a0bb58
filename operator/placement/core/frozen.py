"""`replace` for the core's frozen dataclasses, at a tenth of `dataclasses.replace`'s cost.

`dataclasses.replace` calls `__init__` with every field by name; an evaluation makes about a
dozen copies of `State`, `Decision` and the policy's context (twenty fields and more), which
was a twentieth of its CPU (bench/evaluate.py). A class whose copy `__init__` could change
(a `__post_init__`, slots, a field left out of `__init__`) still goes through
`dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

_PLAIN: dict[type, frozenset[str]] = {}  # class -> its field names, when copying is plain


def replace(obj: T, /, **changes: Any) -> T:
    """`dataclasses.replace(obj, **changes)`: a new instance, `obj`'s fields with `changes`."""
    cls = type(obj)
    names = _PLAIN.get(cls)
    if names is None:
        names = _plain_fields(cls)
        if names is None:
            return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    if not names.issuperset(changes):
        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]  # its error
    copy = object.__new__(cls)
    fields = copy.__dict__
    fields.update(obj.__dict__)
    fields.update(changes)
    return copy


def _plain_fields(cls: type) -> frozenset[str] | None:
    """The field names when a copy of the instance dict is what `__init__` would build."""
    if not dataclasses.is_dataclass(cls) or hasattr(cls, "__post_init__"):
        return None
    if any("__slots__" in vars(klass) for klass in cls.__mro__[:-1]):
        return None
    fields = dataclasses.fields(cls)
    declared = getattr(cls, "__dataclass_fields__", {})  # with InitVar and ClassVar ones
    if len(declared) != len(fields) or any(not f.init for f in fields):
        return None
    names = frozenset(f.name for f in fields)
    _PLAIN[cls] = names
    return names
