"""Operator configuration: flags, with environment variables as defaults (for a Deployment's
env). Nothing here comes from a WorkloadPlacement: tenants never choose where the operator
connects."""

from __future__ import annotations

import json
import logging
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from placement.core.durations import parse_duration
from placement.core.jobpolicy import JobPodPolicy, ProtectedTargets

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
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


def _env_duration(name: str, default: float) -> float:
    """Seconds of a duration written like the spec's ("1h", "30m", "90s")."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse_duration(raw).total_seconds()
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None


# The slowest evaluation waits for each of its queries up to the Prometheus timeout: five
# instant readings (utilization, queueDepth, demand, requests, async.queue), each its
# current samples and its lookback average, and the history's range query with its
# placement's own when Prometheus refuses the shared one; plus, once, the two of a query
# across namespaces that timed out before its namespace's own (a timeout holds every such
# query off for a while: prometheus.BatchedMetricsReader).
SLOWEST_EVALUATION_QUERIES = 14
HISTORY_REFRESH_BOUNDS = (60.0, 7 * 86400.0)


def _env_list(name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in os.environ.get(name, "").split(",") if item.strip())


@dataclass(frozen=True)
class OperatorConfig:
    prometheus_url: str
    prometheus_timeout_seconds: float = 5.0
    # Bounds on one query's answer, checked before it is parsed (prometheus.QueryLimits).
    prometheus_max_series: int = 1000
    prometheus_max_bytes: int = 1 << 20
    # The history range query's answer has a bound of its own (thousands of samples a series).
    prometheus_max_history_bytes: int = 4 << 20
    # A query shared across namespaces (batched mode) answers a series per placement of its
    # shape in its batch: bounds of their own, so that one query pair serves many placements.
    prometheus_max_batch_series: int = 20_000
    prometheus_max_batch_bytes: int = 8 << 20
    # Seconds a placement's load history (metrics.history) is used before it is read again;
    # a changed query is read at once.
    history_refresh_seconds: float = 3600.0
    # Seconds before a failed evaluation is tried again. A placement is evaluated when its
    # spec.evaluationInterval is due or its spec changes, and its daemon sleeps until then
    # (it used to look every tick: 670 wakeups a second at 10,000 placements with none due).
    # Window starts and Job outcomes are seen at the placement's next evaluation.
    tick_seconds: float = 15.0
    namespaces: tuple[str, ...] = field(default=())  # empty: every namespace
    posting_level: int = logging.WARNING  # log lines at this level and above become Events
    watch_timeout_seconds: int = 300
    # Evaluations at a time, in kopf's event loop (the others wait their turn, so kopf's own
    # requests are not queued behind all of them), and as many threads reading Prometheus
    # (its client is synchronous). First evaluations up to `api_connections` at a time
    # (slots.py), and standalone as many of their status writes besides (Scheduler.let_go).
    workers: int = 4
    # Connections to the API server for requests, beside the watches: kopf's own session
    # (it has no limit) and the operator's writes (kubeaio) get this many each. 40, not 20:
    # at a bulk apply of 10,000 the first evaluations (as many at a time) were the stage that
    # lagged, about 1 s each with the status write (decided p99 173 -> 60 s, docs/scaling.md).
    # 60, not 40, once the workers let go of the writes: the writes in flight bound the
    # decisions (10,000 alone on the machine: p99 70.3 -> 25.3 s, peak RSS 349 -> 382 MB).
    api_connections: int = 60
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
    # The operator's own log lines below this level are dropped (kopf's per-tick lines are
    # DEBUG whatever this says).
    log_level: int = logging.INFO
    # How to reach a Prometheus behind authentication or a private CA, or a multi-tenant
    # one (Mimir, Cortex, Thanos) that wants X-Scope-OrgID. repr=False: never in a log line.
    prometheus_bearer_token: str | None = field(default=None, repr=False)
    prometheus_basic_auth_username: str | None = field(default=None, repr=False)
    prometheus_basic_auth_password: str | None = field(default=None, repr=False)
    prometheus_ca_file: str | None = None
    prometheus_headers: dict[str, str] = field(default_factory=dict, repr=False)
    # What a batch pod may ask for: the operator's ServiceAccount creates the Job, so the
    # placement's author must not get more than they could create themselves.
    job_pod_policy: JobPodPolicy = field(default_factory=JobPodPolicy)
    # Never scaled, never given Jobs: these, kube-system, and the operator's own namespace and
    # Deployment (from the downward API and the chart).
    protected_namespaces: tuple[str, ...] = field(default=())
    protected_deployments: tuple[str, ...] = field(default=())  # namespace/name
    operator_namespace: str | None = None
    operator_deployment: str | None = None
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
    # The Prometheus KEDA's trigger queries for an async placement's queue; empty: the
    # operator's own (prometheus_url). Set it when KEDA reaches Prometheus by another address.
    keda_prometheus_url: str = ""

    @classmethod
    def from_environment(cls, **overrides: object) -> OperatorConfig:
        """Defaults from PLACEMENT_* variables; explicit overrides win."""
        namespaces = tuple(
            ns for ns in os.environ.get("PLACEMENT_NAMESPACES", "").replace(",", " ").split() if ns
        )
        values: dict[str, object] = {
            "prometheus_url": os.environ.get("PLACEMENT_PROMETHEUS_URL", ""),
            "prometheus_timeout_seconds": _env_float("PLACEMENT_PROMETHEUS_TIMEOUT", 5.0),
            "prometheus_max_series": int(_env_float("PLACEMENT_PROMETHEUS_MAX_SERIES", 1000)),
            "prometheus_max_bytes": int(_env_float("PLACEMENT_PROMETHEUS_MAX_BYTES", 1 << 20)),
            "prometheus_max_history_bytes": int(
                _env_float("PLACEMENT_PROMETHEUS_MAX_HISTORY_BYTES", 4 << 20)
            ),
            "prometheus_max_batch_series": int(
                _env_float("PLACEMENT_PROMETHEUS_MAX_BATCH_SERIES", 20_000)
            ),
            "prometheus_max_batch_bytes": int(
                _env_float("PLACEMENT_PROMETHEUS_MAX_BATCH_BYTES", 8 << 20)
            ),
            "history_refresh_seconds": _env_duration("PLACEMENT_HISTORY_REFRESH", 3600.0),
            "tick_seconds": _env_float("PLACEMENT_TICK_SECONDS", 15.0),
            "namespaces": namespaces,
            "query_mode": os.environ.get("PLACEMENT_QUERY_MODE", "batched"),
            "metrics_max_age_seconds": _env_float("PLACEMENT_METRICS_MAX_AGE", 60.0),
            "posting_level": logging.getLevelName(
                os.environ.get("PLACEMENT_POSTING_LEVEL", "WARNING").upper()
            ),
            "log_format": os.environ.get("PLACEMENT_LOG_FORMAT", "text"),
            "metrics_address": os.environ.get("PLACEMENT_METRICS_ADDRESS", "0.0.0.0:8081"),
            "workers": int(_env_float("PLACEMENT_WORKERS", 4)),
            "api_connections": int(_env_float("PLACEMENT_API_CONNECTIONS", 60)),
            "peering": os.environ.get("PLACEMENT_PEERING") or None,
            "peering_lifetime_seconds": int(_env_float("PLACEMENT_PEERING_LIFETIME", 30)),
            "scope_metrics_to_namespace": _env_bool("PLACEMENT_SCOPE_METRICS_TO_NAMESPACE", True),
            "log_level": os.environ.get("PLACEMENT_LOG_LEVEL") or "INFO",
            **prometheus_connection_from_environment(),
            "protected_namespaces": _env_list("PLACEMENT_PROTECTED_NAMESPACES"),
            "protected_deployments": _env_list("PLACEMENT_PROTECTED_DEPLOYMENTS"),
            "operator_namespace": os.environ.get("PLACEMENT_OPERATOR_NAMESPACE") or None,
            "operator_deployment": os.environ.get("PLACEMENT_OPERATOR_DEPLOYMENT") or None,
            "api_timeout_seconds": _env_float("PLACEMENT_API_TIMEOUT", 10.0),
            "health_stall_seconds": _env_float("PLACEMENT_HEALTH_STALL_SECONDS", 0.0),
            "job_history_successful": _env_int("PLACEMENT_JOB_HISTORY_SUCCESSFUL", 3),
            "job_history_failed": _env_int("PLACEMENT_JOB_HISTORY_FAILED", 1),
            "keda_prometheus_url": os.environ.get("PLACEMENT_KEDA_PROMETHEUS_URL", ""),
        }
        if os.environ.get("PLACEMENT_JOB_POD_POLICY", "").strip():
            values["job_pod_policy"] = JobPodPolicy.from_json(
                os.environ["PLACEMENT_JOB_POD_POLICY"]
            )
        if os.environ.get("PLACEMENT_PRIORITY"):
            values["priority"] = int(os.environ["PLACEMENT_PRIORITY"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values["log_level"], str):  # the flag's text wins over the variable's
            values["log_level"] = parse_log_level(values["log_level"])
        if values.get("peering") and "priority" not in values:
            # Replicas of one Deployment share their flags: a random priority keeps two from
            # tying (kopf pauses every replica on a tie).
            values["priority"] = random.SystemRandom().randint(1, 2_000_000_000)
        config = cls(**values)  # type: ignore[arg-type]
        config.validate()
        return config

    # One independent check per setting, in a flat list: splitting it would hide none.
    def validate(self) -> None:  # noqa: C901
        if not self.prometheus_url.startswith(("http://", "https://")):
            raise ValueError(
                "the Prometheus URL is required (--prometheus-url or PLACEMENT_PROMETHEUS_URL) "
                "and must start with http:// or https://, got "
                # user:password@ must not reach a terminal or a pod's log
                f"{_USERINFO.sub('//***@', self.prometheus_url)!r}"
            )
        if self.tick_seconds <= 0 or self.prometheus_timeout_seconds <= 0:
            raise ValueError("tick and Prometheus timeout must be positive")
        self._validate_answer_bounds()
        self._validate_history()
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
        if self.log_level not in (logging.getLevelName(name) for name in LOG_LEVELS):
            raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}")
        self._validate_prometheus_connection()
        self.protected_targets()  # raises with the setting named

    def keda_prometheus(self) -> str:
        """The Prometheus address written into async placements' ScaledObjects, which anyone
        who may read ScaledObjects in a placement's namespace reads: the operator's own URL
        without its user:password@ (KEDA then queries without them)."""
        return self.keda_prometheus_url or _USERINFO.sub("//", self.prometheus_url)

    def _validate_answer_bounds(self) -> None:
        if self.prometheus_max_series < 1 or self.prometheus_max_bytes < 1024:
            raise ValueError(
                "the Prometheus answer bounds must be at least 1 series "
                "(--prometheus-max-series, PLACEMENT_PROMETHEUS_MAX_SERIES) and 1024 bytes "
                "(--prometheus-max-bytes, PLACEMENT_PROMETHEUS_MAX_BYTES)"
            )
        if self.prometheus_max_batch_series < 1 or self.prometheus_max_batch_bytes < 1024:
            raise ValueError(
                "the bounds on a query shared across namespaces must be at least 1 series "
                "(--prometheus-max-batch-series, PLACEMENT_PROMETHEUS_MAX_BATCH_SERIES) and "
                "1024 bytes (--prometheus-max-batch-bytes, PLACEMENT_PROMETHEUS_MAX_BATCH_BYTES)"
            )

    def _validate_history(self) -> None:
        if self.prometheus_max_history_bytes < 1024:
            raise ValueError(
                "the history answer bound (--prometheus-max-history-bytes, "
                "PLACEMENT_PROMETHEUS_MAX_HISTORY_BYTES) must be at least 1024 bytes"
            )
        low, high = HISTORY_REFRESH_BOUNDS
        if not low <= self.history_refresh_seconds <= high:
            raise ValueError(
                "the history refresh (--history-refresh or PLACEMENT_HISTORY_REFRESH) must be "
                f"from 1m to 7d, got {self.history_refresh_seconds:g} s"
            )

    def _validate_prometheus_connection(self) -> None:
        if self.keda_prometheus_url and not self.keda_prometheus_url.startswith(
            ("http://", "https://")
        ):
            raise ValueError(
                "PLACEMENT_KEDA_PROMETHEUS_URL must be an http:// or https:// URL, got "
                f"{_USERINFO.sub('//***@', self.keda_prometheus_url)!r}"
            )
        if _USERINFO.search(self.keda_prometheus_url):
            raise ValueError(
                "PLACEMENT_KEDA_PROMETHEUS_URL must carry no user:password@: it is written "
                "into every async placement's ScaledObject, readable in its namespace"
            )
        # Messages name the variables, never their values: these are credentials.
        if self.prometheus_bearer_token and self.prometheus_basic_auth_username:
            raise ValueError(
                "set either PLACEMENT_PROMETHEUS_BEARER_TOKEN or "
                "PLACEMENT_PROMETHEUS_BASIC_AUTH_USERNAME, not both"
            )
        if bool(self.prometheus_basic_auth_username) != bool(self.prometheus_basic_auth_password):
            raise ValueError(
                "basic auth needs both PLACEMENT_PROMETHEUS_BASIC_AUTH_USERNAME and "
                "PLACEMENT_PROMETHEUS_BASIC_AUTH_PASSWORD"
            )
        if self.prometheus_ca_file and not Path(self.prometheus_ca_file).is_file():
            raise ValueError(
                f"PLACEMENT_PROMETHEUS_CA_FILE names no readable file: {self.prometheus_ca_file!r}"
            )
        if any(name.lower() == "authorization" for name in self.prometheus_headers) and (
            self.prometheus_bearer_token or self.prometheus_basic_auth_username
        ):
            raise ValueError(
                "PLACEMENT_PROMETHEUS_HEADERS sets Authorization, and so does the bearer token "
                "or basic auth: keep one"
            )

    def prometheus_request_headers(self) -> dict[str, str]:
        """Headers of every query: the extra ones, and the bearer token."""
        headers = dict(self.prometheus_headers)
        if self.prometheus_bearer_token:
            headers["Authorization"] = f"Bearer {self.prometheus_bearer_token}"
        return headers

    def prometheus_basic_auth(self) -> tuple[str, str] | None:
        if self.prometheus_basic_auth_username and self.prometheus_basic_auth_password:
            return self.prometheus_basic_auth_username, self.prometheus_basic_auth_password
        return None

    def protected_targets(self) -> ProtectedTargets:
        return ProtectedTargets.build(
            namespaces=self.protected_namespaces,
            deployments=self.protected_deployments,
            operator_namespace=self.operator_namespace,
            operator_deployment=self.operator_deployment,
        )

    @property
    def stall_bound(self) -> float:
        """Seconds without a completed evaluation (while some fail or run) before /healthz
        fails: long enough for a retry after a timed-out request, at least a minute, and
        longer than one evaluation may take when its queries are slow. A placement's PromQL
        may legitimately take up to the Prometheus timeout; one evaluation waits for at most
        SLOWEST_EVALUATION_QUERIES of them. Were the bound shorter, one tenant's expensive
        query would fail /healthz and restart the operator for every tenant."""
        if self.health_stall_seconds:
            return self.health_stall_seconds
        slowest_evaluation = (
            SLOWEST_EVALUATION_QUERIES * self.prometheus_timeout_seconds
            + 3 * self.api_timeout_seconds
        )
        return max(60.0, 4 * self.tick_seconds, slowest_evaluation)

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


def parse_log_level(text: str) -> int:
    """DEBUG, INFO, WARNING or ERROR (any case) as a logging level."""
    name = text.strip().upper()
    if name not in LOG_LEVELS:
        raise ValueError(
            f"log level (--log-level or PLACEMENT_LOG_LEVEL) must be one of "
            f"{', '.join(LOG_LEVELS)}, got {text!r}"
        )
    level: int = logging.getLevelName(name)
    return level


def prometheus_connection_from_environment() -> dict[str, object]:
    """Bearer token, basic auth, CA bundle and extra headers from PLACEMENT_PROMETHEUS_*."""

    def secret(name: str) -> str | None:
        # A Secret mounted as env often ends in a newline (`kubectl create secret
        # --from-file`): it is never part of a token or password.
        value = os.environ.get(name, "").strip()
        return value or None

    return {
        "prometheus_bearer_token": secret("PLACEMENT_PROMETHEUS_BEARER_TOKEN"),
        "prometheus_basic_auth_username": secret("PLACEMENT_PROMETHEUS_BASIC_AUTH_USERNAME"),
        "prometheus_basic_auth_password": secret("PLACEMENT_PROMETHEUS_BASIC_AUTH_PASSWORD"),
        "prometheus_ca_file": os.environ.get("PLACEMENT_PROMETHEUS_CA_FILE") or None,
        "prometheus_headers": parse_headers(os.environ.get("PLACEMENT_PROMETHEUS_HEADERS", "")),
    }


def parse_headers(text: str) -> dict[str, str]:
    """PLACEMENT_PROMETHEUS_HEADERS: a JSON object of header name to string value."""
    if not text.strip():
        return {}
    try:
        headers = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            "PLACEMENT_PROMETHEUS_HEADERS must be a JSON object such as "
            f'{{"X-Scope-OrgID": "team-a"}}: {error.msg} at character {error.pos}'
        ) from None
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in headers.items()
    ):
        raise ValueError(
            "PLACEMENT_PROMETHEUS_HEADERS must be a JSON object of header names to string "
            'values, such as {"X-Scope-OrgID": "team-a"}'
        )
    return headers
