"""`placement`: run the operator, print the CRD, or explain one placement without a cluster.

placement run --prometheus-url http://prometheus:9090 [--namespace NS ...]
placement crd > crds/workloadplacements.placement.runplacement.io.yaml
placement explain examples/nightly-enrichment.yaml --replicas 4 --utilization 0.2
placement replay --placement FILE --series CSV [--output DIR]
placement series from-trace TRACE --replicas N --mean-utilization U --output CSV
placement series from-prometheus --placement FILE --prometheus-url URL --start T --end T ...
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from placement import __version__
from placement.runtime.config import LOG_LEVELS

OUTPUT_FORMATS = ("text", "json", "yaml")


# Argument types: argparse names the flag ("argument --replicas: ...") and exits 2.


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text!r}")
    return value


def non_negative(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def duration_seconds(text: str) -> float:
    """A duration written like the spec's ("30m", "1h") in seconds."""
    from placement.core.durations import parse_duration

    try:
        return parse_duration(text).total_seconds()
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def fraction(text: str) -> float:
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def positive_fraction(text: str) -> float:
    value = _number(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1, got {text!r}")
    return value


def below_one(text: str) -> float:
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {text!r}")
    return value


def whole(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {text!r}")
        return value

    parse.__name__ = f"whole number >= {minimum}"
    return parse


EXIT_RUNTIME_ERROR = 1  # a file, a manifest or a service let the command down
EXIT_USAGE_ERROR = 2  # the command line itself is wrong (argparse's own code)


class CommandError(Exception):
    """A runtime error worth one line on stderr, never a traceback."""


class UsageError(Exception):
    """Flags argparse accepted one by one that make no sense together (exit 2, as argparse)."""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_RUNTIME_ERROR
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE_ERROR
    except BrokenPipeError:
        # `placement explain ... | head`: the reader had enough. Point stdout at /dev/null so
        # the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "replay":
        return _replay(args)
    if args.command == "series":
        return _series(args)
    if args.command == "crd":
        from placement.runtime.crd import render_crd_yaml

        sys.stdout.write(render_crd_yaml())
        return 0
    if args.command == "explain":
        return _explain(args)
    return _run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="placement",
        description=__doc__.splitlines()[0],
        epilog="Exit status: 0 done, 1 a runtime error (a file, a manifest, Prometheus), "
        "2 a usage error (the command line).",
    )
    parser.add_argument("--version", action="version", version=f"placement {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the operator")
    run.add_argument("--prometheus-url", help="default: $PLACEMENT_PROMETHEUS_URL")
    run.add_argument("--prometheus-timeout", type=positive, help="seconds per query (default 5)")
    run.add_argument(
        "--prometheus-max-series",
        type=int,
        help="most series one query's answer may hold; a larger answer is refused unread "
        "(default 1000)",
    )
    run.add_argument(
        "--prometheus-max-bytes",
        type=int,
        help="most bytes one query's answer may hold (default 1048576)",
    )
    run.add_argument(
        "--prometheus-max-batch-series",
        type=int,
        help="most series the answer of a query shared across namespaces may hold: one per "
        "placement of its shape in its batch (default 20000)",
    )
    run.add_argument(
        "--prometheus-max-batch-bytes",
        type=int,
        help="most bytes the answer of a query shared across namespaces may hold (default 8388608)",
    )
    run.add_argument(
        "--prometheus-max-history-bytes",
        type=int,
        help="most bytes one history range query's answer may hold (default 4194304)",
    )
    run.add_argument(
        "--history-refresh",
        type=duration_seconds,
        help="how long a placement's load history (metrics.history, one range query) is used "
        "before it is read again, e.g. 30m, 1h (default: $PLACEMENT_HISTORY_REFRESH or 1h)",
    )
    run.add_argument(
        "--tick",
        type=positive,
        help="seconds before a failed evaluation is tried again (default 15)",
    )
    run.add_argument(
        "--query-mode",
        choices=["batched", "per-placement"],
        help="batched (default): placements whose queries share a shape share one query; "
        "per-placement: one query each, for comparison",
    )
    run.add_argument(
        "--metrics-max-age",
        type=positive,
        help="seconds a shared query result may be reused by a placement (default 60)",
    )
    run.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: all namespaces",
    )
    run.add_argument(
        "--liveness", default="http://0.0.0.0:8080/healthz", help="kopf's liveness endpoint"
    )
    run.add_argument(
        "--standalone",
        action="store_true",
        help="one replica, no peering (the default without --peering)",
    )
    run.add_argument(
        "--peering",
        help="run as one of several replicas sharing kopf's peering object NAME: only the "
        "highest --priority acts (default: $PLACEMENT_PEERING; none: standalone)",
    )
    run.add_argument(
        "--priority",
        type=int,
        help="with --peering: this replica's priority (default: $PLACEMENT_PRIORITY, else "
        "random, so two replicas never tie)",
    )
    run.add_argument(
        "--peering-lifetime",
        type=int,
        help="with --peering: seconds a silent peer still counts as alive, i.e. the takeover "
        "time after a crash (default 30)",
    )
    run.add_argument(
        "--api-timeout",
        type=float,
        help="seconds per Kubernetes API request (default: $PLACEMENT_API_TIMEOUT or 10)",
    )
    run.add_argument(
        "--health-stall",
        type=float,
        help="seconds evaluations may fail or hang before /healthz fails (default: "
        "$PLACEMENT_HEALTH_STALL_SECONDS, else max(60, 4 ticks, 12 Prometheus + 3 API timeouts))",
    )
    run.add_argument(
        "--job-history-successful",
        type=int,
        help="succeeded Jobs kept per placement (default: $PLACEMENT_JOB_HISTORY_SUCCESSFUL or 3)",
    )
    run.add_argument(
        "--job-history-failed",
        type=int,
        help="failed Jobs kept per placement (default: $PLACEMENT_JOB_HISTORY_FAILED or 1)",
    )
    run.add_argument(
        "--kubeconfig",
        help="a kubeconfig file (default: in-cluster ServiceAccount, or $KUBECONFIG)",
    )
    run.add_argument(
        "--metrics-address",
        help="HOST:PORT for the operator's own /metrics; empty turns it off "
        "(default: $PLACEMENT_METRICS_ADDRESS or 0.0.0.0:8081)",
    )
    run.add_argument(
        "--log-format", choices=["text", "json"], help="default: $PLACEMENT_LOG_FORMAT or text"
    )
    run.add_argument(
        "--posting-level",
        help="log level from which log lines also become Events "
        "(default: $PLACEMENT_POSTING_LEVEL or WARNING)",
    )
    run.add_argument(
        "--metrics-namespace-scope",
        action=argparse.BooleanOptionalAction,
        default=None,
        help='put namespace="<the placement\'s namespace>" on every selector of its PromQL '
        "and block a placement whose query names another namespace "
        "(default: $PLACEMENT_SCOPE_METRICS_TO_NAMESPACE or on)",
    )
    run.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        help="the operator's log lines from this level on "
        "(default: $PLACEMENT_LOG_LEVEL or INFO; kopf's per-tick lines are DEBUG)",
    )
    run.add_argument("--verbose", action="store_true", help="the same as --log-level DEBUG")

    commands.add_parser("crd", help="print the CustomResourceDefinition (YAML)")

    explain = commands.add_parser("explain", help="the decision for one placement, no cluster")
    explain.add_argument("file", type=Path, help="a WorkloadPlacement manifest (YAML)")
    explain.add_argument(
        "--replicas", type=whole(0), required=True, help="current replicas of the Deployment"
    )
    explain.add_argument(
        "--utilization",
        type=fraction,
        required=True,
        help="useful utilization of the realtime fleet, 0..1",
    )
    explain.add_argument(
        "--queue-depth", type=non_negative, help="work waiting, as the queue query reports it"
    )
    explain.add_argument(
        "--requests",
        type=non_negative,
        help="requests (or tokens, metrics.requestsUnit) processed per second: cost per request",
    )
    explain.add_argument(
        "--async-queue",
        type=non_negative,
        help="the value of spec.async.queue (async needs a readable queue; default: none read)",
    )
    explain.add_argument(
        "--no-keda",
        action="store_true",
        help="KEDA is not installed (async then stays realtime: AsyncNeedsKeda)",
    )
    explain.add_argument(
        "--idle-hours",
        type=non_negative,
        help="hours a day no work arrives (async runs warmReplicas then; default 0)",
    )
    explain.add_argument(
        "--demand",
        type=non_negative,
        help="work arriving per second, as metrics.demand reports it (the forecast's unit)",
    )
    explain.add_argument("--now", type=_aware_datetime, help="ISO-8601 time (default: now)")
    explain.add_argument(
        "--namespace",
        help="the namespace the placement is applied in, when the file has no "
        "metadata.namespace (a different one is an error): a query naming another namespace, "
        "or a protected target there, is refused as the operator refuses it",
    )
    explain.add_argument(
        "-o",
        "--output",
        choices=OUTPUT_FORMATS,
        default="text",
        help="text (a worksheet), json or yaml (default text)",
    )

    _add_replay_commands(commands)
    return parser


def _add_replay_commands(commands: Any) -> None:
    replay = commands.add_parser(
        "replay",
        help="run a recorded series through the operator's decisions and the oracle",
        description="Feeds a series (timestamp, replicas, utilization[, queue_depth, "
        "job_outcome]) through decide() on a simulated clock and prices always-realtime, "
        "the operator and the oracle. Prints a table; with --output writes summary.json and "
        "timeline.png.",
    )
    replay.add_argument("--placement", type=Path, required=True, help="WorkloadPlacement YAML")
    replay.add_argument("--series", type=Path, required=True, help="series CSV")
    replay.add_argument("--output", type=Path, help="directory for summary.json, timeline.png")
    replay.add_argument(
        "--batch-efficiency",
        type=positive,
        help="true efficiency of the simulated Jobs (default: the declared one)",
    )
    replay.add_argument(
        "--retry-rate",
        type=below_one,
        help="true failed share of the Jobs' pod-hours (default: the declared one)",
    )
    replay.add_argument(
        "--format",
        choices=OUTPUT_FORMATS,
        default="text",
        help="what is printed: text (a table), json or yaml (the summary with its decisions); "
        "default text",
    )
    replay.add_argument(
        "--keep-mode",
        action="store_true",
        help="keep spec.mode (default: replay as Enforce, which is the question a replay asks)",
    )

    series = commands.add_parser("series", help="make a series CSV for `placement replay`")
    kinds = series.add_subparsers(dest="source", required=True)
    trace = kinds.add_parser(
        "from-trace",
        help="an Azure LLM inference trace as the load of a fleet, its span scaled to a day",
    )
    trace.add_argument(
        "trace", type=Path, help="CSV with TIMESTAMP, ContextTokens, GeneratedTokens"
    )
    trace.add_argument("--replicas", type=whole(1), required=True, help="realtime replicas")
    capacity = trace.add_mutually_exclusive_group(required=True)
    capacity.add_argument("--capacity", type=positive, help="tokens/s one replica serves")
    capacity.add_argument(
        "--mean-utilization",
        type=positive_fraction,
        help="state the capacity so the trace's mean load is this utilization",
    )
    trace.add_argument(
        "--tokens",
        choices=["total", "generated", "context"],
        default="total",
        help="which tokens are the load (default total)",
    )
    trace.add_argument(
        "--start",
        type=_moment,
        default=dt.datetime(2026, 11, 23, tzinfo=dt.UTC),
        help="when the series' day begins (default 2026-11-23T00:00:00Z)",
    )
    trace.add_argument("--step", default="5m", help="series step, in the scaled time (default 5m)")
    trace.add_argument("--days", type=whole(1), default=1, help="repeat the day this many times")
    trace.add_argument("--output", type=Path, required=True, help="series CSV to write")

    prom = kinds.add_parser(
        "from-prometheus",
        help="a live placement's history: range queries of its utilization (and queue depth)",
    )
    prom.add_argument("--placement", type=Path, required=True, help="WorkloadPlacement YAML")
    prom.add_argument(
        "--prometheus-url",
        required=True,
        help="the Prometheus HTTP API; credentials, CA bundle and headers as for `run`, from "
        "PLACEMENT_PROMETHEUS_BEARER_TOKEN, _BASIC_AUTH_USERNAME/_PASSWORD, _CA_FILE, _HEADERS",
    )
    prom.add_argument("--start", type=_moment, required=True, help="ISO 8601 or Unix seconds")
    prom.add_argument("--end", type=_moment, required=True, help="ISO 8601 or Unix seconds")
    prom.add_argument("--step", default="5m", help="range query step (default 5m)")
    replicas = prom.add_mutually_exclusive_group()
    replicas.add_argument("--replicas", type=whole(0), help="a fixed replica count")
    replicas.add_argument(
        "--replicas-query",
        help="PromQL for the Deployment's replicas (default: kube-state-metrics' "
        "kube_deployment_spec_replicas for the placement's namespace and target)",
    )
    prom.add_argument(
        "--namespace",
        help="the placement's namespace, which its queries are confined to as the operator "
        "confines them (default: metadata.namespace, else default)",
    )
    prom.add_argument("--timeout", type=positive, default=30.0, help="seconds per query")
    prom.add_argument("--output", type=Path, required=True, help="series CSV to write")


def read_manifest(path: Path) -> dict[str, Any]:
    """A WorkloadPlacement manifest (or only its spec) from a YAML file, or a CommandError
    that says what the file holds instead."""
    try:
        document = yaml.safe_load(path.read_text())
    except UnicodeDecodeError:
        raise CommandError(f"{path}: not a text file; expected a WorkloadPlacement YAML") from None
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise CommandError(f"{path}: not valid YAML: {_first_line(error)}") from None
    if document is None:
        raise CommandError(f"{path} is empty; expected a WorkloadPlacement manifest")
    if not isinstance(document, dict):
        raise CommandError(
            f"{path} holds a YAML {type(document).__name__}; expected a WorkloadPlacement "
            "manifest (a mapping with apiVersion, kind, metadata and spec)"
        )
    kind = document.get("kind")
    if kind is not None and kind != "WorkloadPlacement":
        raise CommandError(f"{path} holds a {kind}, not a WorkloadPlacement")
    return document


def _first_line(error: Exception) -> str:
    return " ".join(str(error).split())[:300]


def _invalid(path: Path, error: ValidationError, prefix: str = "") -> CommandError:
    problems = [
        f"{prefix}{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
        for problem in error.errors()[:10]
    ]
    return CommandError(f"{path} is not a valid WorkloadPlacement:\n  " + "\n  ".join(problems))


def _load_placement(path: Path) -> Any:
    from placement.core.api import WorkloadPlacement

    manifest = read_manifest(path)
    try:
        return WorkloadPlacement.model_validate(manifest)
    except ValidationError as error:
        raise _invalid(path, error) from None


def _replay(args: argparse.Namespace) -> int:
    from placement.replay.replay import ReplayOptions, replay
    from placement.replay.report import summary_json, table, write_outputs
    from placement.replay.series import SeriesError, parse_series

    placement = _load_placement(args.placement)
    try:
        samples = parse_series(args.series.read_text())
        result = replay(
            placement.spec,
            samples,
            name=placement.name or placement.spec.target.deployment,
            options=ReplayOptions(
                batch_efficiency=args.batch_efficiency,
                retry_rate=args.retry_rate,
                enforce=not args.keep_mode,
            ),
        )
    except UnicodeDecodeError:
        raise CommandError(f"{args.series}: not a text file; expected a series CSV") from None
    except OSError as error:
        raise CommandError(f"cannot read {args.series}: {error.strerror or error}") from None
    except (SeriesError, ValueError) as error:
        raise CommandError(f"{args.series}: {_first_line(error)}") from None
    if args.format == "text":
        print(table(result))
    else:
        print(_formatted(summary_json(result), args.format))
    if args.output:
        try:
            summary, plot = write_outputs(result, args.output)
        except OSError as error:
            raise CommandError(
                f"cannot write to {args.output}: {error.strerror or error}"
            ) from None
        print(f"\nwrote {summary} and {plot}", file=sys.stderr if args.format != "text" else None)
    return 0


def _formatted(data: Any, output: str) -> str:
    if output == "yaml":
        return yaml.safe_dump(data, sort_keys=False).rstrip()
    return json.dumps(data, indent=2)


def _series(args: argparse.Namespace) -> int:
    from placement.core.durations import parse_duration
    from placement.replay.series import format_series

    try:
        step = parse_duration(args.step)
    except ValueError as error:
        raise UsageError(f"--step: {error}") from None
    # Checked before any query: Prometheus refuses both with a 400 that names no flag, and a
    # trace cut into steps of 0 would never end.
    if step <= dt.timedelta(0):
        raise UsageError(f"--step must be longer than 0s, got {args.step!r}")
    if args.source == "from-prometheus" and args.start >= args.end:
        raise UsageError(
            f"--start ({args.start:%Y-%m-%dT%H:%M:%SZ}) must be before --end "
            f"({args.end:%Y-%m-%dT%H:%M:%SZ})"
        )
    try:
        samples = (
            _trace_series(args, step)
            if args.source == "from-trace"
            else _prometheus_series(args, step)
        )
    except CommandError:
        raise
    except UnicodeDecodeError:
        raise CommandError(f"{args.trace}: not a text file; expected a trace CSV") from None
    except OSError as error:
        where = getattr(error, "filename", None) or "a file"
        raise CommandError(f"cannot read {where}: {error.strerror or error}") from None
    except (ValueError, RuntimeError) as error:
        raise CommandError(_first_line(error)) from None
    if len(samples) < 2:
        raise CommandError("fewer than two samples: nothing to replay")
    try:
        args.output.write_text(format_series(samples))
    except OSError as error:
        raise CommandError(f"cannot write {args.output}: {error.strerror or error}") from None
    print(f"wrote {len(samples)} samples to {args.output}")
    return 0


def _trace_series(args: argparse.Namespace, step: dt.timedelta) -> list[Any]:
    from placement.replay.traces import (
        TokenKind,
        mean_tokens_per_second,
        parse_trace,
        trace_to_series,
    )

    requests = parse_trace(args.trace.read_text())
    kind = TokenKind(args.tokens)
    capacity = args.capacity
    if capacity is None:
        capacity = mean_tokens_per_second(requests, kind) / (args.replicas * args.mean_utilization)
    print(f"capacity {capacity:.1f} {kind} tokens/s per replica, {args.replicas} replicas")
    return trace_to_series(
        requests,
        replicas=args.replicas,
        capacity_per_replica=capacity,
        start=args.start,
        step=step,
        days=args.days,
        kind=kind,
    )


def _prometheus_series(args: argparse.Namespace, step: dt.timedelta) -> list[Any]:
    from placement.adapters.prometheus import MetricsReader, QueryLimits, RangeQueryError
    from placement.core.tenancy import ScopeError, scoped_spec
    from placement.replay.series import join_series
    from placement.runtime.config import OperatorConfig

    placement = _load_placement(args.placement)
    namespace = args.namespace or placement.metadata.get("namespace") or "default"
    # The operator's connection settings (PLACEMENT_PROMETHEUS_BEARER_TOKEN...) and answer
    # bounds (PLACEMENT_PROMETHEUS_MAX_SERIES, _MAX_HISTORY_BYTES) apply here too.
    connection = OperatorConfig.from_environment(
        prometheus_url=args.prometheus_url,
        prometheus_timeout_seconds=args.timeout,
    )
    connection.validate()
    try:
        # The queries the operator runs: confined to the placement's namespace (as written
        # they read every namespace's series of that name, `nightly-enrichment`'s for one).
        spec = scoped_spec(
            placement.spec, namespace if connection.scope_metrics_to_namespace else None
        )
    except ScopeError as error:
        raise CommandError(
            f"{args.placement}: {error} (the namespace: --namespace, else metadata.namespace, "
            "else default)"
        ) from None
    reader = MetricsReader(
        args.prometheus_url,
        timeout=args.timeout,
        headers=connection.prometheus_request_headers(),
        basic_auth=connection.prometheus_basic_auth(),
        ca_file=connection.prometheus_ca_file,
        limits=QueryLimits(
            connection.prometheus_max_series,
            connection.prometheus_max_bytes,
            connection.prometheus_max_history_bytes,
        ),
    )
    utilization = reader.range_values(spec.metrics.utilization, args.start, args.end, step)
    replicas: Any = args.replicas
    if replicas is None:
        query = args.replicas_query or (
            f'max(kube_deployment_spec_replicas{{namespace="{namespace}",'
            f'deployment="{spec.target.deployment}"}})'
        )
        replicas = reader.range_values(query, args.start, args.end, step)
    queue: list[tuple[dt.datetime, float]] = []
    if spec.metrics.queue_depth:
        try:
            queue = reader.range_values(spec.metrics.queue_depth, args.start, args.end, step)
        except RangeQueryError as error:  # informative only, as in the operator
            print(f"queue depth left out: {error}", file=sys.stderr)
    return join_series(utilization, replicas, queue)


def _moment(text: str) -> dt.datetime:
    from placement.replay.series import parse_time

    try:
        return parse_time(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"not an ISO-8601 time or Unix seconds: {text!r}"
        ) from error


def _aware_datetime(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--now: not an ISO-8601 time: {text!r}") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _explain_namespace(args: argparse.Namespace, manifest: dict[str, Any]) -> str | None:
    """metadata.namespace, else --namespace; both and different: an error naming both."""
    written = (manifest.get("metadata") or {}).get("namespace")
    written = written if isinstance(written, str) and written else None
    if written and args.namespace and args.namespace != written:
        raise CommandError(
            f"{args.file}: metadata.namespace is {written!r} but --namespace is "
            f"{args.namespace!r}; a placement lives in one namespace: drop --namespace or "
            "make them agree"
        )
    return written or args.namespace or None


def _explain_settings(namespace: str | None) -> dict[str, Any]:
    """What the operator is configured with, from the same variables (as the chart sets
    them): metrics scoping, the job pod policy, the protected targets."""
    from placement.core.jobpolicy import JobPodPolicy, ProtectedTargets
    from placement.runtime.config import _env_bool, _env_list

    try:
        policy = os.environ.get("PLACEMENT_JOB_POD_POLICY", "").strip()
        return {
            "namespace": namespace,
            "scope_metrics": _env_bool("PLACEMENT_SCOPE_METRICS_TO_NAMESPACE", True),
            "job_pod_policy": JobPodPolicy.from_json(policy) if policy else JobPodPolicy(),
            "protected": ProtectedTargets.build(
                namespaces=_env_list("PLACEMENT_PROTECTED_NAMESPACES"),
                deployments=_env_list("PLACEMENT_PROTECTED_DEPLOYMENTS"),
                operator_namespace=os.environ.get("PLACEMENT_OPERATOR_NAMESPACE") or None,
                operator_deployment=os.environ.get("PLACEMENT_OPERATOR_DEPLOYMENT") or None,
            ),
        }
    except ValueError as error:
        raise CommandError(str(error)) from None


def _explain(args: argparse.Namespace) -> int:
    from placement.core.explain import WouldBlock, explain
    from placement.core.tenancy import ScopeError

    manifest = read_manifest(args.file)
    now = args.now or dt.datetime.now(dt.UTC)
    settings = _explain_settings(_explain_namespace(args, manifest))
    try:
        result = explain(
            manifest,
            args.replicas,
            args.utilization,
            args.queue_depth,
            now,
            requests=args.requests,
            async_queue=args.async_queue,
            keda_installed=not args.no_keda,
            idle_hours=args.idle_hours,
            demand=args.demand,
            **settings,
        )
    except ValidationError as error:
        raise _invalid(args.file, error, prefix="" if "spec" in manifest else "spec.") from None
    except ScopeError as error:
        # The operator blocks such a placement (InvalidSpec) before it reads anything.
        raise CommandError(
            f"{args.file} would be blocked by the operator (InvalidSpec): {error}"
        ) from None
    except WouldBlock as blocked:
        raise CommandError(
            f"{args.file} would be blocked by the operator ({blocked.reason}): {blocked.detail}"
        ) from None
    if args.output == "text":
        print(_worksheet(result))
    else:
        print(_formatted(result, args.output))
    return 0


def _async_worksheet(result: dict[str, Any]) -> list[str]:
    currency = result["currency"]
    lines: list[str] = []
    terms = result.get("asyncBreakdown")
    if terms:
        lines += [
            "",
            f"  async capacity avoided     {terms['capacityAvoided']:>10.2f} {currency}/day"
            f"  ({terms['expectedReplicas']:g} replicas expected, {terms['busyReplicas']} while "
            f"busy, {terms['idleHoursPerDay']:g}h idle)",
            f"- queue                    {terms['queue']:>10.2f}",
            f"- operations               {terms['operations']:>10.2f}",
            f"= async savings             {terms['savingsPerDay']:>10.2f} {currency}/day",
        ]
    per = result.get("costPerRequest")
    if per:
        now = "unknown" if per["measured"] is None else f"{per['measured']:.4g} {currency}"
        later = (
            ""
            if per["forecast"] is None
            else f", {per['forecast']:.4g} {currency} in {per['mode']}"
        )
        lines += ["", f"cost per {per['unit']}: {now} now{later}"]
    return lines


def _worksheet(result: dict[str, Any]) -> str:
    currency = result["currency"]
    lines = [f"{result['reason']}: {result['message']}", ""]
    breakdown = result.get("breakdown")
    if breakdown:
        lines.append(
            f"  realtime capacity avoided  {breakdown['capacityAvoided']:>10.2f} {currency}/day"
        )
        for key, label in (
            ("batchProcessing", "batch processing"),
            ("dataStaging", "data staging"),
            ("retries", "retries"),
            ("operations", "operations"),
            ("missedWindowRisk", "missed windows"),
        ):
            lines.append(f"- {label:<25}{breakdown[key]:>10.2f}")
        total = result["batchSavingsPerDay"]
        lines.append(f"= savings                   {total:>10.2f} {currency}/day")
    lines += _async_worksheet(result)
    inputs = {k: v for k, v in result["inputs"].items() if v is not None}
    lines.append("")
    lines.append("inputs: " + ", ".join(f"{k}={v}" for k, v in inputs.items()))
    window = result["window"]
    lines.append(
        f"window: {window['start']} -> {window['end']} ({'open' if window['open'] else 'next'})"
    )
    hold = result.get("plannedHold")
    if hold:
        lines.append(
            f"planned hold: {hold['from']} -> {hold['until']} ({hold['hours']:g}h): forecast "
            f"{hold['forecastWorkReplicaHours']:.2f} replica-hours, "
            f"{hold['forecastBatchPodHours']:.2f} batch pod-hours at the high quantile <= "
            f"{hold['windowCapacityPodHours']:.2f} window capacity; forecast: {hold['forecast']}"
        )
    lines.append(
        f"action: {result['action']} (phase {result['phase']}, "
        f"{'would act' if result['actuate'] else 'changes nothing'})"
    )
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    import kopf

    from placement.core.api import GROUP, PLURAL
    from placement.runtime.config import OperatorConfig
    from placement.runtime.handlers import register
    from placement.runtime.memory import (
        limit_malloc_arenas,
        probe_periodically,
        snapshot_on_signal,
        trim_periodically,
    )
    from placement.runtime.watchbodies import slim_watched_bodies

    limit_malloc_arenas()  # before any thread starts (the Prometheus readers, ours)
    trim_periodically()
    snapshot_on_signal()
    probe_periodically()
    slim_watched_bodies(GROUP, PLURAL)  # before kopf's watchers start

    try:
        config = OperatorConfig.from_environment(
            prometheus_url=args.prometheus_url,
            prometheus_timeout_seconds=args.prometheus_timeout,
            prometheus_max_series=args.prometheus_max_series,
            prometheus_max_bytes=args.prometheus_max_bytes,
            prometheus_max_history_bytes=args.prometheus_max_history_bytes,
            prometheus_max_batch_series=args.prometheus_max_batch_series,
            prometheus_max_batch_bytes=args.prometheus_max_batch_bytes,
            history_refresh_seconds=args.history_refresh,
            tick_seconds=args.tick,
            query_mode=args.query_mode,
            metrics_max_age_seconds=args.metrics_max_age,
            namespaces=tuple(args.namespace) or None,
            kubeconfig=args.kubeconfig,
            metrics_address=args.metrics_address,
            scope_metrics_to_namespace=args.metrics_namespace_scope,
            log_format=args.log_format,
            peering=args.peering,
            priority=args.priority,
            peering_lifetime_seconds=args.peering_lifetime,
            api_timeout_seconds=args.api_timeout,
            health_stall_seconds=args.health_stall,
            job_history_successful=args.job_history_successful,
            job_history_failed=args.job_history_failed,
            posting_level=(
                logging.getLevelName(args.posting_level.upper()) if args.posting_level else None
            ),
            log_level="DEBUG" if args.verbose else args.log_level,
        )
    except ValueError as error:
        # Flags or PLACEMENT_* variables: a usage error.
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE_ERROR
    # kopf's own formatters: text with the object as a prefix, or JSON with it as a field.
    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.FULL,
        log_prefix=config.log_format != "json",
    )
    logging.getLogger().setLevel(config.log_level)
    registry = kopf.OperatorRegistry()
    telemetry = register(registry, config)
    endpoint = config.metrics_endpoint()
    if endpoint is not None:
        telemetry.serve(*endpoint)
    kopf.run(
        registry=registry,
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        standalone=config.peering is None,
        peering_name=config.peering,
        priority=config.priority,
        liveness_endpoint=args.liveness or None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
