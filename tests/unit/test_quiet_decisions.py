"""A steady re-evaluation over the same stored status writes nothing and builds nothing
(status.QUIET); whatever would change the status is still written."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from placement.core import status as status_module
from placement.core.api import WorkloadPlacementStatus
from placement.core.policy import Decision, Observed, decide
from placement.core.reasons import Reason
from placement.core.status import QUIET, build_status, state_from_status, status_update
from tests.unit.factories import EXAMPLE_UTILIZATION, make_spec

NOON = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
STORED = ("uid-1", "41")  # the placement's uid and the resourceVersion of its stored status


def _deciding(
    now: dt.datetime, utilization: float, previous: WorkloadPlacementStatus | None
) -> Decision:
    """A placement waiting for its window (its wait and message move with the clock)."""
    spec = make_spec(**{"latency.acceptableDelay": "8h"})
    state = state_from_status("p", previous)
    decision = decide(spec, Observed(replicas=4, utilization=utilization), state, now=now)
    assert decision.reason is Reason.DELAY_NOT_TOLERATED
    return decision


# What the first evaluation wrote: the state the later ones start from.
FIRST = build_status(_deciding(NOON, EXAMPLE_UTILIZATION, None), None, generation=1)


def _waiting(now: dt.datetime, utilization: float = EXAMPLE_UTILIZATION) -> Decision:
    return _deciding(now, utilization, FIRST)


def _stored_after(decision: Decision) -> dict[str, Any]:
    built = build_status(decision, FIRST, generation=1)
    return built.model_dump(by_alias=True, mode="json", exclude_none=True)


def _update(
    current: dict[str, Any], decision: Decision, stored: tuple[str, str] | None = STORED
) -> Any:
    return status_update(
        current, decision, previous=FIRST, generation=1, now=decision.evaluated_at, stored=stored
    )


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[Decision]:
    built: list[Decision] = []
    original = status_module.build_status

    def counting(decision: Decision, *args: Any, **kwargs: Any) -> Any:
        built.append(decision)
        return original(decision, *args, **kwargs)

    monkeypatch.setattr(status_module, "build_status", counting)
    return built


def test_the_clock_alone_builds_the_status_once(builds: list[Decision]) -> None:
    first = _waiting(NOON)
    current = _stored_after(first)
    # The first look compares and finds nothing to write; the next ones, minutes later with
    # another wait and message, are not built at all.
    for minutes in (0, 5, 10, 15):
        decision = _waiting(NOON + dt.timedelta(minutes=minutes))
        assert _update(current, decision) is None
    assert len(builds) == 1


def test_a_new_measurement_is_written_though_the_last_one_was_quiet(builds: list[Decision]) -> None:
    current = _stored_after(_waiting(NOON))
    assert _update(current, _waiting(NOON + dt.timedelta(minutes=5))) is None
    patch = _update(current, _waiting(NOON + dt.timedelta(minutes=10), utilization=0.2))
    assert patch is not None and patch["decision"]["inputs"]["utilization"] == 0.2


def test_a_status_changed_by_someone_else_is_compared_again(builds: list[Decision]) -> None:
    current = _stored_after(_waiting(NOON))
    assert _update(current, _waiting(NOON + dt.timedelta(minutes=5))) is None
    # Someone edits the status (kubectl): its resourceVersion moves, and the next steady
    # decision writes the status back.
    edited = {**current, "phase": "Batch"}
    assert current["phase"] != "Batch"
    patch = _update(edited, _waiting(NOON + dt.timedelta(minutes=10)), stored=("uid-1", "42"))
    assert patch is not None and patch["phase"] == current["phase"]


def test_without_a_resource_version_nothing_is_remembered(builds: list[Decision]) -> None:
    current = _stored_after(_waiting(NOON))
    for minutes in (5, 10):
        assert _update(current, _waiting(NOON + dt.timedelta(minutes=minutes)), stored=None) is None
    assert len(builds) == 2 and len(QUIET) == 0
