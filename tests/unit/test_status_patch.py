"""The status write: nothing when nothing changed, and deletions that a merge patch needs."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from placement.core.api import WorkloadPlacementStatus
from placement.core.policy import Observed, decide
from placement.core.reasons import Reason
from placement.core.status import build_status, state_from_status, status_patch
from tests.unit.factories import EXAMPLE_UTILIZATION, make_spec


def _status(**fields: Any) -> WorkloadPlacementStatus:
    return WorkloadPlacementStatus.model_validate(fields)


def _stored(status: WorkloadPlacementStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, mode="json", exclude_none=True)


def test_a_new_evaluation_time_alone_writes_nothing() -> None:
    before = _status(
        phase="Realtime",
        decision={
            "action": "Stay",
            "reason": "StayRealtime",
            "message": "m",
            "evaluatedAt": "2026-11-24T10:00:00Z",
        },
    )
    after = _status(
        phase="Realtime",
        decision={
            "action": "Stay",
            "reason": "StayRealtime",
            "message": "m",
            "evaluatedAt": "2026-11-24T10:05:00Z",
        },
    )
    assert status_patch(_stored(before), after) is None


def test_restoring_deletes_original_replicas_and_the_current_job() -> None:
    holding = _status(
        phase="Batch",
        originalReplicas=4,
        batch={"currentJob": "enrich-20261124-0100", "missedWindows": 0},
    )
    restored = _status(phase="Realtime", batch={"missedWindows": 0})
    patch = status_patch(_stored(holding), restored)
    assert patch is not None
    assert patch["originalReplicas"] is None
    assert patch["batch"]["currentJob"] is None
    assert patch["phase"] == "Realtime"


def test_kopf_bookkeeping_is_neither_compared_nor_deleted() -> None:
    status = _status(phase="Realtime")
    stored = {**_stored(status), "kopf": {"progress": {}}}
    assert status_patch(stored, status) is None


def test_a_first_status_is_written_whole() -> None:
    patch = status_patch({}, _status(phase="Observing"))
    assert patch is not None and patch["phase"] == "Observing"


def _waiting_status(
    now: dt.datetime,
    utilization: float = EXAMPLE_UTILIZATION,
    previous: WorkloadPlacementStatus | None = None,
) -> WorkloadPlacementStatus:
    """The status of a placement waiting for its window to be close enough (8h delay)."""
    spec = make_spec(**{"latency.acceptableDelay": "8h"})
    state = state_from_status("p", previous)
    decision = decide(spec, Observed(replicas=4, utilization=utilization), state, now=now)
    assert decision.reason is Reason.DELAY_NOT_TOLERATED
    return build_status(decision, previous, generation=1)


def test_a_waiting_placement_is_not_rewritten_as_the_clock_moves() -> None:
    # The wait until the window ends shrinks every evaluation ("waits 13h", then "waits
    # 12h55m"): the clock alone is no reason to write.
    noon = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
    before = _waiting_status(noon)
    after = _waiting_status(noon + dt.timedelta(minutes=5), previous=before)
    assert before.decision is not None and after.decision is not None
    assert before.decision.message != after.decision.message
    assert status_patch(_stored(before), after) is None


def test_a_new_measurement_is_written_with_the_current_wait() -> None:
    noon = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
    before = _waiting_status(noon)
    later = _waiting_status(noon + dt.timedelta(minutes=5), utilization=0.2, previous=before)
    patch = status_patch(_stored(before), later)
    assert patch is not None
    assert patch["decision"]["inputs"]["utilization"] == 0.2
    assert patch["decision"]["inputs"]["waitHours"] == pytest.approx(16.9167, abs=1e-3)
    assert "waits 16h55m" in patch["decision"]["message"]


def test_only_clock_figures_and_durations_in_messages_go_unwritten() -> None:
    ready = {"type": "Ready", "status": "True", "reason": "Evaluated", "message": "waits 7h5m"}
    before = _status(
        phase="Batch",
        decision={
            "action": "Wait",
            "reason": "DelayNotTolerated",
            "message": "waits 7h5m for the window",
            "evaluatedAt": "2026-11-24T10:00:00Z",
            "inputs": {"waitHours": 7.08, "metricsAgeSeconds": 3.0, "utilization": 0.3},
        },
        conditions=[{**ready, "lastTransitionTime": "2026-11-24T09:00:00Z"}],
    )
    stored = _stored(before)

    def changed(path: tuple[str | int, ...], value: Any) -> WorkloadPlacementStatus:
        copy = _stored(before)
        place: Any = copy
        for key in path[:-1]:
            place = place[key]
        if value is None:
            del place[path[-1]]
        else:
            place[path[-1]] = value
        return _status(**copy)

    unwritten = [
        (("decision", "message"), "waits 6h55m for the window"),
        (("decision", "evaluatedAt"), "2026-11-24T10:05:00Z"),
        (("decision", "inputs", "waitHours"), 6.9),
        (("decision", "inputs", "metricsAgeSeconds"), None),
        (("conditions", 0, "message"), "waits 45m"),
    ]
    written = [
        (("decision", "message"), "waits 6h55m for the next window"),
        (("decision", "inputs", "utilization"), 0.31),
        (("decision", "inputs", "replicas"), 4),
        (("decision", "action"), "Stay"),
        (("conditions", 0, "message"), "waits 45m, then stays"),
        (("conditions", 0, "status"), "False"),
        (("conditions", 0, "message"), None),
        (("phase",), "Realtime"),
    ]
    for path, value in unwritten:
        assert status_patch(stored, changed(path, value)) is None, path
    for path, value in written:
        assert status_patch(stored, changed(path, value)) is not None, (path, value)


def test_a_history_that_grows_by_the_hour_alone_is_not_rewritten() -> None:
    """The planned hold's forecast basis names the history's extent, which the clock alone
    grows: after each hour, 10,000 placements used to write hundreds of statuses a cycle."""
    hold = {
        "from": "2026-12-01T05:00:00Z",
        "until": "2026-12-02T05:00:00Z",
        "hours": 24.0,
        "forecastWorkReplicaHours": 14.5,
        "forecastBatchPodHours": 2.54,
        "windowCapacityPodHours": 12.8,
        "forecast": "lookback average: history 2h < 1d",
    }
    before = _status(phase="Realtime", batch={"missedWindows": 0, "plannedHold": hold})
    stored = _stored(before)

    def with_hold(**changes: Any) -> WorkloadPlacementStatus:
        return _status(
            phase="Realtime", batch={"missedWindows": 0, "plannedHold": {**hold, **changes}}
        )

    assert status_patch(stored, with_hold(forecast="lookback average: history 3h < 1d")) is None
    assert (
        status_patch(stored, with_hold(forecast="lookback average: history 2h of 3h < 1d")) is None
    )
    # A new forecast, a new plan or a new way of forecasting is news.
    assert status_patch(stored, with_hold(forecastWorkReplicaHours=15.1)) is not None
    assert status_patch(stored, with_hold(until="2026-12-02T04:00:00Z")) is not None
    assert status_patch(stored, with_hold(forecast="hour-of-day quantiles of 14d")) is not None
    assert (
        status_patch(
            stored, _status(phase="Realtime", batch={"missedWindows": 1, "plannedHold": hold})
        )
        is not None
    )
    assert status_patch(stored, _status(phase="Realtime", batch={"missedWindows": 0})) is not None
