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
