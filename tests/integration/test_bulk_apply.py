"""A bulk apply on an operator with a single connection to the API server for its requests:
every placement gets its finalizer and its first decision (status and Event), kopf writes
each new placement once, and none of its requests times out waiting for the connection and is
sent again (bench/scale.py found 3 kopf PATCHes per placement at 2,000, a third refused).
The API server's own apiserver_request_total counts the requests."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from placement.core.api import GROUP, PLURAL, VERSION
from placement.core.labels import FINALIZER
from placement.localenv.cluster import LocalCluster
from placement.localenv.operator_process import OperatorProcess, start_operator
from placement.localenv.prometheus import LocalPrometheus
from tests.integration.harness import Placements, operator_stopped, placement
from tests.integration.wait import until

PLACEMENTS = 60
API_TIMEOUT = 2  # seconds: kopf's request timeout too
_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def patches(cluster: LocalCluster) -> dict[str, float]:
    """PATCHes of placements (not of their status) by response code."""
    counts: dict[str, float] = {}
    for line in cluster.kubectl("get", "--raw", "/metrics").stdout.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        if (
            labels.get("resource") == "workloadplacements"
            and labels.get("verb") == "PATCH"
            and not labels.get("subresource")
        ):
            counts[labels["code"]] = counts.get(labels["code"], 0.0) + float(match["value"])
    return counts


@pytest.fixture
def one_connection(
    operator: OperatorProcess, cluster: LocalCluster, prometheus: LocalPrometheus, tmp_path: Path
) -> Iterator[OperatorProcess]:
    with operator_stopped(operator):
        os.environ["PLACEMENT_API_CONNECTIONS"] = "1"  # the started operator inherits it
        try:
            own = start_operator(
                cluster.kubeconfig, prometheus.url, tmp_path / "operator.log", tick_seconds=1,
                extra_args=["--api-timeout", str(API_TIMEOUT)],
            )  # fmt: skip
        finally:
            os.environ.pop("PLACEMENT_API_CONNECTIONS", None)
        try:
            yield own
        finally:
            own.stop()


def test_placements_applied_at_once_are_each_decided_with_one_kopf_write(
    one_connection: OperatorProcess, cluster: LocalCluster, placements: Placements
) -> None:
    ns = placements.namespace
    names = [f"bulk-{i:02d}" for i in range(PLACEMENTS)]

    def being_deleted() -> list[str]:
        # PATCHes are counted cluster-wide: placements of earlier tests' namespaces still
        # being deleted (their finalizers removed, the garbage collector's own PATCHes) would
        # count as this test's. Measured once they are gone.
        items = placements.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
        return [
            f"{item['metadata']['namespace']}/{item['metadata']['name']}"
            for item in items
            if item["metadata"].get("deletionTimestamp")
        ]

    until(being_deleted, lambda left: not left, timeout=90, what="earlier placements deleted")
    time.sleep(1)
    before = patches(cluster)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: placements.apply(placement(n, ns, deployment=n)), names))

    def undecided() -> list[str]:
        items = placements.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
        return [
            item["metadata"]["name"]
            for item in items
            if not (item.get("status") or {}).get("decision")
            or FINALIZER not in item["metadata"].get("finalizers", [])
        ]

    until(undecided, lambda left: not left, timeout=120, what="every placement decided")
    for name in names[:: PLACEMENTS // 6]:  # each first decision has its Event
        reason = placements.status(name)["decision"]["reason"]
        placements.wait_for_event(name, reason)
    time.sleep(2)  # a retry would have been sent by now (kopf's first backoff is 1 s)
    made = {code: count - before.get(code, 0.0) for code, count in patches(cluster).items()}
    made = {code: count for code, count in made.items() if count}
    # Exactly one successful PATCH per placement. The counter is the API server's, for every
    # client and namespace: in the full suite one 422 PATCH of a placement by another client
    # has been seen in the window (this operator's log showed no failed or repeated request),
    # so a refused PATCH fails the test only through the log check below.
    assert made.get("200") == PLACEMENTS, f"PATCHes of placements by code: {made}"
    log = Path(one_connection.log_path).read_text()
    assert "Request attempt" not in log, "a kopf request failed and was sent again"
    assert "Unprocessable" not in log, "a kopf PATCH was refused"


def test_a_shutdown_with_every_placement_decided_says_nothing_per_placement(
    one_connection: OperatorProcess, placements: Placements
) -> None:
    """Each placement had a kopf daemon, and at 10,000 kopf logged "Daemon 'reconcile' did not
    exit in time. Leaving it orphaned." about 12,000 times at a SIGTERM. Standalone, one
    scheduler evaluates them: the operator exits on its own, without a line per placement or
    a traceback."""
    ns = placements.namespace
    names = [f"stop-{i:02d}" for i in range(20)]
    for name in names:
        placements.apply(placement(name, ns, deployment=name))
    until(
        lambda: [n for n in names if not (placements.status(n) or {}).get("decision")],
        lambda left: not left,
        timeout=120,
        what="every placement decided",
    )
    time.sleep(3)  # a few cycles of re-evaluations (evaluationInterval 1 s here)
    stopped = time.monotonic()
    one_connection.stop(timeout=30)
    took = time.monotonic() - stopped
    assert one_connection.exit_code() is not None
    log = Path(one_connection.log_path).read_text()
    tail = log[log.find("Signal SIGTERM") :] if "Signal SIGTERM" in log else log
    assert "did not exit in time" not in log
    assert "Traceback" not in tail
    said = [line for line in tail.splitlines() if "WARNING" in line or "ERROR" in line]
    assert said == [], "\n".join(said[:20])
    assert took < 20, f"the shutdown took {took:.0f}s"
