"""Operator configuration: flags, with environment variables as defaults (for a Deployment's
env). Nothing here comes from a WorkloadPlacement: tenants never choose where the operator
connects."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


QUERY_MODES = ("batched", "per-placement")


@dataclass(frozen=True)
class OperatorConfig:
    prometheus_url: str
    prometheus_timeout_seconds: float = 5.0
    # How often each placement is looked at; its spec.evaluationInterval decides when it is
    # evaluated. A shorter tick only makes window starts and Job outcomes noticed sooner.
    tick_seconds: float = 15.0
    namespaces: tuple[str, ...] = field(default=())  # empty: every namespace
    posting_level: int = logging.WARNING  # log lines at this level and above become Events
    watch_timeout_seconds: int = 300
    workers: int = 20
    # batched: placements whose queries share a shape share one query per cycle (grouping.py);
    # per-placement: every placement queries on its own (KEDA's way; for comparison).
    query_mode: str = "batched"
    # Oldest shared result a placement that has not read it yet may get.
    metrics_max_age_seconds: float = 60.0

    @classmethod
    def from_environment(cls, **overrides: object) -> OperatorConfig:
        """Defaults from PLACEMENT_* variables; explicit overrides win."""
        namespaces = tuple(
            ns for ns in os.environ.get("PLACEMENT_NAMESPACES", "").replace(",", " ").split() if ns
        )
        values: dict[str, object] = {
            "prometheus_url": os.environ.get("PLACEMENT_PROMETHEUS_URL", ""),
            "prometheus_timeout_seconds": _env_float("PLACEMENT_PROMETHEUS_TIMEOUT", 5.0),
            "tick_seconds": _env_float("PLACEMENT_TICK_SECONDS", 15.0),
            "namespaces": namespaces,
            "query_mode": os.environ.get("PLACEMENT_QUERY_MODE", "batched"),
            "metrics_max_age_seconds": _env_float("PLACEMENT_METRICS_MAX_AGE", 60.0),
            "posting_level": logging.getLevelName(
                os.environ.get("PLACEMENT_POSTING_LEVEL", "WARNING").upper()
            ),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        config = cls(**values)  # type: ignore[arg-type]
        config.validate()
        return config

    def validate(self) -> None:
        if not self.prometheus_url.startswith(("http://", "https://")):
            raise ValueError(
                "the Prometheus URL is required (--prometheus-url or PLACEMENT_PROMETHEUS_URL) "
                f"and must start with http:// or https://, got {self.prometheus_url!r}"
            )
        if self.tick_seconds <= 0 or self.prometheus_timeout_seconds <= 0:
            raise ValueError("tick and Prometheus timeout must be positive")
        if self.query_mode not in QUERY_MODES:
            raise ValueError(
                f"query mode must be one of {', '.join(QUERY_MODES)}, got {self.query_mode!r}"
            )
        if self.metrics_max_age_seconds <= 0:
            raise ValueError("metrics max age must be positive")
        if not isinstance(self.posting_level, int):
            raise ValueError(f"unknown posting level {self.posting_level!r}")
