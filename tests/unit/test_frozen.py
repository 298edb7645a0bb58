"""The core's cheap `replace`: the same copies as dataclasses.replace, its errors too."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from placement.core.frozen import replace
from placement.core.policy import State


@dataclass(frozen=True)
class _Checked:
    value: int
    doubled: int = field(default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "doubled", self.value * 2)


@dataclass(frozen=True, slots=True)
class _Slotted:
    value: int
    other: str = "x"


def test_a_copy_is_the_one_dataclasses_replace_makes() -> None:
    state = State(name="p", missed_windows=2, runs=())
    copy = replace(state, missed_windows=3, current_job="p-20261122-0100")
    assert copy == dataclasses.replace(state, missed_windows=3, current_job="p-20261122-0100")
    assert hash(copy) == hash(
        dataclasses.replace(state, missed_windows=3, current_job="p-20261122-0100")
    )
    assert state.missed_windows == 2  # the original is left as it was
    with pytest.raises(dataclasses.FrozenInstanceError):
        copy.missed_windows = 4  # type: ignore[misc]


def test_classes_whose_init_does_more_go_through_dataclasses_replace() -> None:
    assert replace(_Checked(1), value=5).doubled == 10
    assert replace(_Slotted(1), value=5) == _Slotted(5)


def test_an_unknown_field_is_refused_as_by_dataclasses_replace() -> None:
    with pytest.raises(TypeError, match="bogus"):
        replace(State(name="p"), bogus=1)
