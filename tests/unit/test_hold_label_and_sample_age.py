"""Held Deployments carry the hold label with their annotations and lose both together, so one
label-selected list finds them; a reading's age comes from the sample time Prometheus
stamped, so the freshness check in policy fires on a stale answer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from unittest.mock import MagicMock

from kubernetes import client

from placement.adapters.kube import KubeAdapter
from placement.adapters.prometheus import judge
from placement.core.labels import PLACEMENT_LABEL
from placement.core.observation import DeploymentState, Observation, Outcome, Reading
from placement.core.reconcile import Placement, reconcile
from tests.unit.factories import example_manifest, make_spec

NOW = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)


def _adapter() -> tuple[KubeAdapter, MagicMock]:
    kube = KubeAdapter(client.ApiClient())
    kube.apps = MagicMock()
    return kube, kube.apps


def _patched_metadata(apps: MagicMock) -> dict[str, Any]:
    body: dict[str, Any] = apps.patch_namespaced_deployment.call_args.args[2]
    return dict(body["metadata"])


def test_the_hold_label_is_written_and_removed_with_the_annotations() -> None:
    kube, apps = _adapter()
    kube.scale_for_batch(
        "ml", "web", replicas=0, original=4, placement="nightly", since=NOW,
        baseline_utilization=0.4, resource_version="3",
    )  # fmt: skip
    held = _patched_metadata(apps)
    assert held["labels"] == {PLACEMENT_LABEL: "nightly"}
    assert held["annotations"][f"{PLACEMENT_LABEL}"] == "nightly"
    kube.restore("ml", "web", replicas=4)
    assert _patched_metadata(apps)["labels"] == {PLACEMENT_LABEL: None}
    kube.forget("ml", "web")
    assert _patched_metadata(apps)["labels"] == {PLACEMENT_LABEL: None}


def test_held_deployments_are_found_with_one_label_selected_list() -> None:
    kube, apps = _adapter()
    apps.list_namespaced_deployment.return_value = client.V1DeploymentList(
        items=[
            client.V1Deployment(
                metadata=client.V1ObjectMeta(
                    name="web",
                    resource_version="9",
                    annotations={
                        "placement.runplacement.io/placement": "nightly",
                        "placement.runplacement.io/original-replicas": "4",
                    },
                ),
                spec=client.V1DeploymentSpec(
                    replicas=0,
                    selector=client.V1LabelSelector(),
                    template=client.V1PodTemplateSpec(),
                ),
            )
        ]
    )
    claimed = kube.claimed_by("ml", "nightly")
    assert [(d.name, d.replicas, d.original_replicas) for d in claimed] == [("web", 0, 4)]
    assert apps.list_namespaced_deployment.call_args.kwargs["label_selector"] == (
        f"{PLACEMENT_LABEL}=nightly"
    )
    apps.read_namespaced_deployment.assert_not_called()  # no read per Deployment


def test_a_reading_carries_the_time_prometheus_stamped_on_its_sample() -> None:
    stamped = NOW - dt.timedelta(minutes=90)
    series: list[Mapping[str, object]] = [{"metric": {}, "value": [stamped.timestamp(), "0.45"]}]
    reading = judge(
        "utilization", "x", dt.timedelta(hours=1), 1.0,
        current=lambda: series, over_lookback=lambda: series,
    )  # fmt: skip
    assert reading.outcome is Outcome.OK and reading.sampled_at == stamped
    assert reading.age(NOW) == dt.timedelta(minutes=90)
    assert reading.age(stamped - dt.timedelta(seconds=5)) == dt.timedelta(0)  # clock skew


def test_a_sample_older_than_the_lookback_makes_metrics_unavailable() -> None:
    spec = make_spec()  # metrics.lookback 1h
    manifest = example_manifest()
    placement = Placement("summarizer", "ml", 1, manifest["spec"], {})
    deployment = DeploymentState("summarizer", 4, None, None, resource_version="1")

    def decided(age: dt.timedelta) -> tuple[str | None, Any]:
        reading = Reading("utilization", "x", Outcome.OK, 0.45, sampled_at=NOW - age)
        plan = reconcile(placement, spec, Observation(deployment, utilization=reading), NOW)
        decision = plan.report.decision
        assert decision is not None
        return str(decision.reason), decision.inputs.metrics_age_seconds

    assert decided(dt.timedelta(seconds=30)) == ("MovedToBatch", 30.0)
    reason, age = decided(dt.timedelta(minutes=75))
    assert (reason, age) == ("MetricsUnavailable", 4500.0)
