"""Operator configuration: flags, with environment variables as defaults (for a Deployment's
env). Nothing here comes from a WorkloadPlacement: tenants never choose where the operator
connects."""

from __future__ import annotations

import logging
import os
import random
import re
from dataclasses import dataclass, field

LOG_FORMATS = ("text", "json")
_USERINFO = re.compile(r"//[^/@\s]+@")


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None


QUERY_MODES = ("batched", "per-placement")


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "1", "yes", "on"):
        return True
    if raw in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


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
    # Connections to the API server for requests, beside the watches (kopf has no limit).
    api_connections: int = 20
    kubeconfig: str | None = None  # None: in-cluster ServiceAccount, else KUBECONFIG
    log_format: str = "text"  # or "json": one object per line, for log pipelines
    metrics_address: str = "0.0.0.0:8081"  # /metrics; "" turns it off
    # Several replicas: the peering object they share, this one's priority (the highest acts),
    # and how long a silent peer counts as alive (the takeover time after a crash).
    peering: str | None = None
    priority: int = 0
    peering_lifetime_seconds: int = 30
    # batched: placements whose queries share a shape share one query per cycle (grouping.py);
    # per-placement: every placement queries on its own (KEDA's way; for comparison).
    query_mode: str = "batched"
    # Oldest shared result a placement that has not read it yet may get.
    metrics_max_age_seconds: float = 60.0
    # Every selector of a placement's PromQL gets namespace="<its namespace>", and a selector
    # naming another namespace blocks it: tenants cannot read each other's metrics.
    scope_metrics_to_namespace: bool = True
    # Seconds per request to the API server (ours and kopf's), so a stalled API server
    # cannot block a worker thread forever.
    api_timeout_seconds: float = 10.0
    # /healthz fails once evaluations have been failing, or one has been running, this long.
    # 0: derived from the tick and the API timeout (see `stall_bound`).
    health_stall_seconds: float = 0.0
    # Finished Jobs kept per placement, newest first, as CronJob's history limits; the
    # operator deletes older ones it created once their outcome is recorded in status.
    job_history_successful: int = 3
    job_history_failed: int = 1

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
            "log_format": os.environ.get("PLACEMENT_LOG_FORMAT", "text"),
            "metrics_address": os.environ.get("PLACEMENT_METRICS_ADDRESS", "0.0.0.0:8081"),
            "workers": int(_env_float("PLACEMENT_WORKERS", 20)),
            "api_connections": int(_env_float("PLACEMENT_API_CONNECTIONS", 20)),
            "peering": os.environ.get("PLACEMENT_PEERING") or None,
            "peering_lifetime_seconds": int(_env_float("PLACEMENT_PEERING_LIFETIME", 30)),
            "scope_metrics_to_namespace": _env_bool("PLACEMENT_SCOPE_METRICS_TO_NAMESPACE", True),
            "api_timeout_seconds": _env_float("PLACEMENT_API_TIMEOUT", 10.0),
            "health_stall_seconds": _env_float("PLACEMENT_HEALTH_STALL_SECONDS", 0.0),
            "job_history_successful": _env_int("PLACEMENT_JOB_HISTORY_SUCCESSFUL", 3),
            "job_history_failed": _env_int("PLACEMENT_JOB_HISTORY_FAILED", 1),
        }
        if os.environ.get("PLACEMENT_PRIORITY"):
            values["priority"] = int(os.environ["PLACEMENT_PRIORITY"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        if values.get("peering") and "priority" not in values:
            # Replicas of one Deployment share their flags: a random priority keeps two from
            # tying (kopf pauses every replica on a tie).
            values["priority"] = random.SystemRandom().randint(1, 2_000_000_000)
        config = cls(**values)  # type: ignore[arg-type]
        config.validate()
        return config

    def validate(self) -> None:
        if not self.prometheus_url.startswith(("http://", "https://")):
            raise ValueError(
                "the Prometheus URL is required (--prometheus-url or PLACEMENT_PROMETHEUS_URL) "
                "and must start with http:// or https://, got "
                # user:password@ must not reach a terminal or a pod's log
                f"{_USERINFO.sub('//***@', self.prometheus_url)!r}"
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
        if self.log_format not in LOG_FORMATS:
            raise ValueError(
                f"log format must be one of {', '.join(LOG_FORMATS)}, got {self.log_format!r}"
            )
        if self.metrics_address:
            self.metrics_endpoint()  # raises with the flag named
        if self.peering is not None and self.peering_lifetime_seconds < 5:
            raise ValueError("the peering lifetime (--peering-lifetime) must be at least 5 s")
        if not 0 < self.api_timeout_seconds <= 300:
            raise ValueError(
                "the API request timeout (--api-timeout or PLACEMENT_API_TIMEOUT) must be "
                f"in (0, 300] seconds, got {self.api_timeout_seconds:g}"
            )
        if self.health_stall_seconds < 0:
            raise ValueError(
                "the health stall bound (--health-stall or PLACEMENT_HEALTH_STALL_SECONDS) "
                f"must be 0 (derived) or positive, got {self.health_stall_seconds:g}"
            )
        for flag, env, kept in (
            ("--job-history-successful", "PLACEMENT_JOB_HISTORY_SUCCESSFUL",
             self.job_history_successful),
            ("--job-history-failed", "PLACEMENT_JOB_HISTORY_FAILED", self.job_history_failed),
        ):  # fmt: skip
            if not 0 <= kept <= 100:
                raise ValueError(f"{flag} (or {env}) must be in 0..100, got {kept}")

    @property
    def stall_bound(self) -> float:
        """Seconds without a completed evaluation (while some fail or run) before /healthz
        fails: long enough for a retry after a timed-out request, at least a minute."""
        if self.health_stall_seconds:
            return self.health_stall_seconds
        return max(60.0, 4 * self.tick_seconds, 3 * self.api_timeout_seconds)

    def metrics_endpoint(self) -> tuple[str, int] | None:
        """(host, port) to serve /metrics on, or None when turned off."""
        if not self.metrics_address:
            return None
        host, _, port = self.metrics_address.rpartition(":")
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(
                "the metrics address (--metrics-address or PLACEMENT_METRICS_ADDRESS) must be "
                f"HOST:PORT, got {self.metrics_address!r}"
            )
        return host.strip("[]") or "0.0.0.0", int(port)
