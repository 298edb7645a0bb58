"""A placement grants nothing its author did not have, on the real control plane.

At apply: the chart's ValidatingAdmissionPolicy, rendered by helm and applied, refuses a user
who may write placements but not create Jobs or scale the target, and a batch pod outside the
job pod policy. In the operator: placements written past the policy (it is not installed)
with such pods, or aimed at protected targets, change nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import Gauge

from placement.core.api import GROUP, PLURAL, VERSION
from placement.localenv.cluster import LocalCluster
from placement.localenv.operator_process import OperatorProcess, start_operator
from placement.localenv.prometheus import LocalPrometheus
from tests.chart.helm import CHART, KUBE_VERSION, helm
from tests.integration.harness import (
    Placements,
    measured_deployment,
    operator_stopped,
    placement,
)
from tests.integration.wait import until

User = client.CustomObjectsApi

PLACEMENT_RIGHTS = {
    "apiGroups": [GROUP],
    "resources": ["workloadplacements"],
    "verbs": ["get", "list", "create", "update", "patch", "delete"],
}
JOB_AND_SCALE_RIGHTS = [
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]},
    {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["update", "patch"]},
]


@pytest.fixture
def users(api_client: client.ApiClient, cluster: LocalCluster) -> Iterator[Callable[..., User]]:
    """make(namespace, name, rules): a ServiceAccount with exactly `rules` in `namespace`, as
    an API client of its own (its token, not impersonation: authorized like any user)."""
    opened: list[client.ApiClient] = []
    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)

    def make(namespace: str, name: str, rules: list[dict[str, Any]]) -> User:
        core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
        rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": rules})
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
            },
        )
        token = core.create_namespaced_service_account_token(
            name, namespace, {"spec": {"audiences": [], "expirationSeconds": 3600}}
        ).status.token
        configuration = client.Configuration()
        configuration.host = cluster.server
        configuration.ssl_ca_cert = str(cluster.workdir / "pki" / "ca.crt")
        configuration.api_key = {"BearerToken": str(token)}
        configuration.api_key_prefix = {"BearerToken": "Bearer"}
        opened.append(client.ApiClient(configuration))
        return client.CustomObjectsApi(opened[-1])

    yield make
    for user_client in opened:
        user_client.close()


def _create(user: User, namespace: str, manifest: dict[str, Any], dry_run: bool = False) -> None:
    user.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, manifest, dry_run="All" if dry_run else None
    )


def _refusal(action: Callable[[], object]) -> str:
    """The API server's message for a refused request."""
    with pytest.raises(ApiException) as refused:
        action()
    assert refused.value.status in (403, 422), refused.value.body
    return str(json.loads(refused.value.body)["message"])


def _policy(release: str, namespace: str, *values: str) -> str:
    """The chart's admission policy for a release watching `namespace`, as helm renders it."""
    return helm(
        "template",
        release,
        str(CHART),
        "--namespace",
        f"{release}-ops",
        "--kube-version",
        KUBE_VERSION,
        "--set",
        "prometheus.url=http://prometheus:9090",
        "--set",
        f"watchNamespaces={{{namespace}}}",
        *values,
        "--show-only",
        "templates/admission-policy.yaml",
    ).stdout


@pytest.fixture
def admission_policy(cluster: LocalCluster, namespace: str) -> Iterator[str]:
    """The chart's policy bound to this test's namespace (and so to no other test's)."""
    release = f"adm-{uuid.uuid4().hex[:6]}"
    manifest = _policy(release, namespace, "--set", f"protectedDeployments={{{namespace}/billing}}")
    cluster.kubectl("apply", "-f", "-", input_text=manifest)
    yield manifest
    cluster.kubectl("delete", "--ignore-not-found", "-f", "-", input_text=manifest)


def _pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["batch"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


def _privileged(manifest: dict[str, Any]) -> dict[str, Any]:
    _pod_spec(manifest)["containers"][0]["securityContext"] = {"privileged": True}
    return manifest


def _host_path(manifest: dict[str, Any]) -> dict[str, Any]:
    pod = _pod_spec(manifest)
    pod["volumes"] = [{"name": "root", "hostPath": {"path": "/"}}]
    pod["containers"][0]["volumeMounts"] = [{"name": "root", "mountPath": "/host"}]
    return manifest


def _other_account(manifest: dict[str, Any]) -> dict[str, Any]:
    _pod_spec(manifest)["serviceAccountName"] = "cluster-admin-sa"
    return manifest


def _host_network(manifest: dict[str, Any]) -> dict[str, Any]:
    _pod_spec(manifest).update(hostNetwork=True, hostPID=True)
    return manifest


def _host_port(manifest: dict[str, Any]) -> dict[str, Any]:
    _pod_spec(manifest)["containers"][0]["ports"] = [{"containerPort": 22, "hostPort": 22}]
    return manifest


def _host_process(manifest: dict[str, Any]) -> dict[str, Any]:
    _pod_spec(manifest)["securityContext"] = {"windowsOptions": {"hostProcess": True}}
    return manifest


def _unsafe_sysctl(manifest: dict[str, Any]) -> dict[str, Any]:
    _pod_spec(manifest)["securityContext"] = {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}
    return manifest


def _unmasked_proc(manifest: dict[str, Any]) -> dict[str, Any]:
    _pod_spec(manifest)["containers"][0]["securityContext"] = {"procMount": "Unmasked"}
    return manifest


def _unconfined_pod(manifest: dict[str, Any]) -> dict[str, Any]:
    _pod_spec(manifest)["securityContext"] = {"seccompProfile": {"type": "Unconfined"}}
    return manifest


def _unconfined_container(manifest: dict[str, Any]) -> dict[str, Any]:
    security = {"appArmorProfile": {"type": "Unconfined"}}
    _pod_spec(manifest)["containers"][0]["securityContext"] = security
    return manifest


def _apparmor_annotation(manifest: dict[str, Any]) -> dict[str, Any]:
    template = manifest["spec"]["batch"]["jobTemplate"]["spec"]["template"]
    key = "container.apparmor.security.beta.kubernetes.io/batch"
    template["metadata"] = {"annotations": {key: "unconfined"}}
    return manifest


def _seccomp_annotation(manifest: dict[str, Any]) -> dict[str, Any]:
    template = manifest["spec"]["batch"]["jobTemplate"]["spec"]["template"]
    template["metadata"] = {
        "annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}
    }
    return manifest


def _context_not_an_object(manifest: dict[str, Any]) -> dict[str, Any]:
    _pod_spec(manifest)["securityContext"] = 5
    return manifest


def _profile_not_an_object(manifest: dict[str, Any]) -> dict[str, Any]:
    _pod_spec(manifest)["containers"][0]["securityContext"] = {"seccompProfile": "Unconfined"}
    return manifest


def _capabilities_not_a_list(manifest: dict[str, Any]) -> dict[str, Any]:
    security = {"capabilities": {"add": "NET_ADMIN"}}
    _pod_spec(manifest)["containers"][0]["securityContext"] = security
    return manifest


def _selinux_container(manifest: dict[str, Any]) -> dict[str, Any]:
    security = {"seLinuxOptions": {"type": "spc_t"}}
    _pod_spec(manifest)["containers"][0]["securityContext"] = security
    return manifest


def _selinux_user(manifest: dict[str, Any]) -> dict[str, Any]:
    _pod_spec(manifest)["securityContext"] = {"seLinuxOptions": {"user": "system_u"}}
    return manifest


def _added_capability(manifest: dict[str, Any]) -> dict[str, Any]:
    security = {"capabilities": {"add": ["CAP_SYS_ADMIN"]}}
    _pod_spec(manifest)["initContainers"] = [
        {"name": "init", "image": "i:1", "securityContext": security}
    ]
    return manifest


def test_a_placement_needs_its_authors_own_rights_at_apply(
    cluster: LocalCluster,
    crd: str,
    api_client: client.ApiClient,
    namespace: str,
    admission_policy: str,
    users: Callable[..., User],
) -> None:
    placements = Placements(api_client, namespace)
    placements.deployment("web", 3)
    placements.deployment("billing", 3)
    tenant = users(namespace, "placer", [PLACEMENT_RIGHTS])
    namespace_admin = users(namespace, "owner", [PLACEMENT_RIGHTS, *JOB_AND_SCALE_RIGHTS])
    wanted = placement("web", namespace, deployment="web", warm_replicas=0)

    # The policy reaches the API server's informer a moment after it is created.
    message = until(
        lambda: _refusal_or_none(lambda: _create(tenant, namespace, wanted, dry_run=True)),
        lambda found: found is not None,
        what="the admission policy in force",
    )
    assert message is not None
    message = _refusal(lambda: _create(tenant, namespace, wanted))
    assert "grants nothing its author does not have" in message
    assert f"system:serviceaccount:{namespace}:placer may not create jobs in namespace" in message
    # One right at a time: with Jobs but without the scale, the scale is what is named.
    jobs_only = users(namespace, "runner", [PLACEMENT_RIGHTS, JOB_AND_SCALE_RIGHTS[0]])
    scale = _refusal(lambda: _create(jobs_only, namespace, wanted))
    assert (
        f"system:serviceaccount:{namespace}:runner may not update deployments/scale of "
        f"deployment/web in namespace {namespace}"
    ) in scale
    assert not placements.exists("web")
    assert placements.replicas("web") == 3
    assert placements.jobs("web") == []

    # With the rights to do it by hand, the same placement is admitted; a spec change by the
    # tenant is refused, a label is not (kopf's own metadata writes stay possible).
    _create(namespace_admin, namespace, {**wanted, "spec": {**wanted["spec"], "mode": "Recommend"}})
    assert placements.exists("web")
    changed = _refusal(
        lambda: tenant.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "web", {"spec": {"target": {"warmReplicas": 1}}}
        )
    )
    assert "may not create jobs" in changed
    tenant.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "web", {"metadata": {"labels": {"team": "ml"}}}
    )

    # The job pod policy applies to everyone, the namespace admin included.
    for make, field in (
        (_privileged, "containers[].securityContext.privileged"),
        (_host_path, "volumes[].hostPath"),
        (_other_account, "serviceAccountName"),
        (_host_network, "hostNetwork, hostPID"),
        (_added_capability, "containers[].securityContext.capabilities.add"),
        (_host_port, "containers[].ports[].hostPort"),
        (_host_process, "securityContext.windowsOptions.hostProcess"),
        (_unsafe_sysctl, "securityContext.sysctls[].name"),
        (_unmasked_proc, "containers[].securityContext.procMount"),
        (_unconfined_pod, "securityContext.seccompProfile.type"),
        (_unconfined_container, "containers[].securityContext.seccompProfile.type"),
        (_apparmor_annotation, "metadata.annotations[container.apparmor"),
        (_seccomp_annotation, "metadata.annotations[seccomp.security.alpha.kubernetes.io/pod]"),
        (_selinux_container, "securityContext.seLinuxOptions"),
        (_selinux_user, "securityContext.seLinuxOptions"),
        # Before, a CEL error that named no field ("no such overload").
        (_context_not_an_object, "securityContext (or a container's): must be an object"),
        (_profile_not_an_object, "securityContext (or a container's): must be an object"),
        (_capabilities_not_a_list, "securityContext (or a container's): must be an object"),
    ):
        bad = make(placement("bad", namespace, deployment="web"))
        refused = _refusal(partial(_create, namespace_admin, namespace, bad))
        named = field if field.startswith("metadata.") else f"spec.{field}"
        assert f"spec.batch.jobTemplate.spec.template.{named}" in refused, refused
    assert not placements.exists("bad")
    # What Pod Security's baseline allows of the same fields is admitted.
    fine = placement("fine", namespace, deployment="web")
    fine["spec"]["batch"]["jobTemplate"]["spec"]["template"]["metadata"] = {
        "annotations": {
            "seccomp.security.alpha.kubernetes.io/pod": "runtime/default",
            "container.apparmor.security.beta.kubernetes.io/batch": "localhost/k8s-batch",
        }
    }
    _pod_spec(fine)["securityContext"] = {
        "seLinuxOptions": {"type": "container_t", "level": "s0:c123,c456"}
    }
    _create(namespace_admin, namespace, fine, dry_run=True)

    # A protected target is refused whoever asks (here the cluster admin).
    protected = _refusal(
        lambda: placements.apply(placement("billing", namespace, deployment="billing"))
    )
    assert f"spec.target.deployment: deployment/billing in namespace {namespace} is protected" in (
        protected
    )
    assert placements.replicas("billing") == 3


def test_an_async_placement_needs_the_right_to_create_scaled_objects(
    crd: str,
    api_client: client.ApiClient,
    namespace: str,
    admission_policy: str,
    users: Callable[..., User],
) -> None:
    placements = Placements(api_client, namespace)
    placements.deployment("web", 3)
    batch_author = users(namespace, "batcher", [PLACEMENT_RIGHTS, *JOB_AND_SCALE_RIGHTS])
    async_author = users(
        namespace,
        "asyncer",
        [
            PLACEMENT_RIGHTS,
            *JOB_AND_SCALE_RIGHTS,
            {"apiGroups": ["keda.sh"], "resources": ["scaledobjects"], "verbs": ["create"]},
        ],
    )
    plain = placement("web", namespace, deployment="web", warm_replicas=0)
    queued = {"queue": f'sum(inference_queue_depth{{namespace="{namespace}"}})'}
    wanted = {**plain, "spec": {**plain["spec"], "async": queued}}

    message = until(
        lambda: _refusal_or_none(lambda: _create(batch_author, namespace, wanted, dry_run=True)),
        lambda found: found is not None,
        what="the admission policy in force",
    )
    assert message is not None and "grants nothing its author does not have" in message
    assert (
        f"system:serviceaccount:{namespace}:batcher may not create scaledobjects.keda.sh in "
        f"namespace {namespace}, which the operator would do for this placement's spec.async"
    ) in message
    _create(batch_author, namespace, plain, dry_run=True)  # without async: admitted
    _create(async_author, namespace, wanted)
    assert placements.exists("web")


def _refusal_or_none(action: Callable[[], object]) -> str | None:
    try:
        action()
    except ApiException as error:
        if error.status in (403, 422):
            return str(json.loads(error.body)["message"])
        raise
    return None


def _blocked(placements: Placements, name: str, reason: str, timeout: float = 60) -> str:
    """The Ready condition's message once the placement is Blocked with `reason`."""
    status = until(
        lambda: placements.status(name),
        lambda s: (
            s.get("phase") == "Blocked"
            and any(c.get("reason") == reason for c in s.get("conditions") or [])
        ),
        timeout=timeout,
        what=f"{name} Blocked with {reason}",
    )
    return str(next(c["message"] for c in status["conditions"] if c["reason"] == reason))


@pytest.mark.usefixtures("operator")
def test_the_operator_refuses_a_batch_pod_outside_the_job_pod_policy(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    """No admission policy here: the placements are applied as they would be with it off."""
    cases = {
        "privileged": (_privileged, "containers[0].securityContext.privileged"),
        "host-path": (_host_path, "volumes[0].hostPath"),
        "other-account": (_other_account, "serviceAccountName"),
        "host-port": (_host_port, "containers[0].ports[0].hostPort"),
        "unconfined": (_unconfined_pod, "securityContext.seccompProfile.type"),
    }
    for name, (make, _) in cases.items():
        measured_deployment(placements, prometheus, utilization, name)
        placements.apply(make(placement(name, placements.namespace, deployment=name)))
    for name, (_, field) in cases.items():
        message = _blocked(placements, name, "BatchJobRejected")
        assert f"spec.batch.jobTemplate.spec.template.spec.{field}" in message, message
        assert "job pod policy" in message and f"deployment/{name} left at 4 replicas" in message
        assert placements.wait_for_event(name, "BatchJobRejected").type == "Warning"
    for name in cases:
        assert placements.replicas(name) == 4, name
        assert placements.jobs(name) == [], name


def test_the_operator_never_touches_itself_or_a_protected_namespace(
    cluster: LocalCluster,
    crd: str,
    api_client: client.ApiClient,
    core_v1: client.CoreV1Api,
    operator: OperatorProcess,
    namespace: str,
    prometheus: LocalPrometheus,
    utilization: Gauge,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    own = f"{namespace}-ops"[:63]
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=own)))
    kube_system = Placements(api_client, "kube-system")
    victim = f"victim-{uuid.uuid4().hex[:5]}"
    try:
        mine = Placements(api_client, own)
        tenant = Placements(api_client, namespace)
        measured_deployment(mine, prometheus, utilization, "po-placement-operator", replicas=1)
        measured_deployment(tenant, prometheus, utilization, "billing")
        measured_deployment(kube_system, prometheus, utilization, victim)
        # The operator as the chart configures it, in place of the session's operator.
        monkeypatch.setenv("PLACEMENT_OPERATOR_NAMESPACE", own)
        monkeypatch.setenv("PLACEMENT_OPERATOR_DEPLOYMENT", "po-placement-operator")
        monkeypatch.setenv("PLACEMENT_PROTECTED_DEPLOYMENTS", f"{namespace}/billing")
        with operator_stopped(operator):
            configured = start_operator(
                cluster.kubeconfig, prometheus.url, tmp_path / "operator.log", tick_seconds=1
            )
            try:
                mine.apply(placement("itself", own, deployment="po-placement-operator"))
                tenant.apply(placement("billing", namespace, deployment="billing"))
                kube_system.apply(placement(victim, "kube-system", deployment=victim))
                itself = _blocked(mine, "itself", "InvalidSpec")
                billing = _blocked(tenant, "billing", "InvalidSpec")
                system = _blocked(kube_system, victim, "InvalidSpec")
                assert (
                    f"spec.target.deployment: deployment/po-placement-operator in namespace {own} "
                    "is protected (the operator's own Deployment"
                ) in itself
                assert f"spec.target.deployment: deployment/billing in namespace {namespace}" in (
                    billing
                )
                assert "metadata.namespace: namespace kube-system is protected" in system
                assert mine.replicas("po-placement-operator") == 1
                assert tenant.replicas("billing") == 4
                assert kube_system.replicas(victim) == 4
                assert mine.jobs("itself") == tenant.jobs("billing") == []
                assert kube_system.jobs(victim) == []
                # Gone while this operator runs: the session's one would not protect them.
                for where, name in ((mine, "itself"), (tenant, "billing"), (kube_system, victim)):
                    where.delete(name)
                    until(partial(where.exists, name), lambda e: not e, what=f"{name} gone")
                assert mine.replicas("po-placement-operator") == 1
                assert tenant.replicas("billing") == 4
            finally:
                configured.stop()
    finally:
        try:
            kube_system.apps.delete_namespaced_deployment(victim, "kube-system")
        except ApiException as error:
            if error.status != 404:
                raise
        core_v1.delete_namespace(own)
