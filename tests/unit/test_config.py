"""Operator configuration: environment defaults, flags that win, refusals that name the setting."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from placement.runtime.config import OperatorConfig

URL = "http://prometheus:9090"


def test_environment_gives_the_defaults_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_URL", URL)
    monkeypatch.setenv("PLACEMENT_LOG_FORMAT", "json")
    monkeypatch.setenv("PLACEMENT_METRICS_ADDRESS", "127.0.0.1:9999")
    monkeypatch.setenv("PLACEMENT_NAMESPACES", "team-a, team-b")
    config = OperatorConfig.from_environment(log_format="text")
    assert config.log_format == "text"
    assert config.metrics_endpoint() == ("127.0.0.1", 9999)
    assert config.namespaces == ("team-a", "team-b")


def test_keda_queries_the_operators_prometheus_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert OperatorConfig(prometheus_url=URL).keda_prometheus() == URL
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_URL", URL)
    monkeypatch.setenv("PLACEMENT_KEDA_PROMETHEUS_URL", "http://prometheus.monitoring:9090")
    config = OperatorConfig.from_environment()
    assert config.keda_prometheus() == "http://prometheus.monitoring:9090"


def test_the_operators_prometheus_credentials_never_reach_a_scaled_object() -> None:
    """The address KEDA gets is written into every async placement's ScaledObject, which
    anyone who may read ScaledObjects in that namespace reads. Before, the operator's own
    URL went there as it was, user:password@ included."""
    config = OperatorConfig(prometheus_url="http://operator:s3cret@prometheus:9090")
    assert config.keda_prometheus() == "http://prometheus:9090"
    config = OperatorConfig(prometheus_url=URL, keda_prometheus_url="https://k:s3cret@prom:9090")
    with pytest.raises(ValueError, match="PLACEMENT_KEDA_PROMETHEUS_URL") as refused:
        config.validate()
    assert "s3cret" not in str(refused.value)


def test_metrics_can_be_turned_off() -> None:
    assert OperatorConfig(prometheus_url=URL, metrics_address="").metrics_endpoint() is None
    assert OperatorConfig(prometheus_url=URL, metrics_address=":8081").metrics_endpoint() == (
        "0.0.0.0",
        8081,
    )


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"prometheus_url": "prometheus:9090"}, "PLACEMENT_PROMETHEUS_URL"),
        ({"log_format": "xml"}, "log format"),
        ({"keda_prometheus_url": "prometheus:9090"}, "PLACEMENT_KEDA_PROMETHEUS_URL"),
        ({"metrics_address": "localhost"}, "PLACEMENT_METRICS_ADDRESS"),
        ({"metrics_address": "0.0.0.0:99999"}, "--metrics-address"),
        ({"tick_seconds": 0}, "tick"),
        ({"api_timeout_seconds": 0}, "PLACEMENT_API_TIMEOUT"),
        ({"health_stall_seconds": -1}, "--health-stall"),
        ({"job_history_successful": -1}, "--job-history-successful"),
        ({"job_history_failed": 101}, "PLACEMENT_JOB_HISTORY_FAILED"),
    ],
)
def test_bad_settings_are_refused_with_the_setting_named(
    overrides: dict[str, object], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_URL", URL)
    with pytest.raises(ValueError, match=named):
        OperatorConfig.from_environment(**overrides)


def test_batched_queries_are_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLACEMENT_QUERY_MODE", raising=False)
    config = OperatorConfig.from_environment(prometheus_url="http://prometheus:9090")
    assert config.query_mode == "batched"
    assert config.metrics_max_age_seconds == 60.0


def test_per_placement_mode_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLACEMENT_QUERY_MODE", "per-placement")
    monkeypatch.setenv("PLACEMENT_METRICS_MAX_AGE", "15")
    config = OperatorConfig.from_environment(prometheus_url="http://prometheus:9090")
    assert (config.query_mode, config.metrics_max_age_seconds) == ("per-placement", 15.0)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"query_mode": "keda"}, "query mode"),
        ({"metrics_max_age_seconds": 0.0}, "metrics max age"),
    ],
)
def test_bad_settings_are_refused_by_name(overrides: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        OperatorConfig.from_environment(prometheus_url="http://prometheus:9090", **overrides)


def test_metrics_are_scoped_to_the_namespace_unless_turned_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_URL", URL)
    assert OperatorConfig.from_environment().scope_metrics_to_namespace is True
    monkeypatch.setenv("PLACEMENT_SCOPE_METRICS_TO_NAMESPACE", "false")
    assert OperatorConfig.from_environment().scope_metrics_to_namespace is False
    # the flag (--metrics-namespace-scope) wins over the environment
    assert OperatorConfig.from_environment(
        scope_metrics_to_namespace=True
    ).scope_metrics_to_namespace
    monkeypatch.setenv("PLACEMENT_SCOPE_METRICS_TO_NAMESPACE", "maybe")
    with pytest.raises(ValueError, match="PLACEMENT_SCOPE_METRICS_TO_NAMESPACE"):
        OperatorConfig.from_environment()


def test_a_refused_url_is_quoted_without_its_credentials() -> None:
    with pytest.raises(ValueError, match="PLACEMENT_PROMETHEUS_URL") as error:
        OperatorConfig(prometheus_url="ftp://reader:s3cret@prometheus:9090").validate()
    assert "s3cret" not in str(error.value) and "//***@prometheus:9090" in str(error.value)


def test_answer_bounds_have_defaults_and_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_URL", URL)
    config = OperatorConfig.from_environment()
    assert (config.prometheus_max_series, config.prometheus_max_bytes) == (1000, 1 << 20)
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_MAX_SERIES", "50")
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_MAX_BYTES", "65536")
    config = OperatorConfig.from_environment()
    assert (config.prometheus_max_series, config.prometheus_max_bytes) == (50, 65536)
    with pytest.raises(ValueError, match="PLACEMENT_PROMETHEUS_MAX_SERIES"):
        OperatorConfig.from_environment(prometheus_max_series=0)


def test_the_bounds_of_a_query_across_namespaces_are_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_URL", URL)
    config = OperatorConfig.from_environment()
    assert (config.prometheus_max_batch_series, config.prometheus_max_batch_bytes) == (
        20_000,
        8 << 20,
    )
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_MAX_BATCH_SERIES", "5000")
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_MAX_BATCH_BYTES", "2097152")
    config = OperatorConfig.from_environment()
    assert (config.prometheus_max_batch_series, config.prometheus_max_batch_bytes) == (
        5000,
        2 << 20,
    )
    with pytest.raises(ValueError, match="PLACEMENT_PROMETHEUS_MAX_BATCH_SERIES"):
        OperatorConfig.from_environment(prometheus_max_batch_series=0)


def test_log_level_from_the_environment_and_the_flag_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_URL", URL)
    assert OperatorConfig.from_environment().log_level == logging.INFO
    monkeypatch.setenv("PLACEMENT_LOG_LEVEL", "warning")
    assert OperatorConfig.from_environment().log_level == logging.WARNING
    assert OperatorConfig.from_environment(log_level="DEBUG").log_level == logging.DEBUG
    monkeypatch.setenv("PLACEMENT_LOG_LEVEL", "chatty")
    with pytest.raises(ValueError, match="PLACEMENT_LOG_LEVEL"):
        OperatorConfig.from_environment()


SECRET = "s3cret-t0ken"


def test_prometheus_connection_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.crt"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_URL", URL)
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_BEARER_TOKEN", SECRET + "\n")  # a Secret's newline
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_CA_FILE", str(bundle))
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_HEADERS", '{"X-Scope-OrgID": "team-a"}')
    config = OperatorConfig.from_environment()
    assert config.prometheus_request_headers() == {
        "X-Scope-OrgID": "team-a",
        "Authorization": f"Bearer {SECRET}",
    }
    assert config.prometheus_basic_auth() is None
    assert config.prometheus_ca_file == str(bundle)
    assert SECRET not in repr(config)  # a config logged whole shows no credential


def test_basic_auth_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_URL", URL)
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_BASIC_AUTH_USERNAME", "reader")
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_BASIC_AUTH_PASSWORD", SECRET)
    config = OperatorConfig.from_environment()
    assert config.prometheus_basic_auth() == ("reader", SECRET)
    assert config.prometheus_request_headers() == {}
    assert SECRET not in repr(config) and "reader" not in repr(config)


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        (
            {
                "PLACEMENT_PROMETHEUS_BEARER_TOKEN": SECRET,
                "PLACEMENT_PROMETHEUS_BASIC_AUTH_USERNAME": "reader",
                "PLACEMENT_PROMETHEUS_BASIC_AUTH_PASSWORD": SECRET,
            },
            "not both",
        ),
        ({"PLACEMENT_PROMETHEUS_BASIC_AUTH_USERNAME": "reader"}, "BASIC_AUTH_PASSWORD"),
        ({"PLACEMENT_PROMETHEUS_BASIC_AUTH_PASSWORD": SECRET}, "BASIC_AUTH_USERNAME"),
        ({"PLACEMENT_PROMETHEUS_CA_FILE": "/nonexistent/ca.crt"}, "PLACEMENT_PROMETHEUS_CA_FILE"),
        ({"PLACEMENT_PROMETHEUS_HEADERS": "X-Scope-OrgID: t1"}, "PLACEMENT_PROMETHEUS_HEADERS"),
        ({"PLACEMENT_PROMETHEUS_HEADERS": '["X-Scope-OrgID"]'}, "PLACEMENT_PROMETHEUS_HEADERS"),
        ({"PLACEMENT_PROMETHEUS_HEADERS": '{"X-Scope-OrgID": 1}'}, "PLACEMENT_PROMETHEUS_HEADERS"),
        (
            {
                "PLACEMENT_PROMETHEUS_HEADERS": '{"Authorization": "Bearer x"}',
                "PLACEMENT_PROMETHEUS_BEARER_TOKEN": SECRET,
            },
            "Authorization",
        ),
    ],
)
def test_bad_connection_settings_name_the_variable_never_the_secret(
    environment: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_URL", URL)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=named) as error:
        OperatorConfig.from_environment()
    assert SECRET not in str(error.value)


def test_job_pod_policy_and_protected_targets_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLACEMENT_JOB_POD_POLICY", '{"serviceAccounts":["default","batch"]}')
    monkeypatch.setenv("PLACEMENT_PROTECTED_NAMESPACES", "billing, payments")
    monkeypatch.setenv("PLACEMENT_PROTECTED_DEPLOYMENTS", "team-a/ledger")
    monkeypatch.setenv("PLACEMENT_OPERATOR_NAMESPACE", "placement-system")
    monkeypatch.setenv("PLACEMENT_OPERATOR_DEPLOYMENT", "po-placement-operator")
    config = OperatorConfig.from_environment(prometheus_url=URL)
    assert config.job_pod_policy.service_accounts == ("default", "batch")
    protected = config.protected_targets()
    assert protected.namespaces == {"kube-system", "placement-system", "billing", "payments"}
    assert protected.deployments == {
        ("team-a", "ledger"),
        ("placement-system", "po-placement-operator"),
    }


def test_unset_job_pod_policy_refuses_privilege_and_other_accounts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("PLACEMENT_JOB_POD_POLICY", "PLACEMENT_PROTECTED_NAMESPACES"):
        monkeypatch.delenv(name, raising=False)
    config = OperatorConfig.from_environment(prometheus_url=URL)
    assert not config.job_pod_policy.allow_privileged
    assert config.job_pod_policy.service_accounts == ("default",)
    assert config.protected_targets().namespaces == {"kube-system"}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PLACEMENT_JOB_POD_POLICY", '{"allowPrivileged": "no"}'),
        ("PLACEMENT_PROTECTED_DEPLOYMENTS", "ledger"),
    ],
)
def test_a_bad_tenancy_setting_is_refused_with_its_name(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable):
        OperatorConfig.from_environment(prometheus_url=URL)


def test_job_history_and_timeouts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_URL", URL)
    config = OperatorConfig.from_environment()
    assert (config.job_history_successful, config.job_history_failed) == (3, 1)
    assert config.api_timeout_seconds == 10
    assert config.stall_bound == 100  # max(60 s, 4 ticks of 15 s, 14 queries of 5 s + 3 of 10 s)
    monkeypatch.setenv("PLACEMENT_JOB_HISTORY_SUCCESSFUL", "5")
    monkeypatch.setenv("PLACEMENT_JOB_HISTORY_FAILED", "0")
    monkeypatch.setenv("PLACEMENT_API_TIMEOUT", "2.5")
    monkeypatch.setenv("PLACEMENT_HEALTH_STALL_SECONDS", "6")
    config = OperatorConfig.from_environment()
    assert (config.job_history_successful, config.job_history_failed) == (5, 0)
    assert config.api_timeout_seconds == 2.5
    assert config.stall_bound == 6
    monkeypatch.setenv("PLACEMENT_JOB_HISTORY_FAILED", "one")
    with pytest.raises(ValueError, match="PLACEMENT_JOB_HISTORY_FAILED must be a whole number"):
        OperatorConfig.from_environment()


def test_the_derived_stall_bound_outlasts_an_evaluation_of_slow_queries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tenant's PromQL may take up to the Prometheus timeout: fourteen such queries in one
    evaluation (five readings, each its current samples and its average, the history, shared
    and then its own, and once a query across namespaces before its namespace's own) must
    not fail /healthz and restart the operator for every tenant."""
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_URL", URL)
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_TIMEOUT", "30")
    config = OperatorConfig.from_environment()
    slowest_evaluation = 14 * 30 + 3 * config.api_timeout_seconds
    assert config.stall_bound >= slowest_evaluation
    monkeypatch.setenv("PLACEMENT_HEALTH_STALL_SECONDS", "45")  # said explicitly: kept
    assert OperatorConfig.from_environment().stall_bound == 45


def test_the_history_refresh_is_an_hour_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_URL", URL)
    config = OperatorConfig.from_environment()
    assert (config.history_refresh_seconds, config.prometheus_max_history_bytes) == (3600, 4 << 20)
    monkeypatch.setenv("PLACEMENT_HISTORY_REFRESH", "30m")
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_MAX_HISTORY_BYTES", "2097152")
    config = OperatorConfig.from_environment()
    assert (config.history_refresh_seconds, config.prometheus_max_history_bytes) == (1800, 1 << 21)
    assert OperatorConfig.from_environment(
        history_refresh_seconds=7200
    ).history_refresh_seconds == (7200)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("PLACEMENT_HISTORY_REFRESH", "1x", "PLACEMENT_HISTORY_REFRESH: invalid duration"),
        ("PLACEMENT_HISTORY_REFRESH", "30s", "from 1m to 7d"),
        ("PLACEMENT_HISTORY_REFRESH", "8d", "--history-refresh"),
        ("PLACEMENT_PROMETHEUS_MAX_HISTORY_BYTES", "100", "PLACEMENT_PROMETHEUS_MAX_HISTORY_BYTES"),
    ],
)
def test_a_bad_history_setting_is_refused_by_name(
    variable: str, value: str, named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_URL", URL)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=named):
        OperatorConfig.from_environment()
