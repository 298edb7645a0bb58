"""What a batch pod may ask for, and which Deployments the operator never touches. Pure.

The operator creates Jobs and scales Deployments with its own ServiceAccount, so a placement
must not make it do what the placement's author could not: run a privileged pod (or one with
what only privilege gets: Windows hostProcess, an unmasked /proc, no seccomp or AppArmor
profile, an SELinux type, user or role of its choosing, unsafe sysctls), share the node's
namespaces, ports or filesystem, add capabilities, borrow another ServiceAccount, or scale
the operator itself or a protected namespace. The chart's admission policy refuses the same
at apply where CEL can; this is the check the operator makes itself before it creates a Job,
so a placement written past the policy (by an admin, or before the policy existed) is
refused too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# The field path every violation is named under: what the placement's author wrote.
TEMPLATE_PATH = "spec.batch.jobTemplate.spec.template"
POD_SPEC_PATH = f"{TEMPLATE_PATH}.spec"
# The profiles' older annotation forms, still honoured (the API server copies each into the
# pod's field when the field is unset): key prefix, profile, the values besides localhost/<...>
# that keep it confined. Anything else (unconfined) turns the filter off.
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_ANNOTATION = "container.seccomp.security.alpha.kubernetes.io/"
PROFILE_ANNOTATIONS = (
    (APPARMOR_ANNOTATION, "AppArmor", ("runtime/default",)),
    (SECCOMP_POD_ANNOTATION, "seccomp", ("runtime/default", "docker/default")),
    (SECCOMP_ANNOTATION, "seccomp", ("runtime/default", "docker/default")),
)
HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
# Pod Security's baseline values: a seccomp or AppArmor profile may only be the runtime's
# default or one loaded on the node; Unconfined (or anything else) turns the filter off.
CONFINED_PROFILES = ("RuntimeDefault", "Localhost")
# Pod Security baseline's SELinux types (1.31); a user or role of the pod's choosing is refused.
SELINUX_TYPES = ("container_t", "container_init_t", "container_kvm_t", "container_engine_t")
# Kubernetes' safe sysctls (Pod Security baseline, 1.29): namespaced and isolated from the
# node and the other pods. Any other one changes the node or needs the kubelet's allowlist.
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ping_group_range",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_syncookies",
    }
)
# Always protected, whatever the configuration says: the control plane's own namespace.
ALWAYS_PROTECTED_NAMESPACES = ("kube-system",)

_POLICY_KEYS = {
    "allowPrivileged",
    "allowHostNamespaces",
    "allowHostPath",
    "allowedCapabilities",
    "serviceAccounts",
}


def capability(name: str) -> str:
    """NET_ADMIN, net_admin and CAP_NET_ADMIN are one capability."""
    upper = name.strip().upper()
    return upper[4:] if upper.startswith("CAP_") else upper


@dataclass(frozen=True)
class JobPodPolicy:
    """PLACEMENT_JOB_POD_POLICY; the defaults refuse everything Pod Security's baseline does
    among these fields, and every ServiceAccount but `default`.

    `allow_privileged` also allows what only a privileged pod gets otherwise: a Windows
    hostProcess pod, procMount Unmasked, seccomp or AppArmor Unconfined, any SELinux options,
    unsafe sysctls.
    `allow_host_namespaces` also allows host ports (hostNetwork has all of them)."""

    allow_privileged: bool = False
    allow_host_namespaces: bool = False
    allow_host_path: bool = False
    allowed_capabilities: frozenset[str] = frozenset()
    service_accounts: tuple[str, ...] = ("default",)

    @classmethod
    def from_json(cls, text: str, *, setting: str = "PLACEMENT_JOB_POD_POLICY") -> JobPodPolicy:
        """Parse the JSON object; a bad key or type raises ValueError naming it."""
        try:
            raw = json.loads(text)
        except ValueError as error:
            raise ValueError(f"{setting} must be a JSON object: {error}") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{setting} must be a JSON object, got {type(raw).__name__}")
        unknown = sorted(set(raw) - _POLICY_KEYS)
        if unknown:
            raise ValueError(
                f"{setting}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_POLICY_KEYS))})"
            )
        flags: dict[str, bool] = {}
        for key in ("allowPrivileged", "allowHostNamespaces", "allowHostPath"):
            value = raw.get(key, False)
            if not isinstance(value, bool):
                raise ValueError(f"{setting}.{key} must be true or false, got {value!r}")
            flags[key] = value
        capabilities = _strings(
            raw.get("allowedCapabilities", []), f"{setting}.allowedCapabilities"
        )
        accounts = _strings(raw.get("serviceAccounts", ["default"]), f"{setting}.serviceAccounts")
        return cls(
            allow_privileged=flags["allowPrivileged"],
            allow_host_namespaces=flags["allowHostNamespaces"],
            allow_host_path=flags["allowHostPath"],
            allowed_capabilities=frozenset(capability(c) for c in capabilities),
            service_accounts=tuple(accounts),
        )


def _strings(value: object, setting: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{setting} must be a list of non-empty strings, got {value!r}")
    return [v.strip() for v in value]


def _set(value: object) -> bool:
    # Anything but absent or false counts: the API server would refuse a wrong type anyway,
    # and a check that reads "true" as not set would be the one way past it.
    return value is not None and value is not False


def pod_violations(
    pod_spec: Mapping[str, Any], policy: JobPodPolicy, *, path: str = POD_SPEC_PATH
) -> list[str]:
    """Each field of the batch pod the policy refuses, as `<field>: <why>`; empty: allowed."""
    return [
        *_shape_violations(pod_spec, path),
        *_host_violations(pod_spec, policy, path),
        *_pod_context_violations(pod_spec, policy, path),
        *_account_violations(pod_spec, policy, path),
        *_container_violations(pod_spec, policy, path),
    ]


def template_violations(
    template: Mapping[str, Any], policy: JobPodPolicy, *, path: str = TEMPLATE_PATH
) -> list[str]:
    """`pod_violations` of the pod template's spec, and of its AppArmor and seccomp
    annotations."""
    spec = template.get("spec")
    found = pod_violations(spec if isinstance(spec, Mapping) else {}, policy, path=f"{path}.spec")
    metadata = template.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    if policy.allow_privileged or not isinstance(annotations, Mapping):
        return found
    for key, value in annotations.items():
        for prefix, profile, confined in PROFILE_ANNOTATIONS:
            if not str(key).startswith(prefix):
                continue
            # A value that is not a string is no profile the check can vouch for.
            if not isinstance(value, str) or not (
                value in confined or value.startswith("localhost/")
            ):
                found.append(
                    f"{path}.metadata.annotations[{key}]: {profile} profile {value} is not "
                    f"allowed (only {' or '.join(confined)} or localhost/<profile>)"
                )
    return found


# The securityContext fields the policy reads, and the JSON type each must have: any other
# value is refused naming it (whatever the policy allows), as the chart's policy does and as
# the API server would refuse the Job; read as absent, it would pass every check unseen.
_CONTEXT_SHAPES: tuple[tuple[str, type, str], ...] = (
    ("seccompProfile", Mapping, "an object"),
    ("appArmorProfile", Mapping, "an object"),
    ("seLinuxOptions", Mapping, "an object"),
    ("windowsOptions", Mapping, "an object"),
    ("capabilities", Mapping, "an object"),
    ("sysctls", list, "a list"),
)


def _shape_violations(pod_spec: Mapping[str, Any], path: str) -> list[str]:
    """The pod's and each container's securityContext, and the fields of it the policy
    reads, that are not of their type."""
    contexts = [(pod_spec.get("securityContext"), f"{path}.securityContext")]
    for list_key in CONTAINER_LISTS:
        for index, container in enumerate(_items(pod_spec.get(list_key))):
            contexts.append(
                (container.get("securityContext"), f"{path}.{list_key}[{index}].securityContext")
            )
    found: list[str] = []
    for context, where in contexts:
        if context is None:
            continue
        if not isinstance(context, Mapping):
            found.append(f"{where}: {context!r} is not an object")
            continue
        for key, kind, described in _CONTEXT_SHAPES:
            value = context.get(key)
            if value is not None and not isinstance(value, kind):
                found.append(f"{where}.{key}: {value!r} is not {described}")
        capabilities = context.get("capabilities")
        added = capabilities.get("add") if isinstance(capabilities, Mapping) else None
        if added is not None and not isinstance(added, list):
            found.append(f"{where}.capabilities.add: {added!r} is not a list")
    return found


def _host_violations(pod_spec: Mapping[str, Any], policy: JobPodPolicy, path: str) -> list[str]:
    found: list[str] = []
    if not policy.allow_host_namespaces:
        for key in HOST_NAMESPACES:
            if _set(pod_spec.get(key)):
                found.append(f"{path}.{key}: host namespaces are not allowed")
    if not policy.allow_host_path:
        for index, volume in enumerate(_items(pod_spec.get("volumes"))):
            if _set(volume.get("hostPath")):
                found.append(f"{path}.volumes[{index}].hostPath: hostPath volumes are not allowed")
    return found


def _pod_context_violations(
    pod_spec: Mapping[str, Any], policy: JobPodPolicy, path: str
) -> list[str]:
    context = pod_spec.get("securityContext")
    if policy.allow_privileged or not isinstance(context, Mapping):
        return []
    where = f"{path}.securityContext"
    found = _unconfined(context, where)
    for index, sysctl in enumerate(_items(context.get("sysctls"))):
        name = sysctl.get("name")
        # A name that is not a string (a list, a map, null) is not a safe sysctl either;
        # `in` on the set would raise for the unhashable ones.
        if not isinstance(name, str) or name not in SAFE_SYSCTLS:
            found.append(
                f"{where}.sysctls[{index}].name: sysctl {name} is not allowed (only Kubernetes' "
                f"safe sysctls: {', '.join(sorted(SAFE_SYSCTLS))})"
            )
    return found


def _unconfined(context: Mapping[str, Any], where: str) -> list[str]:
    """What a pod's or a container's securityContext turns off that only a privileged pod
    may: Windows hostProcess, the seccomp and AppArmor profiles, SELinux options."""
    found: list[str] = []
    windows = context.get("windowsOptions")
    if isinstance(windows, Mapping) and _set(windows.get("hostProcess")):
        found.append(f"{where}.windowsOptions.hostProcess: Windows hostProcess is not allowed")
    for key in ("seccompProfile", "appArmorProfile"):
        profile = context.get(key)
        kind = profile.get("type") if isinstance(profile, Mapping) else None
        if kind is not None and kind not in CONFINED_PROFILES:
            found.append(
                f"{where}.{key}.type: {kind} is not allowed (only {' or '.join(CONFINED_PROFILES)})"
            )
    return found + _selinux_violations(context.get("seLinuxOptions"), f"{where}.seLinuxOptions")


def _selinux_violations(options: object, where: str) -> list[str]:
    """Pod Security baseline's SELinux rule: a container type, no user or role."""
    if options is None:
        return []
    if not isinstance(options, Mapping):
        return []  # _shape_violations names it
    found: list[str] = []
    kind = options.get("type")
    if kind not in (None, "") and kind not in SELINUX_TYPES:  # a tuple: no hashing
        found.append(
            f"{where}.type: {kind} is not allowed (only {', '.join(SELINUX_TYPES)} or unset)"
        )
    for key in ("user", "role"):
        if options.get(key) not in (None, ""):
            found.append(f"{where}.{key}: {options.get(key)} is not allowed (only unset)")
    return found


def _account_violations(pod_spec: Mapping[str, Any], policy: JobPodPolicy, path: str) -> list[str]:
    found: list[str] = []
    for key in ("serviceAccountName", "serviceAccount"):  # the second is the deprecated alias
        account = pod_spec.get(key)
        if account not in (None, "") and account not in policy.service_accounts:
            found.append(
                f"{path}.{key}: ServiceAccount {account!r} is not allowed (allowed: "
                f"{', '.join(policy.service_accounts) or 'none'})"
            )
    unset = not pod_spec.get("serviceAccountName") and not pod_spec.get("serviceAccount")
    if unset and "default" not in policy.service_accounts:
        found.append(
            f"{path}.serviceAccountName: unset means 'default', which is not allowed "
            f"(allowed: {', '.join(policy.service_accounts) or 'none'})"
        )
    return found


def _container_violations(
    pod_spec: Mapping[str, Any], policy: JobPodPolicy, path: str
) -> list[str]:
    found: list[str] = []
    for list_key in CONTAINER_LISTS:
        for index, container in enumerate(_items(pod_spec.get(list_key))):
            at = f"{path}.{list_key}[{index}]"
            if not policy.allow_host_namespaces:
                found += _host_port_violations(container, at)
            context = container.get("securityContext")
            if isinstance(context, Mapping):
                found += _context_violations(context, policy, f"{at}.securityContext")
    return found


def _host_port_violations(container: Mapping[str, Any], at: str) -> list[str]:
    return [
        f"{at}.ports[{index}].hostPort: host ports are not allowed"
        for index, port in enumerate(_items(container.get("ports")))
        if _set(port.get("hostPort")) and port.get("hostPort") != 0  # 0: none
    ]


def _context_violations(context: Mapping[str, Any], policy: JobPodPolicy, where: str) -> list[str]:
    found: list[str] = []
    if not policy.allow_privileged:
        if _set(context.get("privileged")):
            found.append(f"{where}.privileged: privileged containers are not allowed")
        found += _unconfined(context, where)
        mount = context.get("procMount")
        if mount is not None and mount != "Default":
            found.append(f"{where}.procMount: {mount} is not allowed (only Default)")
    capabilities = context.get("capabilities")
    added = capabilities.get("add") if isinstance(capabilities, Mapping) else None
    for name in added if isinstance(added, list) else []:
        if capability(str(name)) not in policy.allowed_capabilities:
            found.append(
                f"{where}.capabilities.add: {name} is not allowed (allowed: "
                f"{', '.join(sorted(policy.allowed_capabilities)) or 'none'})"
            )
    return found


def _items(value: object) -> Iterable[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


@dataclass(frozen=True)
class ProtectedTargets:
    """Deployments the operator never scales and namespaces where it never creates a Job."""

    namespaces: frozenset[str] = frozenset(ALWAYS_PROTECTED_NAMESPACES)
    deployments: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    @classmethod
    def build(
        cls,
        *,
        namespaces: Iterable[str] = (),
        deployments: Iterable[str] = (),
        operator_namespace: str | None = None,
        operator_deployment: str | None = None,
    ) -> ProtectedTargets:
        """`deployments` as `namespace/name`; the operator's own namespace and kube-system are
        always added. A malformed entry raises ValueError naming it."""
        protected_namespaces = set(ALWAYS_PROTECTED_NAMESPACES) | {n for n in namespaces if n}
        if operator_namespace:
            protected_namespaces.add(operator_namespace)
        pairs: set[tuple[str, str]] = set()
        for entry in deployments:
            namespace, slash, name = entry.partition("/")
            if not slash or not namespace or not name or "/" in name:
                raise ValueError(
                    f"PLACEMENT_PROTECTED_DEPLOYMENTS entries are namespace/name, got {entry!r}"
                )
            pairs.add((namespace, name))
        if operator_namespace and operator_deployment:
            pairs.add((operator_namespace, operator_deployment))
        return cls(frozenset(protected_namespaces), frozenset(pairs))

    def refusal(self, namespace: str, deployment: str) -> str | None:
        """Why the operator must not touch deployment/`deployment` in `namespace`, or None."""
        if (namespace, deployment) in self.deployments:
            return (
                f"spec.target.deployment: deployment/{deployment} in namespace {namespace} is "
                "protected (the operator's own Deployment or listed in "
                "PLACEMENT_PROTECTED_DEPLOYMENTS); the operator never scales it or creates its Jobs"
            )
        if namespace in self.namespaces:
            return (
                f"metadata.namespace: namespace {namespace} is protected (kube-system, the "
                "operator's own namespace or listed in PLACEMENT_PROTECTED_NAMESPACES); the "
                "operator never scales a Deployment or creates a Job there"
            )
        return None
