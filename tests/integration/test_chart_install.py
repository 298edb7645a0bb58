"""The chart on the real control plane: install, upgrade, uninstall; and the proof that its
RBAC is enough and no more: the operator, authenticated with the chart's ServiceAccount token
(not the admin certificate), takes a placement through a move to batch and back."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import kopf
import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import Gauge

from placement.localenv import tools
from placement.localenv.cluster import LocalCluster
from placement.localenv.operator_process import OperatorProcess
from placement.localenv.prometheus import LocalPrometheus
from placement.runtime.config import OperatorConfig
from placement.runtime.handlers import register
from tests.chart.helm import CHART
from tests.integration.harness import (
    Placements,
    averaged_utilization,
    operator_stopped,
    placement,
)
from tests.integration.wait import until

Helm = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def helm(cluster: LocalCluster, tmp_path: Path) -> Iterator[Helm]:
    home = tmp_path / "helm"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(tools.binary("helm")), "--kubeconfig", str(cluster.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            env={
                "HOME": str(home),  # client-go's discovery cache goes under $HOME/.kube
                "HELM_CACHE_HOME": str(home / "cache"),
                "HELM_CONFIG_HOME": str(home / "config"),
                "HELM_DATA_HOME": str(home / "data"),
                "PATH": "/usr/bin:/bin",
            },
        )
        if result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)}:\n{result.stdout}\n{result.stderr}")
        return result

    yield run


def _release() -> str:
    return f"po-{uuid.uuid4().hex[:10]}"


@pytest.mark.usefixtures("crd")
def test_install_upgrade_and_uninstall_on_the_local_cluster(
    helm: Helm, namespace: str, api_client: client.ApiClient, prometheus: LocalPrometheus
) -> None:
    release = _release()
    name = f"{release}-placement-operator"
    apps, rbac = client.AppsV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    extensions = client.ApiextensionsV1Api(api_client)
    crd_name = "workloadplacements.placement.runplacement.io"
    # The CRD was applied with kubectl: the release takes it over the way docs/install.md
    # says ("Upgrade"), and from then on installs and upgrades it (crds.install, the default).
    extensions.patch_custom_resource_definition(
        crd_name,
        {
            "metadata": {
                "labels": {"app.kubernetes.io/managed-by": "Helm"},
                "annotations": {
                    "meta.helm.sh/release-name": release,
                    "meta.helm.sh/release-namespace": namespace,
                },
            }
        },
    )

    helm(
        "install",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--set",
        f"prometheus.url={prometheus.url}",
        "--wait",
        "--timeout",
        "120s",
    )
    deployment = apps.read_namespaced_deployment(name, namespace)
    assert deployment.status.ready_replicas == 1  # the pod runs on a kwok node
    assert deployment.spec.strategy.type == "Recreate"
    assert rbac.read_cluster_role(name).rules
    client.CoreV1Api(api_client).read_namespaced_service_account(name, namespace)
    client.CoreV1Api(api_client).read_namespaced_service(f"{name}-metrics", namespace)

    helm(
        "upgrade",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--reuse-values",
        "--set",
        "logFormat=json",
        "--set",
        "evaluation.tickSeconds=30",
        "--wait",
        "--timeout",
        "120s",
    )
    upgraded = apps.read_namespaced_deployment(name, namespace)
    env = {e.name: e.value for e in upgraded.spec.template.spec.containers[0].env}
    assert env["PLACEMENT_LOG_FORMAT"] == "json"
    assert env["PLACEMENT_TICK_SECONDS"] == "30"
    assert env["PLACEMENT_PROMETHEUS_URL"] == prometheus.url  # reused, not reset
    until(
        lambda: apps.read_namespaced_deployment(name, namespace).status,
        lambda status: status.ready_replicas == 1 and status.updated_replicas == 1,
        what="upgraded operator pod ready",
    )
    history = helm("history", release, "--namespace", namespace, "-o", "yaml").stdout
    assert [entry["revision"] for entry in yaml.safe_load(history)] == [1, 2]

    helm("uninstall", release, "--namespace", namespace, "--wait")
    with pytest.raises(ApiException) as gone:
        apps.read_namespaced_deployment(name, namespace)
    assert gone.value.status == 404
    with pytest.raises(ApiException) as role_gone:
        rbac.read_cluster_role(name)
    assert role_gone.value.status == 404
    # crds.keep: the CRD, and the placements of every team, survive an uninstall.
    kept = extensions.read_custom_resource_definition(crd_name)
    assert kept.metadata.annotations["helm.sh/resource-policy"] == "keep"


def test_every_optional_setting_renders_objects_the_api_server_accepts(
    helm: Helm, cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    """Prometheus auth, CA bundle and headers, extra env/args/volumes, two replicas with their
    disruption budget and spread, the dashboard: validated by the real API server (dry run)."""
    settings = tmp_path / "everything.yaml"
    settings.write_text(
        yaml.safe_dump(
            {
                "prometheus": {
                    "url": "https://mimir.example/prometheus",
                    "bearerToken": {"secretName": "prom-token"},
                    "basicAuth": {"secretName": "prom-basic"},
                    "caBundle": {"secretName": "prom-ca"},
                    "headers": {"X-Scope-OrgID": "team-a"},
                },
                "replicaCount": 2,
                "logLevel": "DEBUG",
                "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
                "extraArgs": ["--metrics-max-age=30"],
                "extraVolumes": [{"name": "cache", "emptyDir": {}}],
                "extraVolumeMounts": [{"name": "cache", "mountPath": "/cache"}],
                "grafanaDashboard": {"enabled": True},
                "crds": {"install": False},
            }
        )
    )
    manifest = helm(
        "template",
        "po",
        str(CHART),
        "--namespace",
        namespace,
        "-f",
        str(settings),
        "--kube-version",
        tools.KUBERNETES_VERSION,
    ).stdout
    # The cluster-scoped RBAC and kopf's peering object are proven by the other tests.
    namespaced = [
        doc
        for doc in yaml.safe_load_all(manifest)
        if doc and doc["kind"] in ("Deployment", "PodDisruptionBudget", "ConfigMap", "Service")
    ]
    assert len(namespaced) == 4
    applied = cluster.kubectl(
        "apply",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        "-",
        input_text=yaml.safe_dump_all(namespaced),
        check=False,
    )
    assert applied.returncode == 0, applied.stderr


# -- the operator as the chart's ServiceAccount ------------------------------------------


@contextmanager
def _operator_in_process(
    config: OperatorConfig, peering: str | None = None
) -> Iterator[list[logging.LogRecord]]:
    """The operator's handlers and kopf in a thread of this process; yields the WARNING+
    log records it produced."""
    registry = kopf.OperatorRegistry()
    # As the command line does: with peering, a kopf daemon per placement (kopf stops them on
    # a paused replica); standalone, the scheduler.
    register(registry, dataclasses.replace(config, peering=peering))
    stop, ready = threading.Event(), threading.Event()
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    collector = Collect(level=logging.WARNING)
    logging.getLogger().addHandler(collector)

    def run() -> None:
        asyncio.run(
            kopf.operator(
                registry=registry,
                clusterwide=False,
                namespaces=list(config.namespaces),
                standalone=peering is None,
                peering_name=peering,
                priority=1,
                stop_flag=stop,
                ready_flag=ready,
            )
        )

    thread = threading.Thread(target=run, name="operator-as-service-account", daemon=True)
    thread.start()
    try:
        assert ready.wait(30), "the in-process operator did not start"
        yield records
    finally:
        stop.set()
        thread.join(30)
        logging.getLogger().removeHandler(collector)


def _service_account_kubeconfig(
    cluster: LocalCluster, core: client.CoreV1Api, namespace: str, account: str, path: Path
) -> Path:
    token = core.create_namespaced_service_account_token(
        account,
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
        ),
    ).status.token
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [
            {
                "name": account,
                "context": {"cluster": admin["clusters"][0]["name"], "user": account},
            }
        ],
        "current-context": account,
    }
    path.write_text(yaml.safe_dump(kubeconfig))
    return path


def test_the_charts_service_account_is_enough_for_a_full_cycle_and_no_more(
    helm: Helm,
    cluster: LocalCluster,
    crd: str,
    operator: OperatorProcess,
    core_v1: client.CoreV1Api,
    api_client: client.ApiClient,
    prometheus: LocalPrometheus,
    utilization: Gauge,
    tmp_path: Path,
) -> None:
    release = _release()
    ops, work, other = (f"{release}-{suffix}" for suffix in ("ops", "work", "other"))
    for name in (ops, work, other):
        core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        helm(
            "install",
            release,
            str(CHART),
            "--namespace",
            ops,
            "--set",
            f"prometheus.url={prometheus.url}",
            "--set",
            f"watchNamespaces={{{work}}}",
            # Another release owns the CRD in this shared cluster.
            "--set",
            "crds.install=false",
            # Two replicas: the peering rules are proven too (the in-process operator is the
            # only live member of the chart's KopfPeering).
            "--set",
            "replicaCount=2",
        )
        account = f"{release}-placement-operator"
        kubeconfig = _service_account_kubeconfig(
            cluster, core_v1, ops, account, tmp_path / "sa.kubeconfig"
        )

        def can_i(*args: str) -> str:
            result = cluster.kubectl(
                "--kubeconfig", str(kubeconfig), "auth", "can-i", *args, check=False
            )
            return result.stdout.strip()

        # The same identity kubectl and the operator use below: the token, not impersonation.
        assert can_i("patch", "deployments", "-n", work) == "yes"
        assert can_i("create", "jobs", "-n", work) == "yes"
        assert can_i("get", "secrets", "-n", work) == "no"
        assert can_i("list", "secrets", "-n", ops) == "no"
        assert can_i("patch", "deployments", "-n", other) == "no"
        assert can_i("list", "workloadplacements", "-n", other) == "no"
        assert can_i("list", "workloadplacements", "--all-namespaces") == "no"
        assert can_i("delete", "deployments", "-n", work) == "no"
        assert can_i("list", "customresourcedefinitions") == "no"

        placements = Placements(api_client, work)
        placements.deployment("reranker", 4)
        utilization.labels(work, "reranker").set(0.2)
        prometheus.wait_for_value(averaged_utilization(work, "reranker"), 0.2)
        config = OperatorConfig(
            prometheus_url=prometheus.url,
            tick_seconds=1,
            namespaces=(work,),
            kubeconfig=str(kubeconfig),
            metrics_address="",
        )
        peering = f"{release}-placement-operator"
        with operator_stopped(operator), _operator_in_process(config, peering) as records:
            placements.apply(placement("reranker", work, deployment="reranker", warm_replicas=1))
            placements.wait_for_reason("reranker", "BatchSucceeded", timeout=90)
            assert placements.replicas("reranker") == 1
            [job] = placements.jobs("reranker")
            assert job.status.succeeded == 4
            assert placements.wait_for_event("reranker", "MovedToBatch").type == "Normal"

            placements.delete("reranker")
            until(
                lambda: placements.exists("reranker"),
                lambda exists: not exists,
                what="placement deleted after its restore",
            )
            assert placements.replicas("reranker") == 4
            assert placements.wait_for_event("reranker", "Restored").type == "Normal"
        refused = [
            r.getMessage()
            for r in records
            if "403" in r.getMessage() or "Forbidden" in r.getMessage()
        ]
        assert refused == [], "the chart's RBAC refused the operator:\n" + "\n".join(refused)
    finally:
        for name in (ops, work, other):
            core_v1.delete_namespace(name)
