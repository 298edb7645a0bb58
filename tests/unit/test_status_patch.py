"""The status write: nothing when nothing changed, and deletions that a merge patch needs."""

from __future__ import annotations

from typing import Any

from placement.api import WorkloadPlacementStatus
from placement.status import status_patch


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
