"""The handler's writes with a fake Kubernetes (the real one is in tests/integration): the
hold is taken only on the Deployment as read, restores come from the hold annotation and are
bounded by it, a deletion after a manual override keeps the replicas, and a refused status
write is reported instead of raised."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import replace
from typing import Any

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from placement.adapters.kube import DeploymentState, HoldConflict
from placement.adapters.telemetry import Telemetry
from placement.core import executor, reconcile
from placement.core.observation import Observation
from placement.core.reconcile import TakeHold
from placement.runtime import handlers
from tests.unit.factories import example_manifest

NOW = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)
LOG = logging.getLogger("test")


class FakeKube:
    """Deployments by name, with resourceVersions the way the API server checks them."""

    def __init__(self, *deployments: DeploymentState) -> None:
        self.deployments = {d.name: d for d in deployments}
        self.writes: list[tuple[str, str, int | None]] = []
        self.status_error: Exception | None = None
        self.statuses: list[dict[str, Any]] = []

    def read_deployment(self, namespace: str, name: str) -> DeploymentState | None:
        return self.deployments.get(name)

    def claimed_by(self, namespace: str, placement: str) -> list[DeploymentState]:
        return [d for d in self.deployments.values() if d.managed_by == placement]

    def _bump(self, name: str, **changes: Any) -> None:
        current = self.deployments[name]
        version = str(int(current.resource_version or "0") + 1)
        self.deployments[name] = replace(current, resource_version=version, **changes)

    def scale_for_batch(self, namespace: str, name: str, **kwargs: Any) -> None:
        version = kwargs["resource_version"]
        if version is not None and version != self.deployments[name].resource_version:
            raise HoldConflict(name)
        self.writes.append(("scale_for_batch", name, kwargs["replicas"]))
        self._bump(
            name,
            replicas=kwargs["replicas"],
            original_replicas=kwargs["original"],
            managed_by=kwargs["placement"],
        )

    def restore(self, namespace: str, name: str, *, replicas: int) -> None:
        self.writes.append(("restore", name, replicas))
        self._bump(name, replicas=replicas, original_replicas=None, managed_by=None)

    def forget(self, namespace: str, name: str) -> None:
        self.writes.append(("forget", name, None))
        self._bump(name, original_replicas=None, managed_by=None)

    def patch_placement_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        if self.status_error is not None:
            raise self.status_error
        json.dumps(status, allow_nan=False)  # what the API server's JSON parser insists on
        self.statuses.append(status)


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    posted: list[tuple[str, str, str]] = []
    monkeypatch.setattr(
        kopf,
        "event",
        lambda body, *, type, reason, message: posted.append((type, reason, message)),
    )
    return posted


def _body(status: dict[str, Any] | None = None, generation: int = 1) -> kopf.Body:
    manifest = example_manifest()
    manifest["metadata"].update(uid="u-1", generation=generation)
    if status is not None:
        manifest["status"] = status
    return kopf.Body(manifest)


def _deployment(**changes: Any) -> DeploymentState:
    base = DeploymentState(
        name="summarizer", replicas=4, original_replicas=None,
        managed_by=None, resource_version="1",
    )  # fmt: skip
    return replace(base, **changes)


def _hold(read: DeploymentState) -> TakeHold:
    return TakeHold(read, replicas=0, original=4, since=NOW, baseline_utilization=0.2)


def test_the_second_placement_to_write_learns_who_holds_it() -> None:
    read_by_both = _deployment()
    kube = FakeKube(read_by_both)
    first = executor.take_hold(kube, "ml", "first", _hold(read_by_both))
    second = executor.take_hold(kube, "ml", "second", _hold(read_by_both))
    assert (first, second) == (None, "first")
    assert kube.writes == [("scale_for_batch", "summarizer", 0)]


def test_a_conflict_from_an_unrelated_change_is_retried_on_a_fresh_read() -> None:
    read = _deployment()
    kube = FakeKube(replace(read, resource_version="7"))  # e.g. its status moved on
    assert executor.take_hold(kube, "ml", "first", _hold(read)) is None
    assert kube.deployments["summarizer"].managed_by == "first"


def test_restores_never_exceed_the_recorded_count() -> None:
    kube = FakeKube(_deployment(replicas=0, original_replicas=4, managed_by="summarizer"))
    placement = handlers.placement_of(_body())
    steps = reconcile._restore_recorded(placement, kube.deployments["summarizer"], 60)
    executor.release(
        tuple(steps), kube, handlers.KopfEffects(_body(), LOG, Telemetry()), namespace="ml"
    )
    assert kube.writes == [("restore", "summarizer", 4)]


def test_a_forged_status_count_is_corrected_from_the_annotation() -> None:
    from placement.core.api import WorkloadPlacementSpec
    from placement.core.policy import State

    spec = WorkloadPlacementSpec.model_validate(example_manifest()["spec"])
    held = _deployment(replicas=0, original_replicas=4, managed_by="summarizer")
    forged = State(name="summarizer", original_replicas=60)
    settled, _ = reconcile._settle(
        handlers.placement_of(_body()),
        spec,
        forged,
        Observation(deployment=held, claimed=(held,)),
        NOW,
    )
    assert isinstance(settled, State) and settled.original_replicas == 4


def test_delete_after_a_manual_override_drops_the_hold_and_keeps_the_replicas(
    events: list[tuple[str, str, str]],
) -> None:
    overridden = {
        "phase": "Blocked",
        "observedGeneration": 1,
        "originalReplicas": 4,
        "conditions": [{"type": "Ready", "status": "False", "reason": "ManualOverride"}],
    }
    kube = FakeKube(_deployment(replicas=7, original_replicas=4, managed_by="summarizer"))
    handlers.restore_for_deletion(_body(overridden), kube, LOG)
    assert kube.writes == [("forget", "summarizer", None)]
    assert "keeps the 7 replicas set outside the operator (not restored to 4)" in events[0][2]


def test_delete_restores_from_the_annotation_never_from_status(
    events: list[tuple[str, str, str]],
) -> None:
    kube = FakeKube(_deployment(replicas=0, original_replicas=4, managed_by="summarizer"))
    status = {"phase": "Batch", "observedGeneration": 1, "originalReplicas": 60}
    handlers.restore_for_deletion(_body(status), kube, LOG)
    assert kube.writes == [("restore", "summarizer", 4)]
    # Annotations stripped: status alone restores nothing.
    stripped = FakeKube(_deployment(replicas=0))
    handlers.restore_for_deletion(_body(status), stripped, LOG)
    assert stripped.writes == []


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ApiException(status=422, reason="Unprocessable Entity"), "422"),
        (None, "unserializable"),  # a NaN, which JSON cannot carry
    ],
)
def test_a_refused_status_write_is_reported_once_and_not_raised(
    events: list[tuple[str, str, str]], error: Exception | None, code: str
) -> None:
    kube = FakeKube()
    kube.status_error = error
    telemetry = Telemetry()
    memo = kopf.Memo()
    for _ in range(3):
        patch = kopf.Patch()
        patch.status["savingsPerDay"] = float("nan")
        handlers.write_status(_body(), patch, kube, memo, telemetry)
        assert "status" not in patch  # never left for kopf to apply
    assert [reason for _, reason, _ in events] == ["StatusWriteFailed"]
    assert events[0][0] == "Warning" and f"({code}:" in events[0][2]
    value = telemetry.registry.get_sample_value(
        "placement_status_write_failures_total", {"code": code}
    )
    assert value == 3


def test_transient_status_write_errors_raise_for_kopf_to_retry(
    events: list[tuple[str, str, str]],
) -> None:
    kube = FakeKube()
    kube.status_error = ApiException(status=503)
    patch = kopf.Patch()
    patch.status["phase"] = "Batch"
    with pytest.raises(ApiException):
        handlers.write_status(_body(), patch, kube, kopf.Memo(), Telemetry())
    assert events == []


def test_a_status_write_that_finds_no_placement_says_it_is_gone_without_a_warning(
    events: list[tuple[str, str, str]],
) -> None:
    # Deleted without the watch seeing it: no StatusWriteFailed Event on an object that is
    # not there, and the caller stops evaluating it (test_scheduler.py).
    kube = FakeKube()
    kube.status_error = ApiException(status=404, reason="Not Found")
    patch = kopf.Patch()
    patch.status["phase"] = "Batch"
    with pytest.raises(handlers.PlacementGone):
        handlers.write_status(_body(), patch, kube, kopf.Memo(), Telemetry())
    assert events == []
