"""The job pod policy and the protected targets: what a placement may make the operator do."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from placement.core.api import WorkloadPlacementSpec
from placement.core.jobpolicy import (
    POD_SPEC_PATH,
    TEMPLATE_PATH,
    JobPodPolicy,
    ProtectedTargets,
    pod_violations,
    template_violations,
)
from placement.core.jobs import job_manifest
from tests.unit.factories import example_manifest

DEFAULT = JobPodPolicy()


def _pod(**fields: Any) -> dict[str, Any]:
    return {"restartPolicy": "Never", "containers": [{"name": "batch", "image": "b:1"}], **fields}


def _container(**security: Any) -> dict[str, Any]:
    return {"name": "batch", "image": "b:1", "securityContext": security}


def test_a_plain_batch_pod_is_allowed() -> None:
    assert pod_violations(_pod(), DEFAULT) == []
    assert pod_violations(_pod(serviceAccountName="default"), DEFAULT) == []
    locked_down = _container(
        privileged=False, allowPrivilegeEscalation=False, capabilities={"drop": ["ALL"]}
    )
    assert pod_violations(_pod(containers=[locked_down]), DEFAULT) == []


@pytest.mark.parametrize(
    ("pod", "field"),
    [
        (
            _pod(containers=[_container(privileged=True)]),
            "containers[0].securityContext.privileged",
        ),
        (
            _pod(initContainers=[_container(privileged=True)]),
            "initContainers[0].securityContext.privileged",
        ),
        (_pod(hostNetwork=True), "hostNetwork"),
        (_pod(hostPID=True), "hostPID"),
        (_pod(hostIPC=True), "hostIPC"),
        (
            _pod(
                volumes=[
                    {"name": "data", "emptyDir": {}},
                    {"name": "root", "hostPath": {"path": "/"}},
                ]
            ),
            "volumes[1].hostPath",
        ),
        (
            _pod(containers=[_container(capabilities={"add": ["NET_ADMIN"]})]),
            "containers[0].securityContext.capabilities.add",
        ),
        (_pod(serviceAccountName="cluster-admin-sa"), "serviceAccountName"),
        (_pod(serviceAccount="cluster-admin-sa"), "serviceAccount"),
        # A string where a bool belongs is not a way past the check.
        (_pod(hostNetwork="true"), "hostNetwork"),
        (
            _pod(
                containers=[
                    {
                        "name": "b",
                        "image": "b:1",
                        "ports": [{"containerPort": 80}, {"containerPort": 22, "hostPort": 22}],
                    }
                ]
            ),
            "containers[0].ports[1].hostPort",
        ),
        (
            _pod(
                initContainers=[
                    {"name": "b", "image": "b:1", "ports": [{"containerPort": 9, "hostPort": 9}]}
                ]
            ),
            "initContainers[0].ports[0].hostPort",
        ),
        (
            _pod(securityContext={"windowsOptions": {"hostProcess": True}}),
            "securityContext.windowsOptions.hostProcess",
        ),
        (
            _pod(containers=[_container(windowsOptions={"hostProcess": True})]),
            "containers[0].securityContext.windowsOptions.hostProcess",
        ),
        (
            _pod(
                securityContext={
                    "sysctls": [
                        {"name": "kernel.shm_rmid_forced", "value": "1"},
                        {"name": "kernel.msgmax", "value": "1"},
                    ]
                }
            ),
            "securityContext.sysctls[1].name",
        ),
        # A name that is not a string is refused, not a crash (it was a TypeError: unhashable).
        (
            _pod(securityContext={"sysctls": [{"name": ["kernel.msgmax"], "value": "1"}]}),
            "securityContext.sysctls[0].name",
        ),
        (
            _pod(securityContext={"sysctls": [{"name": {"kernel.msgmax": 1}, "value": "1"}]}),
            "securityContext.sysctls[0].name",
        ),
        (
            _pod(securityContext={"sysctls": [{"name": None, "value": "1"}]}),
            "securityContext.sysctls[0].name",
        ),
        (
            _pod(securityContext={"seLinuxOptions": {"type": "spc_t"}}),
            "securityContext.seLinuxOptions.type",
        ),
        (
            _pod(securityContext={"seLinuxOptions": {"type": ["spc_t"]}}),
            "securityContext.seLinuxOptions.type",
        ),
        (
            _pod(securityContext={"seLinuxOptions": {"user": "system_u"}}),
            "securityContext.seLinuxOptions.user",
        ),
        (
            _pod(containers=[_container(seLinuxOptions={"role": "sysadm_r"})]),
            "containers[0].securityContext.seLinuxOptions.role",
        ),
        (
            _pod(initContainers=[_container(seLinuxOptions={"type": "unconfined_t"})]),
            "initContainers[0].securityContext.seLinuxOptions.type",
        ),
        (
            _pod(ephemeralContainers=[_container(procMount="Unmasked")]),
            "ephemeralContainers[0].securityContext.procMount",
        ),
        (
            _pod(securityContext={"seccompProfile": {"type": "Unconfined"}}),
            "securityContext.seccompProfile.type",
        ),
        (
            _pod(containers=[_container(seccompProfile={"type": "Unconfined"})]),
            "containers[0].securityContext.seccompProfile.type",
        ),
        (
            _pod(securityContext={"appArmorProfile": {"type": "Unconfined"}}),
            "securityContext.appArmorProfile.type",
        ),
        (
            _pod(initContainers=[_container(appArmorProfile={"type": "Unconfined"})]),
            "initContainers[0].securityContext.appArmorProfile.type",
        ),
    ],
)
def test_each_refused_field_is_named(pod: dict[str, Any], field: str) -> None:
    [violation] = pod_violations(pod, DEFAULT)
    assert violation.startswith(f"{POD_SPEC_PATH}.{field}: ")


@pytest.mark.parametrize("policy", [DEFAULT, JobPodPolicy(allow_privileged=True)])
@pytest.mark.parametrize(
    ("pod", "field", "described"),
    [
        (_pod(securityContext=5), "securityContext", "5 is not an object"),
        (_pod(securityContext={"seccompProfile": 5}), "securityContext.seccompProfile", "object"),
        (_pod(securityContext={"sysctls": "x"}), "securityContext.sysctls", "'x' is not a list"),
        (_pod(securityContext={"windowsOptions": [1]}), "securityContext.windowsOptions", "object"),
        (_pod(containers=[{"name": "b", "image": "b:1", "securityContext": "x"}]),
         "containers[0].securityContext", "'x' is not an object"),
        (_pod(initContainers=[_container(appArmorProfile="Unconfined")]),
         "initContainers[0].securityContext.appArmorProfile", "'Unconfined' is not an object"),
        (_pod(containers=[_container(capabilities={"add": "NET_ADMIN"})]),
         "containers[0].securityContext.capabilities.add", "'NET_ADMIN' is not a list"),
        (_pod(containers=[_container(capabilities=5)]),
         "containers[0].securityContext.capabilities", "5 is not an object"),
        (_pod(containers=[_container(seLinuxOptions=5)]),
         "containers[0].securityContext.seLinuxOptions", "5 is not an object"),
    ],
)  # fmt: skip
def test_a_security_context_field_of_the_wrong_type_is_refused_naming_it(
    pod: dict[str, Any], field: str, described: str, policy: JobPodPolicy
) -> None:
    """Before, read as absent: `securityContext: 5` or `capabilities.add: NET_ADMIN` passed
    every check unseen (explain said MovedToBatch), and the chart's policy refused it with a
    CEL error that named no field."""
    [violation] = pod_violations(pod, policy)
    assert violation.startswith(f"{POD_SPEC_PATH}.{field}: ")
    assert described in violation


def test_what_pod_security_baseline_allows_of_the_new_fields_is_allowed() -> None:
    confined = {
        "seccompProfile": {"type": "RuntimeDefault"},
        "appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s"},
    }
    pod = _pod(
        securityContext={
            **confined,
            "sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"}],
            "windowsOptions": {"hostProcess": False},
            "seLinuxOptions": {"type": "container_t", "level": "s0:c123,c456"},
        },
        containers=[
            {
                **_container(
                    procMount="Default",
                    seLinuxOptions={"type": "container_init_t", "user": "", "role": ""},
                    **confined,
                ),
                "ports": [{"containerPort": 80}, {"containerPort": 81, "hostPort": 0}],
            }
        ],
    )
    assert pod_violations(pod, DEFAULT) == []


def test_privilege_and_host_namespaces_allow_what_they_include() -> None:
    """hostNetwork has every host port; a privileged pod has no seccomp, AppArmor or masked
    /proc, and may set any sysctl: refusing those alone would protect nothing."""
    policy = JobPodPolicy(allow_privileged=True, allow_host_namespaces=True)
    pod = _pod(
        securityContext={
            "seccompProfile": {"type": "Unconfined"},
            "sysctls": [{"name": "kernel.msgmax", "value": "1"}],
            "seLinuxOptions": {"type": "spc_t"},
        },
        containers=[
            {
                **_container(procMount="Unmasked", windowsOptions={"hostProcess": True}),
                "ports": [{"containerPort": 22, "hostPort": 22}],
            }
        ],
    )
    assert pod_violations(pod, policy) == []
    assert len(pod_violations(pod, DEFAULT)) == 6


def test_every_violation_is_listed_not_only_the_first() -> None:
    pod = _pod(
        hostNetwork=True,
        hostPID=True,
        serviceAccountName="admin",
        containers=[_container(privileged=True, capabilities={"add": ["SYS_ADMIN", "NET_RAW"]})],
        volumes=[{"name": "root", "hostPath": {"path": "/"}}],
    )
    assert len(pod_violations(pod, DEFAULT)) == 7


def test_the_policy_can_allow_what_it_refuses_by_default() -> None:
    policy = JobPodPolicy.from_json(
        '{"allowPrivileged":true,"allowHostNamespaces":true,"allowHostPath":true,'
        '"allowedCapabilities":["net_admin"],"serviceAccounts":["batch-runner"]}'
    )
    pod = _pod(
        hostNetwork=True,
        serviceAccountName="batch-runner",
        containers=[_container(privileged=True, capabilities={"add": ["CAP_NET_ADMIN"]})],
        volumes=[{"name": "root", "hostPath": {"path": "/data"}}],
    )
    assert pod_violations(pod, policy) == []
    # Without `default` among the accounts, leaving it unset is not a way in either.
    [unset] = pod_violations(_pod(), policy)
    assert "serviceAccountName: unset means 'default'" in unset


def test_an_empty_service_account_name_means_default() -> None:
    assert pod_violations(_pod(serviceAccountName=""), DEFAULT) == []


def test_the_shared_default_policy_is_the_unset_one() -> None:
    parsed = JobPodPolicy.from_json(
        '{"allowPrivileged":false,"allowHostNamespaces":false,"allowHostPath":false,'
        '"allowedCapabilities":[],"serviceAccounts":["default"]}'
    )
    assert parsed == DEFAULT == JobPodPolicy.from_json("{}")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[]", "JSON object"),
        ("{not json", "JSON object"),
        ('{"allowPrivilegd": true}', "allowPrivilegd"),
        ('{"allowHostPath": "yes"}', "allowHostPath"),
        ('{"serviceAccounts": "default"}', "serviceAccounts"),
        ('{"allowedCapabilities": [""]}', "allowedCapabilities"),
    ],
)
def test_a_bad_policy_is_refused_with_the_key_named(text: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        JobPodPolicy.from_json(text)


def test_kube_system_and_the_operators_own_namespace_are_always_protected() -> None:
    protected = ProtectedTargets.build(
        operator_namespace="placement-system", operator_deployment="po-placement-operator"
    )
    assert "namespace kube-system is protected" in (protected.refusal("kube-system", "dns") or "")
    refusal = protected.refusal("placement-system", "po-placement-operator")
    assert refusal is not None and "deployment/po-placement-operator" in refusal
    assert protected.refusal("placement-system", "anything-else") is not None
    assert protected.refusal("team-a", "web") is None
    assert ProtectedTargets().refusal("kube-system", "coredns") is not None


def test_configured_namespaces_and_deployments_are_protected() -> None:
    protected = ProtectedTargets.build(
        namespaces=["billing"], deployments=["team-a/ledger", "team-b/payments"]
    )
    assert protected.refusal("billing", "web") is not None
    assert protected.refusal("team-a", "ledger") is not None
    assert protected.refusal("team-a", "web") is None
    assert protected.refusal("team-b", "ledger") is None


@pytest.mark.parametrize("entry", ["ledger", "/ledger", "team-a/", "a/b/c"])
def test_a_protected_deployment_must_be_namespace_slash_name(entry: str) -> None:
    with pytest.raises(ValueError, match="PLACEMENT_PROTECTED_DEPLOYMENTS"):
        ProtectedTargets.build(deployments=[entry])


def test_the_check_sees_the_job_the_operator_would_create() -> None:
    """Fields the models pass through unnamed (hostPID, securityContext) reach the check."""
    manifest = copy.deepcopy(example_manifest())
    pod = manifest["spec"]["batch"]["jobTemplate"]["spec"]["template"]["spec"]
    pod["hostPID"] = True
    pod["containers"][0]["securityContext"] = {"privileged": True}
    spec = WorkloadPlacementSpec.model_validate(manifest["spec"])
    job = job_manifest(spec, placement="p", job_name="p-20261124-0100", window_label="x")
    violations = pod_violations(job["spec"]["template"]["spec"], DEFAULT)
    assert [v.split(":")[0] for v in violations] == [
        f"{POD_SPEC_PATH}.hostPID",
        f"{POD_SPEC_PATH}.containers[0].securityContext.privileged",
    ]


def test_apparmor_unconfined_by_annotation_is_refused_too() -> None:
    """The annotation is AppArmor's older form, still honoured: the field alone left it open."""
    key = "container.apparmor.security.beta.kubernetes.io/batch"
    template = {"metadata": {"annotations": {key: "unconfined", "team": "ml"}}, "spec": _pod()}
    [violation] = template_violations(template, DEFAULT)
    assert violation.startswith(f"{TEMPLATE_PATH}.metadata.annotations[{key}]: ")
    for confined in ("runtime/default", "localhost/k8s-batch"):
        template["metadata"]["annotations"][key] = confined
        assert template_violations(template, DEFAULT) == []
    template["metadata"]["annotations"][key] = "unconfined"
    assert template_violations(template, JobPodPolicy(allow_privileged=True)) == []
    # The pod spec's violations are the template's too, named the same way.
    [host] = template_violations({"spec": _pod(hostPID=True)}, DEFAULT)
    assert host.startswith(f"{POD_SPEC_PATH}.hostPID: ")


def test_the_operator_checks_the_annotations_of_the_job_it_would_create() -> None:
    manifest = copy.deepcopy(example_manifest())
    template = manifest["spec"]["batch"]["jobTemplate"]["spec"]["template"]
    template["metadata"] = {
        "annotations": {"container.apparmor.security.beta.kubernetes.io/batch": "unconfined"}
    }
    spec = WorkloadPlacementSpec.model_validate(manifest["spec"])
    job = job_manifest(spec, placement="p", job_name="p-20261124-0100", window_label="x")
    [violation] = template_violations(job["spec"]["template"], DEFAULT)
    assert "metadata.annotations[container.apparmor.security.beta.kubernetes.io/batch]" in (
        violation
    )


@pytest.mark.parametrize(
    "key",
    [
        "seccomp.security.alpha.kubernetes.io/pod",
        "container.seccomp.security.alpha.kubernetes.io/batch",
    ],
)
def test_seccomp_unconfined_by_annotation_is_refused_too(key: str) -> None:
    """The API server still copies the old seccomp annotations into the pod's field."""
    template = {"metadata": {"annotations": {key: "unconfined"}}, "spec": _pod()}
    [violation] = template_violations(template, DEFAULT)
    assert violation.startswith(f"{TEMPLATE_PATH}.metadata.annotations[{key}]: seccomp ")
    for confined in ("runtime/default", "docker/default", "localhost/batch.json"):
        template["metadata"]["annotations"][key] = confined
        assert template_violations(template, DEFAULT) == []
    template["metadata"]["annotations"][key] = "unconfined"
    assert template_violations(template, JobPodPolicy(allow_privileged=True)) == []


def test_a_profile_annotation_that_is_not_a_string_is_refused() -> None:
    key = "container.apparmor.security.beta.kubernetes.io/batch"
    template = {"metadata": {"annotations": {key: ["localhost/x"]}}, "spec": _pod()}
    [violation] = template_violations(template, DEFAULT)
    assert violation.startswith(f"{TEMPLATE_PATH}.metadata.annotations[{key}]: ")
