"""The window's Job: the user's template, plus what ties it to its placement and queue."""

from __future__ import annotations

import copy

from placement.core.api import WorkloadPlacementSpec
from placement.core.jobs import job_manifest
from tests.unit.factories import example_manifest


def _spec(**batch: object) -> WorkloadPlacementSpec:
    manifest = copy.deepcopy(example_manifest())
    manifest["spec"]["batch"].update(batch)
    return WorkloadPlacementSpec.model_validate(manifest["spec"])


def test_the_job_keeps_the_template_and_is_labelled_for_its_placement_and_window() -> None:
    template = copy.deepcopy(example_manifest()["spec"]["batch"]["jobTemplate"])
    template["metadata"] = {"labels": {"team": "ml"}, "annotations": {"runbook": "wiki/x"}}
    template["spec"]["backoffLimit"] = 2  # a JobSpec field the model does not name
    job = job_manifest(
        _spec(jobTemplate=template),
        placement="summarizer",
        job_name="summarizer-20261124-0100",
        window_label="20261124-0100",
    )

    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert job["metadata"]["name"] == "summarizer-20261124-0100"
    assert job["metadata"]["labels"] == {
        "team": "ml",
        "placement.runplacement.io/placement": "summarizer",
        "placement.runplacement.io/window": "20261124-0100",
    }
    assert job["metadata"]["annotations"] == {"runbook": "wiki/x"}
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["parallelism"] == 8
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "example/batch:1.0"


def test_a_queue_name_adds_kueues_label_and_the_job_waits_suspended_for_admission() -> None:
    job = job_manifest(
        _spec(queueName="gpu-batch"),
        placement="summarizer",
        job_name="summarizer-20261124-0100",
        window_label="20261124-0100",
    )
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-batch"
    assert job["spec"]["suspend"] is True


def test_without_a_queue_name_there_is_no_kueue_label() -> None:
    job = job_manifest(
        _spec(),
        placement="summarizer",
        job_name="summarizer-20261124-0100",
        window_label="20261124-0100",
    )
    assert "kueue.x-k8s.io/queue-name" not in job["metadata"]["labels"]
    assert "suspend" not in job["spec"]
    assert "annotations" not in job["metadata"]
