"""The local control plane is real: pods schedule onto kwok nodes, controllers reconcile,
CRDs establish, RBAC denies."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from placement.localenv import tools
from placement.localenv.cluster import LocalCluster
from tests.integration.harness import IMAGE, deployment
from tests.integration.wait import until


def _running_pods(core: client.CoreV1Api, namespace: str, app: str) -> list[client.V1Pod]:
    pods = core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return [
        p for p in pods if p.status.phase == "Running" and p.metadata.deletion_timestamp is None
    ]


def test_nodes_are_ready_and_report_the_built_version(cluster: LocalCluster) -> None:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    ready = {
        n["metadata"]["name"]
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    }
    assert ready == {"kwok-node-0", "kwok-node-1"}
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == f"v{tools.KUBERNETES_VERSION}"


def test_deployment_pods_run_on_kwok_nodes_and_follow_scaling(
    api_client: client.ApiClient, core_v1: client.CoreV1Api, namespace: str
) -> None:
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, deployment("summarizer", 2))

    pods = until(
        lambda: _running_pods(core_v1, namespace, "summarizer"),
        lambda p: len(p) == 2,
        what="2 running pods",
    )
    assert {p.spec.node_name for p in pods} <= {"kwok-node-0", "kwok-node-1"}
    assert all(p.status.pod_ip for p in pods)

    apps.patch_namespaced_deployment_scale(
        namespace=namespace, name="summarizer", body={"spec": {"replicas": 4}}
    )
    until(
        lambda: _running_pods(core_v1, namespace, "summarizer"),
        lambda p: len(p) == 4,
        what="4 running pods after scale-up",
    )

    apps.patch_namespaced_deployment_scale(
        namespace=namespace, name="summarizer", body={"spec": {"replicas": 0}}
    )
    until(
        lambda: core_v1.list_namespaced_pod(namespace, label_selector="app=summarizer").items,
        lambda p: len(p) == 0,
        what="no pods after scale to zero",
    )
    # The Deployment's status follows its pods a moment later (the controller's next sync).
    until(
        lambda: apps.read_namespaced_deployment(name="summarizer", namespace=namespace).status,
        lambda status: not status.ready_replicas,
        what="no ready replicas in the Deployment's status",
    )


def test_job_runs_to_completion(api_client: client.ApiClient, namespace: str) -> None:
    batch = client.BatchV1Api(api_client)
    job = client.V1Job(
        metadata=client.V1ObjectMeta(name="enrich-20261124-0100"),
        spec=client.V1JobSpec(
            backoff_limit=0,
            template=client.V1PodTemplateSpec(
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    containers=[client.V1Container(name="batch", image=IMAGE)],
                )
            ),
        ),
    )
    batch.create_namespaced_job(namespace, job)
    status = until(
        lambda: batch.read_namespaced_job_status(job.metadata.name, namespace).status,
        lambda s: bool(s.succeeded),
        what="job succeeded",
    )
    assert status.succeeded == 1
    assert any(c.type == "Complete" and c.status == "True" for c in status.conditions)


def test_crd_becomes_established_and_objects_round_trip(
    api_client: client.ApiClient, namespace: str
) -> None:
    extensions = client.ApiextensionsV1Api(api_client)
    group, plural = "roundtrip.test.placement.runplacement.io", "gadgets"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": "gadget", "kind": "Gadget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {"size": {"type": "integer", "minimum": 1}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    extensions.create_custom_resource_definition(crd)
    try:
        until(
            lambda: extensions.read_custom_resource_definition(f"{plural}.{group}").status,
            lambda s: any(
                c.type == "Established" and c.status == "True" for c in (s.conditions or [])
            ),
            what="CRD Established",
        )
        custom = client.CustomObjectsApi(api_client)
        body = {
            "apiVersion": f"{group}/v1",
            "kind": "Gadget",
            "metadata": {"name": "g1"},
            "spec": {"size": 3},
        }
        until(
            lambda: _try_create(custom, group, namespace, plural, body),
            lambda ok: ok,
            what="custom object accepted",
        )
        stored = custom.get_namespaced_custom_object(group, "v1", namespace, plural, "g1")
        assert stored["spec"] == {"size": 3}

        # The schema is enforced by the real API server, naming the field.
        bad = {**body, "metadata": {"name": "g2"}, "spec": {"size": 0}}
        with pytest.raises(ApiException) as rejected:
            custom.create_namespaced_custom_object(group, "v1", namespace, plural, bad)
        assert rejected.value.status == 422
        assert "spec.size" in rejected.value.body
    finally:
        extensions.delete_custom_resource_definition(f"{plural}.{group}")


def _try_create(
    custom: client.CustomObjectsApi,
    group: str,
    namespace: str,
    plural: str,
    body: dict[str, object],
) -> bool:
    # Discovery of a fresh CRD can lag its Established condition by a moment.
    try:
        custom.create_namespaced_custom_object(group, "v1", namespace, plural, body)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def test_rbac_denies_a_service_account_without_rights(
    cluster: LocalCluster,
    api_client: client.ApiClient,
    core_v1: client.CoreV1Api,
    namespace: str,
) -> None:
    core_v1.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    token = core_v1.create_namespaced_service_account_token(
        "nobody",
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        ),
    ).status.token

    configuration = client.Configuration()
    configuration.host = cluster.server
    configuration.ssl_ca_cert = str(cluster.workdir / "pki" / "ca.crt")
    configuration.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(configuration) as as_nobody:
        nobody_core = client.CoreV1Api(as_nobody)
        with pytest.raises(ApiException) as denied:
            nobody_core.list_namespaced_secret(namespace)
        assert denied.value.status == 403
        assert f"system:serviceaccount:{namespace}:nobody" in denied.value.body

        # Granting a Role makes exactly that request succeed: the denial was RBAC's.
        rbac = client.RbacAuthorizationV1Api(api_client)
        rbac.create_namespaced_role(
            namespace,
            client.V1Role(
                metadata=client.V1ObjectMeta(name="read-pods"),
                rules=[
                    client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "list"])
                ],
            ),
        )
        rbac.create_namespaced_role_binding(
            namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="read-pods"),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="Role", name="read-pods"
                ),
                subjects=[
                    client.RbacV1Subject(kind="ServiceAccount", name="nobody", namespace=namespace)
                ],
            ),
        )
        until(
            lambda: _can_list_pods(nobody_core, namespace),
            lambda ok: ok,
            what="pods readable after the RoleBinding",
        )
        with pytest.raises(ApiException) as still_denied:
            nobody_core.list_namespaced_secret(namespace)
        assert still_denied.value.status == 403

    can_i = cluster.kubectl(
        "auth",
        "can-i",
        "list",
        "secrets",
        "-n",
        namespace,
        f"--as=system:serviceaccount:{namespace}:nobody",
        check=False,
    )
    assert can_i.stdout.strip() == "no"


def _can_list_pods(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        core.list_namespaced_pod(namespace)
    except ApiException as error:
        if error.status == 403:
            return False
        raise
    return True
