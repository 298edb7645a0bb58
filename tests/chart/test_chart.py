"""The Helm chart: lint, a rendered snapshot, and the properties a reviewer would check by
hand (labels, security context, probes, RBAC), in both cluster-wide and namespaced mode."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any, cast

import promql_parser as promql
import pytest
import yaml

from placement.adapters.telemetry import Telemetry
from placement.core.jobpolicy import SAFE_SYSCTLS, SELINUX_TYPES
from placement.core.reasons import Reason
from placement.localenv import tools
from placement.runtime.config import OperatorConfig
from tests.chart.helm import (
    CHART,
    KUBE_VERSION,
    PROMETHEUS_URL,
    ROOT,
    find,
    helm,
    objects,
    render,
)

CLUSTER_VALUES = str(CHART / "ci" / "cluster-values.yaml")
NAMESPACED_VALUES = str(CHART / "ci" / "namespaced-values.yaml")
HA_VALUES = str(CHART / "ci" / "ha-values.yaml")
SNAPSHOTS = Path(__file__).parent / "snapshots"

# Every permission the operator's code uses, and nothing else: (apiGroup, resource) -> verbs.
APPLICATION_RULES = {
    ("placement.runplacement.io", "workloadplacements"): {"get", "list", "watch", "patch"},
    ("placement.runplacement.io", "workloadplacements/status"): {"patch"},
    ("placement.runplacement.io", "workloadplacements/finalizers"): {"update"},
    ("", "events"): {"create"},
    # The watch caches (adapters/kubewatch.py) list and watch what an evaluation reads.
    ("apps", "deployments"): {"get", "list", "watch", "patch"},
    ("batch", "jobs"): {"create", "list", "watch", "delete"},
    ("autoscaling", "horizontalpodautoscalers"): {"list", "watch"},
    ("keda.sh", "scaledobjects"): {"list", "watch", "create", "patch", "delete"},
}
CLUSTER_ONLY_RULES = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
}


def _rules(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                found.setdefault((group, resource), set()).update(rule["verbs"])
    return found


@pytest.mark.parametrize(
    "values", [[], ["-f", CLUSTER_VALUES], ["-f", NAMESPACED_VALUES], ["-f", HA_VALUES]]
)
def test_lint_strict_passes(values: list[str]) -> None:
    result = helm("lint", "--strict", str(CHART), *values)
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("name", ["cluster", "namespaced", "ha"])
def test_rendered_templates_match_the_snapshot(name: str) -> None:
    rendered = render("-f", str(CHART / "ci" / f"{name}-values.yaml"))
    snapshot = SNAPSHOTS / f"{name}.yaml"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        snapshot.write_text(rendered)
    assert rendered == snapshot.read_text(), (
        f"the chart renders differently from {snapshot.name}; if intended, run "
        "`make chart-snapshots` and review the diff"
    )


def test_the_charts_crds_are_the_same_bytes_as_crds() -> None:
    # The WorkloadPlacement CRD is a template (files/crds/, so upgrades upgrade it); kopf's
    # peering CRDs stay in crds/ (Helm installs them before the peering object).
    names = sorted(path.name for path in (ROOT / "crds").glob("*.yaml"))
    copies = sorted([*(CHART / "crds").glob("*.yaml"), *(CHART / "files" / "crds").glob("*.yaml")])
    assert names == sorted(path.name for path in copies)
    for copy in copies:
        assert copy.read_bytes() == (ROOT / "crds" / copy.name).read_bytes(), copy


def test_the_crd_template_is_the_generated_crd_kept_on_uninstall() -> None:
    committed = yaml.safe_load(
        (ROOT / "crds" / "workloadplacements.placement.runplacement.io.yaml").read_text()
    )
    manifest = render("-f", CLUSTER_VALUES)
    [rendered] = find(objects(manifest), "CustomResourceDefinition")
    assert rendered["spec"] == committed["spec"]
    # Byte for byte what `make crd` generated, but for the metadata the release adds.
    text = manifest.split("# Source: placement-operator/templates/crds.yaml\n")[1]
    text = text.split("\n---")[0]
    added = re.compile(r"^  (labels|annotations):\n(    .*\n)+", re.MULTILINE)
    generated = (ROOT / "crds" / "workloadplacements.placement.runplacement.io.yaml").read_text()
    assert added.sub("", text).rstrip("\n") == generated.rstrip("\n")
    assert rendered["metadata"]["name"] == committed["metadata"]["name"]
    assert rendered["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert rendered["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"

    [unkept] = find(
        objects(render("-f", CLUSTER_VALUES, "--set", "crds.keep=false")),
        "CustomResourceDefinition",
    )
    assert "annotations" not in unkept["metadata"]
    elsewhere = objects(render("-f", CLUSTER_VALUES, "--set", "crds.install=false"))
    assert find(elsewhere, "CustomResourceDefinition") == []


def test_a_missing_prometheus_url_is_refused_with_the_value_named() -> None:
    result = helm("template", "po", str(CHART), "--kube-version", "1.36.3", check=False)
    assert result.returncode != 0
    assert "prometheus.url is required" in result.stderr


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("logFormat=xml", "logFormat"),
        ("prometheus.url=ftp://prometheus", "url"),
        ("postingLevel=LOUD", "postingLevel"),
        ("watchNamespaces[0]=Not_A_Namespace", "watchNamespaces"),
        ("metrics.port=0", "port"),
        ("replicas=2", "replicas"),
        ("history.refresh=an hour", "refresh"),
    ],
)
def test_the_values_schema_refuses_bad_values_by_name(setting: str, field: str) -> None:
    result = helm(
        "template",
        "po",
        str(CHART),
        "--kube-version",
        "1.36.3",
        "--set",
        f"prometheus.url={PROMETHEUS_URL}",
        "--set",
        setting,
        check=False,
    )
    assert result.returncode != 0
    assert field in result.stderr


def test_every_object_carries_the_recommended_labels() -> None:
    for doc in objects(render("-f", NAMESPACED_VALUES)):
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "placement-operator", doc["kind"]
        assert labels["app.kubernetes.io/instance"] == "po"
        assert labels["app.kubernetes.io/version"] == "0.1.0"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "placement-operator-0.1.0"


def test_the_operator_runs_locked_down_with_a_liveness_probe() -> None:
    [deployment] = find(objects(render("-f", CLUSTER_VALUES)), "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    assert container["image"] == "ghcr.io/runplacement/placement-operator:0.1.0"
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    probe = container["livenessProbe"]
    assert probe["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"health": 8080, "metrics": 8081}
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    assert container["resources"]["limits"]["memory"] == "256Mi"
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["PLACEMENT_PROMETHEUS_URL"] == PROMETHEUS_URL
    assert env["PLACEMENT_METRICS_ADDRESS"] == "0.0.0.0:8081"


def test_cluster_mode_grants_exactly_what_the_code_uses() -> None:
    docs = objects(render("-f", CLUSTER_VALUES))
    [role] = find(docs, "ClusterRole")
    assert _rules(role) == APPLICATION_RULES | CLUSTER_ONLY_RULES
    [binding] = find(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "po-placement-operator", "namespace": "placement-system"}
    ]
    assert find(docs, "Role") == [] and find(docs, "ServiceMonitor") == []


def test_namespaced_mode_has_no_cluster_wide_permission() -> None:
    docs = objects(render("-f", NAMESPACED_VALUES))
    assert find(docs, "ClusterRole") == [] and find(docs, "ClusterRoleBinding") == []
    roles = find(docs, "Role")
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["team-a", "team-b"]
    for role in roles:
        assert _rules(role) == APPLICATION_RULES
    assert len(find(docs, "RoleBinding")) == 2
    [deployment] = find(docs, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args


def test_no_rule_reads_secrets_or_uses_wildcards() -> None:
    for values in (CLUSTER_VALUES, NAMESPACED_VALUES):
        for role in find(objects(render("-f", values)), "ClusterRole") + find(
            objects(render("-f", values)), "Role"
        ):
            for rule in role["rules"]:
                assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
                assert "secrets" not in rule["resources"]


def test_rules_are_grouped_as_framework_or_application() -> None:
    for values in (CLUSTER_VALUES, NAMESPACED_VALUES):
        lines = render("-f", values).splitlines()
        for index, line in enumerate(lines):
            if not line.strip().startswith("- apiGroups:"):
                continue
            # The comment block above the rule (or above the rules before it, same group).
            above = index - 1
            while not lines[above].strip().startswith("#"):
                above -= 1
            while lines[above - 1].strip().startswith("#"):
                above -= 1
            assert lines[above].strip().startswith(("# Framework:", "# Application:")), line


def test_service_monitor_only_when_enabled() -> None:
    docs = objects(render("-f", NAMESPACED_VALUES))
    [monitor] = find(docs, "ServiceMonitor")
    [service] = find(docs, "Service")
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


def _leaf_values(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict) and node:
        return [leaf for k, v in node.items() for leaf in _leaf_values(v, f"{prefix}{k}.")]
    return [prefix.rstrip(".")]


def _documented_keys(values_text: str) -> set[str]:
    """Key paths with a `# --` comment right above them (helm-docs' convention)."""
    documented: set[str] = set()
    path: list[str] = []
    commented = False
    for line in values_text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            commented = True
            continue
        if stripped.startswith("#") or not stripped:
            continue
        match = re.match(r"^(\s*)([A-Za-z][\w.-]*):", line)
        if match is None:
            commented = False
            continue
        depth = len(match.group(1)) // 2
        path = [*path[:depth], match.group(2)]
        if commented:
            documented.add(".".join(path))
        commented = False
    return documented


def test_every_value_has_a_description_in_values_yaml_and_the_reference() -> None:
    text = (CHART / "values.yaml").read_text()
    documented = _documented_keys(text)
    reference = (ROOT / "docs" / "reference.md").read_text()
    for leaf in _leaf_values(yaml.safe_load(text)):
        parts = leaf.split(".")
        described = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
        assert any(key in documented for key in described), f"{leaf} has no `# --` comment"
        assert any(f"`{key}`" in reference for key in described), (
            f"{leaf} missing from docs/reference.md: run `make docs`"
        )


def test_values_schema_is_valid_json_and_covers_every_top_level_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) == set(schema["properties"])


def test_several_replicas_share_a_peering_object_with_the_rights_for_it() -> None:
    docs = objects(render("-f", HA_VALUES))
    [deployment] = find(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert "--peering=po-placement-operator" in container["args"]
    assert "--standalone" not in container["args"]
    assert container["env"][0]["name"] == "POD_ID"
    [peering] = find(docs, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "po-placement-operator"
    [role] = find(docs, "ClusterRole")
    assert _rules(role) == APPLICATION_RULES | CLUSTER_ONLY_RULES | {
        ("kopf.dev", "clusterkopfpeerings"): {"list", "watch", "patch"}
    }
    namespaced = objects(render("-f", NAMESPACED_VALUES, "--set", "replicaCount=2"))
    assert sorted(p["metadata"]["namespace"] for p in find(namespaced, "KopfPeering")) == [
        "team-a",
        "team-b",
    ]
    for role in find(namespaced, "Role"):
        assert _rules(role)[("kopf.dev", "kopfpeerings")] == {"list", "watch", "patch"}


# -- adoptable: subchart, extra settings, Prometheus connection, HA ------------------------


def _container(*values: str) -> dict[str, Any]:
    [deployment] = find(objects(render("-f", CLUSTER_VALUES, *values)), "Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return cast(dict[str, Any], container)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def test_the_chart_works_as_a_subchart_with_global_values() -> None:
    # Helm passes `global` to every subchart; a strict schema must not refuse it.
    render("-f", CLUSTER_VALUES, "--set", "global.imageRegistry=registry.example")


@pytest.mark.parametrize("interval", ["30s", "1m30s", "2h", "500ms"])
def test_prometheus_operator_durations_are_accepted(interval: str) -> None:
    docs = objects(
        render(
            "-f",
            NAMESPACED_VALUES,
            "--set",
            f"serviceMonitor.interval={interval}",
            "--set",
            "serviceMonitor.scrapeTimeout=10s",
        )
    )
    [monitor] = find(docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["interval"] == interval


def test_a_duration_prometheus_could_not_read_is_refused_by_name() -> None:
    result = helm(
        "template",
        "po",
        str(CHART),
        "--kube-version",
        KUBE_VERSION,
        "-f",
        CLUSTER_VALUES,
        "--set",
        "serviceMonitor.interval=90 seconds",
        check=False,
    )
    assert result.returncode != 0 and "interval" in result.stderr


def test_log_level_and_job_history_reach_the_operator() -> None:
    env = _env(_container("--set", "logLevel=DEBUG", "--set", "jobHistory.successful=5"))
    assert env["PLACEMENT_LOG_LEVEL"] == "DEBUG"
    assert env["PLACEMENT_JOB_HISTORY_SUCCESSFUL"] == "5"
    assert env["PLACEMENT_JOB_HISTORY_FAILED"] == "1"


def test_the_history_refresh_reaches_the_operator_as_it_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _env(_container())["PLACEMENT_HISTORY_REFRESH"] == "1h"
    refresh = _env(_container("--set", "history.refresh=30m"))["PLACEMENT_HISTORY_REFRESH"]
    monkeypatch.setenv("PLACEMENT_HISTORY_REFRESH", refresh)
    config = OperatorConfig.from_environment(prometheus_url=PROMETHEUS_URL)
    assert config.history_refresh_seconds == 1800


def test_extra_env_args_and_volumes_are_added_after_the_charts_own(tmp_path: Path) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        yaml.safe_dump(
            {
                "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
                "extraArgs": ["--metrics-max-age=30"],
                "extraVolumes": [{"name": "cache", "emptyDir": {}}],
                "extraVolumeMounts": [{"name": "cache", "mountPath": "/cache"}],
            }
        )
    )
    [deployment] = find(objects(render("-f", CLUSTER_VALUES, "-f", str(extra))), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"][-1] == "--metrics-max-age=30"
    assert _env(container)["HTTPS_PROXY"] == "http://proxy:3128"
    assert {"name": "cache", "emptyDir": {}} in pod["volumes"]
    assert {"name": "cache", "mountPath": "/cache"} in container["volumeMounts"]


def test_prometheus_credentials_come_from_secrets_never_from_values(tmp_path: Path) -> None:
    settings = tmp_path / "prometheus.yaml"
    settings.write_text(
        yaml.safe_dump(
            {
                "prometheus": {
                    "url": "https://mimir.example/prometheus",
                    "bearerToken": {"secretName": "prom-token", "key": "jwt"},
                    "basicAuth": {"secretName": "prom-basic"},
                    "caBundle": {"configMapName": "internal-ca"},
                    "headers": {"X-Scope-OrgID": "team-a"},
                }
            }
        )
    )
    [deployment] = find(objects(render("-f", str(settings))), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = _env(container)
    assert env["PLACEMENT_PROMETHEUS_BEARER_TOKEN"] == {
        "secretKeyRef": {"name": "prom-token", "key": "jwt"}
    }
    assert env["PLACEMENT_PROMETHEUS_BASIC_AUTH_USERNAME"] == {
        "secretKeyRef": {"name": "prom-basic", "key": "username"}
    }
    assert env["PLACEMENT_PROMETHEUS_BASIC_AUTH_PASSWORD"] == {
        "secretKeyRef": {"name": "prom-basic", "key": "password"}
    }
    assert json.loads(env["PLACEMENT_PROMETHEUS_HEADERS"]) == {"X-Scope-OrgID": "team-a"}
    ca_file = Path(env["PLACEMENT_PROMETHEUS_CA_FILE"])
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "prometheus-ca"]
    assert mount["readOnly"] is True and ca_file.parent == Path(mount["mountPath"])
    [volume] = [v for v in pod["volumes"] if v["name"] == "prometheus-ca"]
    assert volume["configMap"] == {
        "name": "internal-ca",
        "items": [{"key": "ca.crt", "path": ca_file.name}],
    }
    # Without the settings, nothing of it appears.
    plain = _env(_container())
    assert not [
        name
        for name in plain
        if name.startswith("PLACEMENT_PROMETHEUS_")
        and name
        not in (
            "PLACEMENT_PROMETHEUS_URL",
            "PLACEMENT_PROMETHEUS_TIMEOUT",
        )
    ]


def test_a_ca_bundle_from_both_a_secret_and_a_config_map_is_refused() -> None:
    result = helm(
        "template",
        "po",
        str(CHART),
        "--kube-version",
        KUBE_VERSION,
        "-f",
        CLUSTER_VALUES,
        "--set",
        "prometheus.caBundle.secretName=a",
        "--set",
        "prometheus.caBundle.configMapName=b",
        check=False,
    )
    assert result.returncode != 0 and "caBundle" in result.stderr


def test_several_replicas_get_a_disruption_budget_and_spread_over_nodes() -> None:
    single = objects(render("-f", CLUSTER_VALUES))
    assert find(single, "PodDisruptionBudget") == []
    [deployment] = find(single, "Deployment")
    assert "topologySpreadConstraints" not in deployment["spec"]["template"]["spec"]

    docs = objects(render("-f", HA_VALUES))
    [budget] = find(docs, "PodDisruptionBudget")
    [deployment] = find(docs, "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert budget["spec"] == {"minAvailable": 1, "selector": {"matchLabels": selector}}
    [spread] = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"] == selector


# -- alerts and dashboard: every query parses and names a metric the operator exports ------


def _operator_metric_names() -> set[str]:
    names: set[str] = set()
    for family in Telemetry().registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
        names.update(family.name + suffix for suffix in suffixes.get(family.type, [""]))
    return names


def _metrics_in(expression: str) -> set[str]:
    # Grafana's interval variables are not PromQL; any duration stands in for them.
    parsed = promql.parse(expression.replace("$__rate_interval", "5m"))
    found: set[str] = set()

    def visit(node: promql.Expr) -> None:
        if isinstance(node, promql.VectorSelector) and node.name:
            found.add(node.name)

    promql.walk(parsed, pre_visit=visit)
    return found


def test_the_alerts_parse_and_use_only_the_operators_metrics() -> None:
    assert find(objects(render("-f", CLUSTER_VALUES)), "PrometheusRule") == []
    [rule] = find(
        objects(render("-f", CLUSTER_VALUES, "--set", "prometheusRule.enabled=true")),
        "PrometheusRule",
    )
    [group] = rule["spec"]["groups"]
    alerts = {entry["alert"]: entry for entry in group["rules"]}
    assert set(alerts) == {
        "PlacementFallback",
        "PlacementBatchWindowMissed",
        "PlacementMetricsUnavailable",
        "PlacementBlocked",
    }
    exported = _operator_metric_names()
    for name, alert in alerts.items():
        used = _metrics_in(alert["expr"])
        assert used and used <= exported, (name, used - exported)
        assert alert["labels"]["severity"] == "warning"
    reasons = {str(reason) for reason in Reason}
    for quoted in re.findall(r'reason=~?"([^"]+)"', " ".join(a["expr"] for a in alerts.values())):
        assert set(quoted.split("|")) <= reasons, quoted


def test_promtool_accepts_the_alerting_rules(tmp_path: Path) -> None:
    """Prometheus' own checker: expressions, `for` durations and annotation templates."""
    [rule] = find(
        objects(render("-f", CLUSTER_VALUES, "--set", "prometheusRule.enabled=true")),
        "PrometheusRule",
    )
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule["spec"]))
    checked = subprocess.run(
        [str(tools.binary("promtool")), "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "4 rules found" in checked.stdout


def test_the_dashboard_parses_and_uses_only_the_operators_metrics() -> None:
    assert find(objects(render("-f", CLUSTER_VALUES)), "ConfigMap") == []
    [config_map] = find(
        objects(render("-f", CLUSTER_VALUES, "--set", "grafanaDashboard.enabled=true")),
        "ConfigMap",
    )
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["placement-operator.json"])
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for topic in ("savings per placement", "decisions", "fallbacks"):
        assert topic in titles
    exported = _operator_metric_names()
    used: set[str] = set()
    for expression in expressions:
        used |= _metrics_in(expression)
    assert used <= exported, used - exported
    assert {
        "placement_decisions_total",
        "placement_estimated_savings_per_day",
    } <= used


def _admission(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    [policy] = find(docs, "ValidatingAdmissionPolicy")
    [binding] = find(docs, "ValidatingAdmissionPolicyBinding")
    return policy, binding


def test_placements_are_admitted_only_with_their_authors_own_rights() -> None:
    policy, binding = _admission(objects(render("-f", CLUSTER_VALUES)))
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    [rule] = spec["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["workloadplacements"]
    assert rule["operations"] == ["CREATE", "UPDATE"]
    variables = {v["name"]: v["expression"] for v in spec["variables"]}
    assert "resource('jobs')" in variables["canCreateJobs"]
    assert ".check('create')" in variables["canCreateJobs"]
    assert "subresource('scale')" in variables["canScale"]
    assert ".name(variables.target).check('update')" in variables["canScale"]
    # Async mode: only an author who may create ScaledObjects there may ask for one.
    assert variables["canAutoscale"].startswith("!has(object.spec.async)")
    assert "resource('scaledobjects')" in variables["canAutoscale"]
    assert ".check('create')" in variables["canAutoscale"]
    expressions = "\n".join(v["expression"] for v in spec["validations"])
    for refused in (
        "privileged",
        "hostNetwork",
        "hostPath",
        "capabilities.add",
        "serviceAccountName",
        "hostPort",
        "windowsOptions.hostProcess",
        "seccompProfile",
        "appArmorProfile",
        "procMount",
        "sysctls",
        "container.apparmor.security.beta.kubernetes.io/",
        "seccomp.security.alpha.kubernetes.io/pod",
        "container.seccomp.security.alpha.kubernetes.io/",
        "seLinuxOptions",
    ):
        assert refused in expressions, refused
    # The operator's own list of safe sysctls, the one list both refuse by.
    assert str(sorted(SAFE_SYSCTLS)).replace('"', "'").replace(", ", ",") in expressions
    # And its SELinux types (unset, '', is allowed too).
    assert str(["", *SELINUX_TYPES]).replace(", ", ",") in expressions
    # kube-system, the release's namespace and the operator's own Deployment, always.
    assert "['kube-system','placement-system']" in expressions
    assert "['placement-system/po-placement-operator']" in expressions
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert "matchResources" not in binding["spec"]  # cluster-wide mode: every namespace


def test_the_admission_policy_follows_the_values() -> None:
    docs = objects(
        render(
            "-f",
            NAMESPACED_VALUES,
            "--set",
            "jobPodPolicy.allowPrivileged=true",
            "--set",
            "jobPodPolicy.allowHostNamespaces=true",
            "--set",
            "jobPodPolicy.allowedCapabilities={cap_net_admin}",
            "--set",
            "jobPodPolicy.serviceAccounts={batch}",
            "--set",
            "protectedNamespaces={billing}",
            "--set",
            "protectedDeployments={team-a/ledger}",
        )
    )
    policy, binding = _admission(docs)
    # The type check of securityContext's fields names them but refuses no value of the
    # right type: it stays whatever the policy allows.
    shape = [
        v for v in policy["spec"]["validations"] if "must be an object" in v.get("message", "")
    ]
    assert len(shape) == 1
    expressions = "\n".join(
        v["expression"] for v in policy["spec"]["validations"] if v not in shape
    )
    # What privilege or host namespaces include is allowed with them.
    for allowed in (
        "privileged",
        "hostProcess",
        "seccompProfile",
        "procMount",
        "sysctls",
        "apparmor",
        "seccomp.security",
        "seLinuxOptions",
    ):
        assert allowed not in expressions, allowed
    assert "hostNetwork" not in expressions and "hostPort" not in expressions
    assert "['NET_ADMIN']" in expressions
    assert "['batch']" in expressions
    assert "'billing'" in expressions and "'team-a/ledger'" in expressions
    selector = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert selector == [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}
    ]
    off = objects(render("-f", CLUSTER_VALUES, "--set", "admissionPolicy.enabled=false"))
    assert find(off, "ValidatingAdmissionPolicy") == []
    assert find(off, "ValidatingAdmissionPolicyBinding") == []


def test_the_operator_gets_the_same_job_pod_policy_and_protected_targets() -> None:
    docs = objects(
        render(
            "-f",
            CLUSTER_VALUES,
            "--set",
            "jobPodPolicy.serviceAccounts={default,batch}",
            "--set",
            "protectedNamespaces={billing,payments}",
            "--set",
            "protectedDeployments={team-a/ledger}",
        )
    )
    [deployment] = find(docs, "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert json.loads(env["PLACEMENT_JOB_POD_POLICY"]["value"]) == {
        "allowPrivileged": False,
        "allowHostNamespaces": False,
        "allowHostPath": False,
        "allowedCapabilities": [],
        "serviceAccounts": ["default", "batch"],
    }
    assert env["PLACEMENT_PROTECTED_NAMESPACES"]["value"] == "billing,payments"
    assert env["PLACEMENT_PROTECTED_DEPLOYMENTS"]["value"] == "team-a/ledger"
    assert env["PLACEMENT_OPERATOR_NAMESPACE"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }
    assert env["PLACEMENT_OPERATOR_DEPLOYMENT"]["value"] == deployment["metadata"]["name"]
