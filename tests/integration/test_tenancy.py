"""Tenancy on the real control plane and Prometheus: a placement reads only its own
namespace's metrics, acts only in its own namespace, and credentials never leak.

Series of two namespaces share a metric and a deployment label; the other namespace's
utilization is a number (0.7317) that must appear nowhere the placement's tenant can read.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from prometheus_client import Gauge

from placement.adapters.prometheus import averaged
from placement.core.tenancy import scope_to_namespace
from placement.localenv.cluster import LocalCluster
from placement.localenv.operator_process import start_operator
from placement.localenv.process import free_port
from placement.localenv.prometheus import LocalPrometheus
from tests.integration.harness import UTILIZATION_METRIC, Placements, placement
from tests.integration.wait import until

OWN, OTHER = 0.2, 0.7317
LOOKBACK = dt.timedelta(minutes=1)


@pytest.fixture
def other_namespace(core_v1: client.CoreV1Api) -> Iterator[str]:
    name = f"other-tenant-{uuid.uuid4().hex[:10]}"
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core_v1.delete_namespace(name)


def _two_tenants(
    placements: Placements,
    other: str,
    prometheus: LocalPrometheus,
    utilization: Gauge,
) -> str:
    """A deployment of one name in both namespaces, at OWN here and OTHER there, scraped.
    Its name is new to the session's exporter, so only these two series carry it."""
    name = f"shared-{uuid.uuid4().hex[:10]}"
    placements.deployment(name, 4)
    utilization.labels(placements.namespace, name).set(OWN)
    utilization.labels(other, name).set(OTHER)
    for namespace, value in ((placements.namespace, OWN), (other, OTHER)):
        selector = f'{UTILIZATION_METRIC}{{namespace="{namespace}",deployment="{name}"}}'
        prometheus.wait_for_value(averaged(f"sum({selector})", LOOKBACK), value)
    return name


def _everything_the_tenant_sees(placements: Placements, name: str) -> str:
    events = [e.message for e in placements.events(name)]
    return json.dumps(placements.status(name)) + json.dumps(events)


@pytest.mark.usefixtures("operator")
def test_a_query_without_a_namespace_reads_only_its_own_namespace(
    placements: Placements,
    other_namespace: str,
    prometheus: LocalPrometheus,
    utilization: Gauge,
) -> None:
    shared = _two_tenants(placements, other_namespace, prometheus, utilization)
    query = f'sum({UTILIZATION_METRIC}{{deployment="{shared}"}})'
    # As written, the query sums both tenants.
    prometheus.wait_for_value(query, OWN + OTHER)
    manifest = placement("reader", placements.namespace, deployment=shared, mode="Recommend")
    manifest["spec"]["metrics"]["utilization"] = query
    placements.apply(manifest)

    status = placements.wait_for_reason("reader", "BatchRecommended")
    assert status["decision"]["inputs"]["utilization"] == pytest.approx(OWN)
    assert str(OTHER) not in _everything_the_tenant_sees(placements, "reader")


@pytest.mark.usefixtures("operator")
@pytest.mark.parametrize(
    "field",
    [
        "metrics.utilization",
        "metrics.queueDepth",
        "metrics.demand",
        "metrics.requests",
        "async.queue",
    ],
)
@pytest.mark.parametrize("matcher", ["=", "=~"])
def test_a_query_naming_another_namespace_blocks_the_placement_and_reads_nothing(
    placements: Placements,
    other_namespace: str,
    prometheus: LocalPrometheus,
    utilization: Gauge,
    operator: object,
    field: str,
    matcher: str,
) -> None:
    shared = _two_tenants(placements, other_namespace, prometheus, utilization)
    manifest = placement("peek", placements.namespace, deployment=shared, mode="Recommend")
    # `=~` with both namespaces in it would read the other tenant's series beside this one's.
    value = other_namespace if matcher == "=" else f"{placements.namespace}|{other_namespace}"
    selector = f'{UTILIZATION_METRIC}{{namespace{matcher}"{value}",deployment="{shared}"}}'
    section, key = field.split(".")
    manifest["spec"].setdefault(section, {})[key] = f"sum({selector})"
    placements.apply(manifest)

    event = placements.wait_for_event("peek", "InvalidSpec")
    assert event.type == "Warning"
    assert f"spec.{field}" in event.message
    assert f'namespace{matcher}"{value}"' in event.message
    # The Event is posted before the status patch lands.
    until(lambda: placements.status("peek").get("phase"), lambda p: p == "Blocked", what="Blocked")
    assert str(OTHER) not in _everything_the_tenant_sees(placements, "peek")
    assert placements.replicas(shared) == 4


def _escaped(character: str, form: str) -> tuple[str, str]:
    """`character` written with an escape, and what is left once its backslash is dropped."""
    code = ord(character)
    written = {"octal": f"{code:03o}", "hex": f"x{code:02x}", "unicode": f"u{code:04x}"}[form]
    return "\\" + written, written


@pytest.mark.usefixtures("operator")
@pytest.mark.parametrize("form", ["octal", "unicode"])
def test_an_escaped_own_namespace_reads_only_its_own_series_in_batched_mode(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge, form: str
) -> None:
    # `<ns>` with its last character escaped is this namespace; with the backslash dropped it
    # is another (`tenant-\141` / `tenant-141`), whose series hold OTHER.
    own = placements.namespace
    escape, undone = _escaped(own[-1], form)
    written, other = own[:-1] + escape, own[:-1] + undone
    shared = _two_tenants(placements, other, prometheus, utilization)
    manifest = placement("escaped", own, deployment=shared, mode="Recommend")
    manifest["spec"]["metrics"]["utilization"] = (
        f'sum({UTILIZATION_METRIC}{{namespace="{written}",deployment="{shared}"}})'
    )
    placements.apply(manifest)

    status = placements.wait_for_reason("escaped", "BatchRecommended")
    assert status["decision"]["inputs"]["utilization"] == pytest.approx(OWN)
    assert str(OTHER) not in _everything_the_tenant_sees(placements, "escaped")


@pytest.mark.usefixtures("operator")
@pytest.mark.parametrize("selector", ['{__name__=~".+"}', '{job=~".+"}'])
def test_a_selector_for_every_series_blocks_the_placement_naming_the_field(
    placements: Placements, selector: str
) -> None:
    placements.deployment("everything", 4)
    manifest = placement("everything", placements.namespace, deployment="everything")
    manifest["spec"]["metrics"]["utilization"] = f"avg({selector})"
    placements.apply(manifest)

    event = placements.wait_for_event("everything", "InvalidSpec")
    assert "spec.metrics.utilization" in event.message and "names no metric" in event.message
    until(
        lambda: placements.status("everything").get("phase"),
        lambda phase: phase == "Blocked",
        what="Blocked",
    )
    assert placements.replicas("everything") == 4


def test_a_shared_answer_over_the_series_bound_makes_its_placements_metrics_unavailable(
    cluster: LocalCluster,
    crd: str,
    placements: Placements,
    other_namespace: str,
    prometheus: LocalPrometheus,
    utilization: Gauge,
    tmp_path: Path,
) -> None:
    # A dedicated operator for this namespace only, bounded to 5 series per answer. Eight
    # workloads here make the shared query of this shape 8 series; the other namespace's
    # series are never part of it, nor of the message.
    own = placements.namespace
    for index in range(8):
        utilization.labels(own, f"crowd-{index}").set(OWN)
        utilization.labels(other_namespace, f"crowd-{index}").set(OTHER)
    selector = f'{UTILIZATION_METRIC}{{namespace="{own}",deployment=~"crowd-.*"}}'
    prometheus.wait_for_value(averaged(f"count({selector})", LOOKBACK), 8)
    placements.deployment("crowd-0", 4)
    process = start_operator(
        cluster.kubeconfig,
        prometheus.url,
        tmp_path / "operator.log",
        extra_args=["--namespace", own, "--prometheus-max-series", "5"],
    )
    try:
        # Recommend: the session operator, which also sees it under the default bound,
        # changes nothing either.
        placements.apply(placement("crowd", own, deployment="crowd-0", mode="Recommend"))
        events = until(
            lambda: placements.events("crowd"),
            lambda found: any(
                e.reason == "MetricsUnavailable" and "PLACEMENT_PROMETHEUS_MAX_SERIES" in e.message
                for e in found
            ),
            what="MetricsUnavailable (too-large) from the bounded operator",
        )
    finally:
        process.stop()
    message = next(e.message for e in events if "PLACEMENT_PROMETHEUS_MAX_SERIES" in e.message)
    assert "more than 5 series" in message and f"namespace {own}" in message
    assert other_namespace not in message and str(OTHER) not in message
    assert placements.replicas("crowd-0") == 4


@pytest.mark.usefixtures("operator")
def test_jobs_are_created_in_the_placements_namespace_only(
    placements: Placements,
    api_client: client.ApiClient,
    prometheus: LocalPrometheus,
    utilization: Gauge,
) -> None:
    placements.deployment("local", 4)
    utilization.labels(placements.namespace, "local").set(OWN)
    selector = f'{UTILIZATION_METRIC}{{namespace="{placements.namespace}",deployment="local"}}'
    prometheus.wait_for_value(averaged(selector, LOOKBACK), OWN)
    placements.apply(placement("local", placements.namespace, deployment="local"))

    # In the open window the move creates the window's Job.
    assert "created" in placements.wait_for_event("local", "MovedToBatch").message
    jobs = (
        client.BatchV1Api(api_client)
        .list_job_for_all_namespaces(label_selector="placement.runplacement.io/placement=local")
        .items
    )
    assert jobs
    assert {job.metadata.namespace for job in jobs} == {placements.namespace}


# Expressions whose rewriting is easy to get wrong; the real Prometheus must accept each.
TRICKY = [
    "up",
    f'sum by (deployment) (rate({UTILIZATION_METRIC}{{deployment=~"sh.*"}}[5m] offset 1m))',
    f"max_over_time({UTILIZATION_METRIC}[5m:])",
    f"avg_over_time(rate({UTILIZATION_METRIC}[1m])[5m:30s] offset 1m)",
    f'{{__name__=~"{UTILIZATION_METRIC}|up"}}',
    f'label_replace({UTILIZATION_METRIC}, "x", "{{$1}}", "deployment", "(.*)")',
    f"{UTILIZATION_METRIC} / on(deployment) group_left() sum by (deployment) (up)",
    f'{UTILIZATION_METRIC}{{deployment=~"a\\\\.b|shared"}} > bool 0.1',
    f"topk(1, {UTILIZATION_METRIC}) unless ignoring(job) up @ end()",
    f"# a comment\n-{UTILIZATION_METRIC}",
]


@pytest.mark.parametrize("expression", TRICKY)
def test_scoped_expressions_are_valid_for_the_real_prometheus(
    prometheus: LocalPrometheus, expression: str
) -> None:
    scoped = scope_to_namespace(expression, "team-a", field="spec.metrics.utilization")
    prometheus.query(scoped)  # raises on a Prometheus error
    prometheus.query(averaged(scoped, LOOKBACK))  # as the operator runs it


def test_credentials_in_the_prometheus_url_never_reach_logs_events_or_status(
    cluster: LocalCluster,
    crd: str,
    placements: Placements,
    prometheus: LocalPrometheus,
    utilization: Gauge,
    tmp_path: Path,
) -> None:
    # A dedicated operator for this namespace only, posting every log line (DEBUG) as an
    # Event, pointed at a port where nothing listens, through user:password. The placement is
    # a Recommend one, so the session operator, which also sees it, changes nothing either.
    placements.deployment("secretive", 4)
    utilization.labels(placements.namespace, "secretive").set(OWN)
    selector = f'{UTILIZATION_METRIC}{{namespace="{placements.namespace}",deployment="secretive"}}'
    prometheus.wait_for_value(averaged(selector, LOOKBACK), OWN)
    url = f"http://fleet-reader:s3cret@127.0.0.1:{free_port()}"
    log = tmp_path / "operator.log"
    process = start_operator(
        cluster.kubeconfig,
        url,
        log,
        extra_args=["--namespace", placements.namespace, "--verbose", "--posting-level", "DEBUG"],
    )
    try:
        placements.apply(
            placement("secretive", placements.namespace, deployment="secretive", mode="Recommend")
        )
        # Only the dedicated operator fails to reach Prometheus.
        until(
            lambda: placements.events("secretive"),
            lambda events: any(
                e.reason == "MetricsUnavailable" and "query error" in e.message for e in events
            ),
            what="MetricsUnavailable (query error) from the dedicated operator",
        )
        status = until(
            lambda: placements.status("secretive"),
            lambda s: "query error" in json.dumps(s),
            what="status written by the dedicated operator",
        )
    finally:
        process.stop()

    text = log.read_text()
    assert "secretive" in text  # it did look at the placement
    assert "s3cret" not in text
    assert "s3cret" not in json.dumps(status)
    everything = cluster.kubectl("get", "events", "-n", placements.namespace, "-o", "json").stdout
    assert "fleet-reader" in url and "s3cret" not in everything


@pytest.mark.usefixtures("operator")
def test_two_tenants_read_through_one_query_across_namespaces_get_their_own_numbers(
    api_client: client.ApiClient,
    placements: Placements,
    other_namespace: str,
    prometheus: LocalPrometheus,
    utilization: Gauge,
) -> None:
    # The other tenant's placement is evaluated first; this one, of the same shape, then
    # joins its batch: its first reading comes from one query over both namespaces
    # (`namespace=~"<other>|<own>"`), split by the namespace label.
    shared = _two_tenants(placements, other_namespace, prometheus, utilization)
    theirs = Placements(api_client, other_namespace)
    theirs.deployment(shared, 4)
    query = f'sum({UTILIZATION_METRIC}{{deployment="{shared}"}})'
    for tenant in (theirs, placements):
        manifest = placement("reader", tenant.namespace, deployment=shared, mode="Recommend")
        manifest["spec"]["metrics"]["utilization"] = query
        tenant.apply(manifest)
        tenant.wait_for_reason("reader", "BatchRecommended")
    mine, other = placements.status("reader"), theirs.status("reader")
    assert mine["decision"]["inputs"]["utilization"] == pytest.approx(OWN)
    assert other["decision"]["inputs"]["utilization"] == pytest.approx(OTHER)
    assert str(OTHER) not in _everything_the_tenant_sees(placements, "reader")
