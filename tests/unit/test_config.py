"""Operator configuration: environment defaults, flags that win, refusals that name the setting."""

from __future__ import annotations

import pytest

from placement.config import OperatorConfig

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


def test_job_history_and_timeouts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_URL", URL)
    config = OperatorConfig.from_environment()
    assert (config.job_history_successful, config.job_history_failed) == (3, 1)
    assert config.api_timeout_seconds == 10
    assert config.stall_bound == 60  # max(60 s, 4 ticks of 15 s, 3 timeouts of 10 s)
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
