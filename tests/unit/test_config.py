"""Operator configuration: the query mode and the shared-result age, with clear refusals."""

from __future__ import annotations

import pytest

from placement.config import OperatorConfig


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
