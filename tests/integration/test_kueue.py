"""The real Kueue against the local cluster: a Job sent to a LocalQueue is created suspended
by Kueue's webhook and unsuspended once its ClusterQueue admits it; with no quota it stays
suspended, and its Workload says why.

These are the engine's own guarantees that the batch mode's queue support builds on; the
operator is not involved here."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from placement.localenv.engines import KUEUE_QUEUE_LABEL, LocalKueue
from tests.integration.harness import IMAGE, Placements
from tests.integration.wait import until


def queued_job(name: str, queue: str) -> client.V1Job:
    """A Job as a user writes it: not suspended, only labelled with its queue."""
    resources = client.V1ResourceRequirements(requests={"cpu": "1", "memory": "1Gi"})
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name, labels={KUEUE_QUEUE_LABEL: queue}),
        spec=client.V1JobSpec(
            parallelism=2,
            completions=2,
            backoff_limit=0,
            template=client.V1PodTemplateSpec(
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    containers=[client.V1Container(name="batch", image=IMAGE, resources=resources)],
                )
            ),
        ),
    )


@pytest.fixture
def queue(kueue: LocalKueue, placements: Placements) -> Iterator[Any]:
    """A LocalQueue "batch" in the test's namespace on a ClusterQueue of its own, whose
    CPU quota the test chooses."""
    names: list[str] = []

    def make(cpu: str) -> str:
        cluster_queue = f"{placements.namespace}-cq"
        kueue.cluster_queue(cluster_queue, cpu=cpu)
        kueue.local_queue(placements.namespace, "batch", cluster_queue)
        names.append(cluster_queue)
        return "batch"

    yield make
    for name in names:
        kueue.cluster.kubectl("delete", "clusterqueue", name, "--wait=false", check=False)


def workload_conditions(placements: Placements) -> dict[str, dict[str, str]]:
    items = placements.custom.list_namespaced_custom_object(
        "kueue.x-k8s.io", "v1beta2", placements.namespace, "workloads"
    )["items"]
    if len(items) != 1:
        return {}
    return {c["type"]: c for c in items[0].get("status", {}).get("conditions", [])}


def test_a_queued_job_is_created_suspended_and_runs_once_admitted(
    kueue: LocalKueue, queue: Any, placements: Placements
) -> None:
    name = queue(cpu="8")
    created = placements.batch.create_namespaced_job(
        placements.namespace, queued_job("summarize", name)
    )
    assert created.spec.suspend is True  # Kueue's webhook, before any pod could start

    started = time.monotonic()
    until(lambda: placements.batch.read_namespaced_job("summarize", placements.namespace),
          lambda job: job.spec.suspend is False, timeout=60,
          what="Kueue admitted and unsuspended the Job")  # fmt: skip
    print(
        f"Kueue: started in {kueue.startup_seconds:.1f}s; "
        f"admitted in {time.monotonic() - started:.1f}s"
    )
    conditions = workload_conditions(placements)
    assert conditions["Admitted"]["status"] == "True", conditions


def test_a_queued_job_without_quota_stays_suspended(queue: Any, placements: Placements) -> None:
    name = queue(cpu="0")
    placements.batch.create_namespaced_job(placements.namespace, queued_job("summarize", name))

    conditions = until(
        lambda: workload_conditions(placements),
        lambda found: "QuotaReserved" in found,
        timeout=60,
        what="Kueue considered the Workload",
    )
    reserved = conditions["QuotaReserved"]
    assert reserved["status"] == "False"
    assert "insufficient quota" in reserved["message"], reserved
    time.sleep(3)  # several scheduling cycles: still no admission
    job = placements.batch.read_namespaced_job("summarize", placements.namespace)
    assert job.spec.suspend is True
    assert "Admitted" not in workload_conditions(placements) or (
        workload_conditions(placements)["Admitted"]["status"] == "False"
    )
