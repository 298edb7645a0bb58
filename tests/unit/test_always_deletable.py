"""Deleting a placement (issue 15, deliverables 3 and 4): a hand-scale an evaluation has not
noticed yet is kept, and a placement is always deletable, also when giving its Deployment
back is refused for good: a webhook or policy that now refuses the scale, or rights the
operator lost. kopf retries a raising delete handler forever, so the finalizer would stay and
the namespace would stay Terminating.

A refusal no retry will change (400/403/404/422) is reported as a Warning Event naming
the count to restore by hand, and the placement goes; transient errors (5xx, timeouts) still
raise for kopf to retry."""

from __future__ import annotations

import logging

import pytest
from kubernetes.client.exceptions import ApiException

from placement.core.cluster import Refused
from placement.runtime import handlers
from tests.unit.test_handler_holds import FakeKube, _body, _deployment, events  # noqa: F401

LOG = logging.getLogger("test")


class RefusingKube(FakeKube):
    """Every Deployment write refused: for good (the adapter's Refused, as a policy's 403 or
    422 becomes) or for now (a 5xx ApiException)."""

    def __init__(self, status: int) -> None:
        super().__init__(_deployment(replicas=0, original_replicas=4, managed_by="summarizer"))
        self.status = status

    def _refuse(self) -> None:
        if self.status >= 500:
            raise ApiException(status=self.status, reason="unavailable")
        raise Refused(f"{self.status}: refused by a policy")

    def restore(self, namespace: str, name: str, *, replicas: int) -> None:
        self._refuse()

    def forget(self, namespace: str, name: str) -> None:
        self._refuse()


@pytest.mark.parametrize("status", [403, 422])
def test_a_restore_refused_for_good_lets_the_placement_go_and_says_what_to_do(
    events: list[tuple[str, str, str]],  # noqa: F811
    status: int,
) -> None:
    handlers.restore_for_deletion(_body({"phase": "Batch"}), RefusingKube(status), LOG)
    warnings = [message for kind, _, message in events if kind == "Warning"]
    assert any("deployment/summarizer" in m and "4" in m for m in warnings), events


def test_a_transient_failure_still_raises_for_kopf_to_retry(
    events: list[tuple[str, str, str]],  # noqa: F811
) -> None:
    with pytest.raises(ApiException):
        handlers.restore_for_deletion(_body({"phase": "Batch"}), RefusingKube(503), LOG)


def test_delete_right_after_a_hand_scale_keeps_the_persons_choice(
    events: list[tuple[str, str, str]],  # noqa: F811
) -> None:
    """Scaled by hand 0 -> 7 and deleted before an evaluation noticed (status still says
    Batch, no ManualOverride yet): the person's 7 stand, the hold goes, nothing restores 4."""
    kube = FakeKube(_deployment(replicas=7, original_replicas=4, managed_by="summarizer"))
    holding = {"phase": "Batch", "observedGeneration": 1, "originalReplicas": 4}
    handlers.restore_for_deletion(_body(holding), kube, LOG)
    assert kube.writes == [("forget", "summarizer", None)]
    assert kube.deployments["summarizer"].replicas == 7
    assert not any(reason == "Restored" for _, reason, _ in events)


def test_delete_while_held_at_the_warm_count_restores_the_recorded_one(
    events: list[tuple[str, str, str]],  # noqa: F811
) -> None:
    kube = FakeKube(_deployment(replicas=0, original_replicas=4, managed_by="summarizer"))
    holding = {"phase": "Batch", "observedGeneration": 1, "originalReplicas": 4}
    handlers.restore_for_deletion(_body(holding), kube, LOG)
    assert kube.writes == [("restore", "summarizer", 4)]
