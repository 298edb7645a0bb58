"""`placement`: run the operator, print the CRD, or explain one placement without a cluster.

placement run --prometheus-url http://prometheus:9090 [--namespace NS ...]
placement crd > crds/workloadplacements.placement.runplacement.io.yaml
placement explain examples/nightly-enrichment.yaml --replicas 4 --utilization 0.2
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from placement import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="placement", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"placement {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator")
    run.add_argument("--prometheus-url", help="default: $PLACEMENT_PROMETHEUS_URL")
    run.add_argument("--prometheus-timeout", type=float, help="seconds per query (default 5)")
    run.add_argument("--tick", type=float, help="seconds between looks at each placement")
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
        help="no peering: for a single replica (default: peering, for HA)",
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
    run.add_argument("--verbose", action="store_true")

    commands.add_parser("crd", help="print the CustomResourceDefinition (YAML)")

    explain = commands.add_parser("explain", help="the decision for one placement, no cluster")
    explain.add_argument("file", type=Path, help="a WorkloadPlacement manifest (YAML)")
    explain.add_argument("--replicas", type=int, required=True, help="current replicas")
    explain.add_argument(
        "--utilization",
        type=float,
        required=True,
        help="useful utilization of the realtime fleet, 0..1",
    )
    explain.add_argument("--queue-depth", type=float)
    explain.add_argument("--now", type=_aware_datetime, help="ISO-8601 time (default: now)")
    explain.add_argument("--output", choices=["text", "json"], default="text")

    args = parser.parse_args(argv)
    if args.command == "crd":
        from placement.crd import render_crd_yaml

        sys.stdout.write(render_crd_yaml())
        return 0
    if args.command == "explain":
        return _explain(args)
    return _run(args)


def _aware_datetime(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--now: not an ISO-8601 time: {text!r}") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _explain(args: argparse.Namespace) -> int:
    from placement.explain import explain

    try:
        manifest = yaml.safe_load(args.file.read_text())
    except (OSError, yaml.YAMLError) as error:
        print(f"error: cannot read {args.file}: {error}", file=sys.stderr)
        return 2
    now = args.now or dt.datetime.now(dt.UTC)
    try:
        result = explain(manifest, args.replicas, args.utilization, args.queue_depth, now)
    except ValidationError as error:
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"])
            print(f"error: {args.file}: {where}: {problem['msg']}", file=sys.stderr)
        return 2
    if args.output == "json":
        print(json.dumps(result, indent=2))
    else:
        print(_worksheet(result))
    return 0


def _worksheet(result: dict[str, Any]) -> str:
    currency = result["currency"]
    lines = [result["message"], ""]
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
        ):
            lines.append(f"- {label:<25}{breakdown[key]:>10.2f}")
        lines.append(f"= savings                   {result['savingsPerDay']:>10.2f} {currency}/day")
    inputs = {k: v for k, v in result["inputs"].items() if v is not None}
    lines.append("")
    lines.append("inputs: " + ", ".join(f"{k}={v}" for k, v in inputs.items()))
    window = result["window"]
    lines.append(
        f"window: {window['start']} -> {window['end']} ({'open' if window['open'] else 'next'})"
    )
    lines.append(
        f"action: {result['action']} (phase {result['phase']}, "
        f"{'would act' if result['actuate'] else 'changes nothing'})"
    )
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    import kopf

    from placement.config import OperatorConfig
    from placement.handlers import register

    try:
        config = OperatorConfig.from_environment(
            prometheus_url=args.prometheus_url,
            prometheus_timeout_seconds=args.prometheus_timeout,
            tick_seconds=args.tick,
            namespaces=tuple(args.namespace) or None,
            kubeconfig=args.kubeconfig,
            metrics_address=args.metrics_address,
            scope_metrics_to_namespace=args.metrics_namespace_scope,
            log_format=args.log_format,
            posting_level=(
                logging.getLevelName(args.posting_level.upper()) if args.posting_level else None
            ),
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # kopf's own formatters: text with the object as a prefix, or JSON with it as a field.
    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.FULL,
        log_prefix=config.log_format != "json",
    )
    registry = kopf.OperatorRegistry()
    telemetry = register(registry, config)
    endpoint = config.metrics_endpoint()
    if endpoint is not None:
        telemetry.serve(*endpoint)
    kopf.run(
        registry=registry,
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        standalone=args.standalone,
        liveness_endpoint=args.liveness or None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
