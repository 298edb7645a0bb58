"""Every state the handoff can be left in when the operator stops between two writes, built by
hand while the operator is stopped; then the operator starts and must converge: the right
replica count, no duplicate Job, the count to restore never lost, an Event saying what it found.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from prometheus_client import Gauge

from placement.core.api import GROUP, PLURAL, VERSION, WorkloadPlacementSpec
from placement.core.jobs import job_manifest
from placement.core.window import current_or_next_window, job_name
from placement.localenv.operator_process import OperatorProcess
from placement.localenv.prometheus import LocalPrometheus
from tests.integration.harness import (
    HOLD,
    Placements,
    hold_by_hand,
    measured_deployment,
    operator_stopped,
    placement,
)
from tests.integration.wait import until


def _annotations(placements: Placements, name: str) -> dict[str, str]:
    deployment = placements.apps.read_namespaced_deployment(name, placements.namespace)
    return {k: v for k, v in (deployment.metadata.annotations or {}).items() if k.startswith(HOLD)}


def _minutes_ago(minutes: int) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)).isoformat()


def test_scaled_down_but_no_job_and_no_status(
    operator: OperatorProcess, placements: Placements, prometheus: LocalPrometheus,
    utilization: Gauge,
) -> None:  # fmt: skip
    measured_deployment(placements, prometheus, utilization, "scaled")
    with operator_stopped(operator):
        hold_by_hand(placements, "scaled", placement_name="scaled", original=4,
                     since=_minutes_ago(5))  # fmt: skip
        placements.apply(placement("scaled", placements.namespace, deployment="scaled"))

    found = placements.wait_for_event("scaled", "Recovered")
    assert "held at 0 replicas by this placement (4 to restore" in found.message
    assert "no Job yet" in found.message
    status = placements.wait_for_reason("scaled", "BatchSucceeded", timeout=90)
    assert status["originalReplicas"] == 4
    assert placements.replicas("scaled") == 0
    assert len(placements.jobs("scaled")) == 1
    assert _annotations(placements, "scaled")[f"{HOLD}original-replicas"] == "4"


def test_job_created_but_status_not_written_gives_no_second_job(
    operator: OperatorProcess, placements: Placements, prometheus: LocalPrometheus,
    utilization: Gauge,
) -> None:  # fmt: skip
    measured_deployment(placements, prometheus, utilization, "twice")
    manifest = placement("twice", placements.namespace, deployment="twice")
    spec = WorkloadPlacementSpec.model_validate(manifest["spec"])
    window = current_or_next_window(spec.batch.window, dt.datetime.now(dt.UTC))
    name = job_name("twice", window)
    with operator_stopped(operator):
        hold_by_hand(placements, "twice", placement_name="twice", original=4,
                     since=_minutes_ago(5))  # fmt: skip
        placements.batch.create_namespaced_job(
            placements.namespace,
            job_manifest(spec, placement="twice", job_name=name, window_label=window.label),
        )
        placements.apply(manifest)

    found = placements.wait_for_event("twice", "Recovered")
    assert f"found job {name}" in found.message
    placements.wait_for_reason("twice", "BatchSucceeded", timeout=90)
    assert [job.metadata.name for job in placements.jobs("twice")] == [name]
    assert placements.replicas("twice") == 0


def test_restore_landed_but_status_still_says_batch(
    operator: OperatorProcess, placements: Placements, prometheus: LocalPrometheus,
    utilization: Gauge,
) -> None:  # fmt: skip
    measured_deployment(placements, prometheus, utilization, "restored")
    with operator_stopped(operator):
        placements.apply(placement("restored", placements.namespace, deployment="restored",
                                   mode="Recommend"))  # fmt: skip
        placements.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, placements.namespace, PLURAL, "restored",
            {"status": {"phase": "Batch", "originalReplicas": 4, "observedGeneration": 1}},
        )  # fmt: skip

    status = placements.wait_for_reason("restored", "BatchRecommended")
    assert status.get("originalReplicas") is None
    assert status["phase"] == "Realtime"
    assert placements.replicas("restored") == 4
    assert not any(e.reason == "ManualOverride" for e in placements.events("restored"))


def test_job_that_failed_while_the_operator_was_down_brings_realtime_back(
    operator: OperatorProcess, placements: Placements, prometheus: LocalPrometheus,
    utilization: Gauge,
) -> None:  # fmt: skip
    measured_deployment(placements, prometheus, utilization, "failing")
    manifest = placement(
        "failing", placements.namespace, deployment="failing", retry_window="0s",
        pod_labels={"sim.placement.runplacement.io/outcome": "fail"},
    )  # fmt: skip
    placements.apply(manifest)
    placements.wait_for_event("failing", "MovedToBatch", timeout=90)
    with operator_stopped(operator):
        until(
            lambda: placements.jobs("failing"),
            lambda jobs: bool(jobs) and bool(jobs[0].status.failed),
            what="the Job failed while the operator is down",
        )
    placements.wait_for_event("failing", "FallbackRestored", timeout=90)
    assert placements.replicas("failing") == 4
    assert _annotations(placements, "failing") == {}


def test_a_restarted_operator_continues_without_repeating_itself(
    operator: OperatorProcess, placements: Placements, prometheus: LocalPrometheus,
    utilization: Gauge,
) -> None:  # fmt: skip
    measured_deployment(placements, prometheus, utilization, "steady")
    placements.apply(placement("steady", placements.namespace, deployment="steady"))
    placements.wait_for_reason("steady", "BatchSucceeded", timeout=90)
    before = placements.events("steady")
    with operator_stopped(operator):
        pass  # an upgrade: the old process stops, a new one starts
    time.sleep(5)  # several evaluations of the new process
    assert placements.status("steady")["phase"] == "Batch"
    assert placements.replicas("steady") == 0
    assert len(placements.jobs("steady")) == 1
    assert [(e.reason, e.message) for e in placements.events("steady")] == [
        (e.reason, e.message) for e in before
    ]


def test_scaled_up_by_hand_while_held_is_left_alone_until_the_spec_changes(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge,
    operator: OperatorProcess,
) -> None:  # fmt: skip
    measured_deployment(placements, prometheus, utilization, "manual")
    placements.apply(placement("manual", placements.namespace, deployment="manual"))
    placements.wait_for_event("manual", "MovedToBatch", timeout=90)
    # Someone scales it up by hand; our annotations are still there.
    placements.apps.patch_namespaced_deployment_scale(
        "manual", placements.namespace, {"spec": {"replicas": 6}}
    )
    event = placements.wait_for_event("manual", "ManualOverride")
    assert event.type == "Warning"
    assert "scaled to 6 replicas outside the operator" in event.message
    assert placements.status("manual")["phase"] == "Blocked"
    time.sleep(4)
    assert placements.replicas("manual") == 6  # not fought
    assert [e.reason for e in placements.events("manual")].count("ManualOverride") == 1

    # A spec change starts over from what runs now: 6 replicas is the new original.
    placements.custom.patch_namespaced_custom_object(
        GROUP, VERSION, placements.namespace, PLURAL, "manual",
        {"spec": {"costs": {"savingsMargin": 1}}},
    )  # fmt: skip
    until(
        lambda: [e.message for e in placements.events("manual") if e.reason == "ManualOverride"],
        lambda messages: any("starting over from the 6 replicas" in m for m in messages),
        what="ManualOverride cleared by the spec change",
    )
    until(
        lambda: [e.message for e in placements.events("manual") if e.reason == "MovedToBatch"],
        lambda messages: any("deployment/manual 6 -> 0" in m for m in messages),
        what="moved again, from 6 replicas",
    )
    # The Event is posted before the status patch of the same evaluation lands.
    until(
        lambda: placements.status("manual").get("originalReplicas"),
        lambda original: original == 6,
        what="originalReplicas 6 in status",
    )
    assert _annotations(placements, "manual")[f"{HOLD}original-replicas"] == "6"


@pytest.mark.usefixtures("operator")
def test_a_deleted_deployment_is_reported_and_the_placement_can_still_go(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    measured_deployment(placements, prometheus, utilization, "vanishing")
    placements.apply(placement("vanishing", placements.namespace, deployment="vanishing"))
    placements.wait_for_event("vanishing", "MovedToBatch", timeout=90)
    placements.apps.delete_namespaced_deployment("vanishing", placements.namespace)

    assert placements.wait_for_event("vanishing", "TargetMissing").type == "Warning"
    placements.delete("vanishing")
    until(lambda: placements.exists("vanishing"), lambda exists: not exists,
          what="placement deleted", timeout=30)  # fmt: skip


@pytest.mark.usefixtures("operator")
def test_deleting_the_namespace_of_a_held_deployment_does_not_hang(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    measured_deployment(placements, prometheus, utilization, "doomed")
    placements.apply(placement("doomed", placements.namespace, deployment="doomed"))
    placements.wait_for_event("doomed", "MovedToBatch", timeout=90)

    started = time.monotonic()
    placements.core.delete_namespace(placements.namespace)
    until(
        lambda: [ns.metadata.name for ns in placements.core.list_namespace().items],
        lambda names: placements.namespace not in names,
        what="namespace gone",
        timeout=90,
    )
    print(f"namespace with a held Deployment deleted in {time.monotonic() - started:.1f}s")


def test_a_forged_status_count_is_not_what_is_restored(
    operator: OperatorProcess, placements: Placements, prometheus: LocalPrometheus,
    utilization: Gauge,
) -> None:  # fmt: skip
    measured_deployment(placements, prometheus, utilization, "forged")
    placements.apply(placement("forged", placements.namespace, deployment="forged"))
    placements.wait_for_event("forged", "MovedToBatch", timeout=90)
    assert _annotations(placements, "forged")[f"{HOLD}original-replicas"] == "4"
    with operator_stopped(operator):
        # Whoever may patch the status subresource writes 60, then asks for the restore.
        placements.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, placements.namespace, PLURAL, "forged",
            {"status": {"originalReplicas": 60}},
        )  # fmt: skip
        placements.custom.patch_namespaced_custom_object(
            GROUP, VERSION, placements.namespace, PLURAL, "forged", {"spec": {"mode": "Recommend"}}
        )  # fmt: skip

    event = placements.wait_for_event("forged", "Restored")
    assert "deployment/forged 0 -> 4" in event.message, event.message
    assert placements.replicas("forged") == 4
    assert placements.status("forged").get("originalReplicas") is None
    assert _annotations(placements, "forged") == {}


def test_deleting_a_placement_after_a_manual_override_keeps_the_persons_choice(
    operator: OperatorProcess, placements: Placements, prometheus: LocalPrometheus,
    utilization: Gauge,
) -> None:  # fmt: skip
    measured_deployment(placements, prometheus, utilization, "chosen")
    placements.apply(placement("chosen", placements.namespace, deployment="chosen"))
    placements.wait_for_event("chosen", "MovedToBatch", timeout=90)
    placements.apps.patch_namespaced_deployment_scale(
        "chosen", placements.namespace, {"spec": {"replicas": 7}}
    )
    placements.wait_for_event("chosen", "ManualOverride")

    placements.delete("chosen")
    until(lambda: placements.exists("chosen"), lambda exists: not exists,
          what="placement deleted", timeout=30)  # fmt: skip
    assert placements.replicas("chosen") == 7  # not 4: the person's choice stands
    assert _annotations(placements, "chosen") == {}  # the hold is dropped
    messages = [e.message for e in placements.events("chosen") if e.reason == "ManualOverride"]
    assert any("keeps the 7 replicas set outside the operator (not restored to 4)" in m
               for m in messages), messages  # fmt: skip
    assert not any(e.reason == "Restored" for e in placements.events("chosen"))
