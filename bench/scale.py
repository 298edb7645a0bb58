"""How the operator scales with the number of placements, on the real local control plane and
a real Prometheus, batched queries and per-placement queries (KEDA's way) side by side.

    .venv/bin/python bench/scale.py --placements 1000 [--output FILE] [--plot FILE.png]
    .venv/bin/python bench/scale.py --placements 10,100,1000 --plot scale.png   # the sweep

For each N and each query mode, on a fresh cluster: N Deployments (2 replicas each, pods on
kwok nodes) and N placements of four realistic kinds, one utilization series per Deployment
(and a queue series for a quarter of them) in Prometheus, and the operator as its own process.
It measures:

- decided_*: seconds from each placement's create request until the placement has a decision
  (seen by a watch), p50 / p99 / max over the bulk apply;
- a steady window (nothing changes: constant series, decisions settled) with every placement
  due each second, so the operator is saturated: passes = the operator's evaluations
  (placement_reconcile_duration_seconds_count) / N; cycle_s = window / passes, the time one
  full re-evaluation of all placements takes; Prometheus queries, API requests and writes per
  pass from the servers' own counters (prometheus_http_requests_total, apiserver_request_total
  on the resources the operator touches); CPU seconds per pass and peak RSS from /proc, for
  the operator and beside it for kube-apiserver and etcd.

Every line is also printed; the last line of the output is one JSON object for the last N.
Everything started is stopped on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from placement.core.api import GROUP, PLURAL, VERSION
from placement.core.labels import FINALIZER
from placement.localenv.cluster import LocalCluster
from placement.localenv.operator_process import OperatorProcess, start_operator
from placement.localenv.process import ManagedProcess
from placement.localenv.prometheus import Exporter, LocalPrometheus
from placement.runtime.memory import SNAPSHOT_ENV

CRD_FILE = Path(__file__).parents[1] / "crds" / "workloadplacements.placement.runplacement.io.yaml"
UTILIZATION = "inference_useful_utilization"
QUEUE = "inference_queue_depth"
IMAGE = "registry.example/server:1.0"  # kwok never pulls it
REPLICAS = 2
PODS_PER_NODE = 250  # the kwok nodes' allocatable pods
PLACEMENTS_PER_NAMESPACE = 50
OPERATOR_RESOURCES = frozenset(
    {"deployments", "horizontalpodautoscalers", "jobs", "scaledobjects", PLURAL, "events"}
)
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY"})
MODES = ("batched", "per-placement")


# -- what is created ------------------------------------------------------------------------


def namespaces(n: int) -> list[str]:
    return [f"bench-{i:03d}" for i in range(max(1, math.ceil(n / PLACEMENTS_PER_NAMESPACE)))]


def workloads(n: int) -> list[tuple[str, str]]:
    """(namespace, deployment) for each placement."""
    spaces = namespaces(n)
    return [(spaces[i // PLACEMENTS_PER_NAMESPACE], f"model-{i:04d}") for i in range(n)]


def deployment(name: str) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=REPLICAS,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="server", image=IMAGE)]),
            ),
        ),
    )


def placement(index: int, namespace: str, name: str, now: dt.datetime) -> dict[str, Any]:
    """Four kinds, in turn: a nightly job that would move (Recommend: recommended, touches
    nothing), one whose window is hours away (DelayNotTolerated: its wait moves every
    evaluation), one that loses money (SavingsNegative), a user-visible endpoint."""
    kind = index % 4
    selector = f'namespace="{namespace}", deployment="{name}"'
    far = now + dt.timedelta(hours=5)
    metrics: dict[str, Any] = {"utilization": f"avg({UTILIZATION}{{{selector}}})"}
    if kind == 0:
        metrics["queueDepth"] = f"sum({QUEUE}{{{selector}}})"
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkloadPlacement",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "owner": "team-inference",
            "mode": "Recommend" if kind == 0 else "Enforce",
            "productRisk": "Medium",
            "target": {"deployment": name, "warmReplicas": 0},
            "latency": {"userVisible": kind == 3, "acceptableDelay": "1h" if kind == 1 else "24h"},
            "batch": {
                "window": {"start": "01:00", "end": "05:00", "timeZone": "UTC"}
                if kind != 1
                else {"start": f"{far:%H:%M}", "end": f"{far + dt.timedelta(hours=2):%H:%M}"},
                "retryWindow": "30m",
                "jobTemplate": {
                    "spec": {
                        "parallelism": 4,
                        "backoffLimit": 2,
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [{"name": "batch", "image": IMAGE}],
                            }
                        },
                    }
                },
            },
            "fallback": {"action": "RestoreRealtime"},
            "costs": {
                "realtimeReplicaHourly": 4.1,
                "batchPodHourly": 40.0 if kind == 2 else 1.6,
                "batchEfficiency": 1 if kind == 2 else 6,
                "dataStagingPerRun": 4,
                "operationsPerDay": 12,
                "retryRate": 0.05,
            },
            "metrics": {**metrics, "lookback": "1h"},
            # Every placement due at every look: the steady window then measures how long a
            # full pass takes, not how long the operator was told to wait.
            "evaluationInterval": "1s",
        },
    }


# -- counters the servers keep --------------------------------------------------------------

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:]+)\{(?P<labels>[^}]*)\} (?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(text: str, metric: str) -> Iterator[tuple[dict[str, str], float]]:
    for line in text.splitlines():
        if line.startswith(metric + "{"):
            match = _SAMPLE.match(line)
            if match and match["name"] == metric:
                yield dict(_LABEL.findall(match["labels"])), float(match["value"])


SERVERS = ("kube-apiserver", "etcd")


@dataclass(frozen=True)
class Counters:
    at: float
    evaluations: float
    api_requests: float
    api_writes: float
    prometheus_queries: float
    operator_cpu_s: float
    server_cpu_s: dict[str, float]
    prometheus_range_queries: float = 0.0  # the load histories' range queries
    # apiserver_request_total by "VERB resource code" (no WATCH), on the operator's resources:
    # which requests an idle cycle made (the counter has no client label: the controllers' and
    # kwok's requests on these resources count too)
    api_by_kind: dict[str, float] | None = None
    # the operator's cyclic garbage collections by generation (prometheus_client's collector)
    gc_collections: dict[str, float] | None = None
    # the placements' daemons' wakeups between evaluations, by what they found (due, not-due)
    wakeups: dict[str, float] | None = None
    # the batched reads' shapes halved (a slow answer) and doubled back, by direction
    batch_resizes: dict[str, float] | None = None


def read_counters(
    cluster: LocalCluster, prometheus: LocalPrometheus, operator: OperatorProcess
) -> Counters:
    api = cluster.kubectl("get", "--raw", "/metrics", timeout=120).stdout
    requests = writes = 0.0
    by_kind: dict[str, float] = {}
    for labels, value in samples(api, "apiserver_request_total"):
        if labels.get("resource") not in OPERATOR_RESOURCES or labels.get("verb") == "WATCH":
            continue
        requests += value
        kind = f"{labels.get('verb')} {labels.get('resource')}"
        if labels.get("subresource"):
            kind += "/" + labels["subresource"]
        key = f"{kind} {labels.get('code')}"
        by_kind[key] = by_kind.get(key, 0.0) + value
        if labels.get("verb") in WRITES:
            writes += value
    with urllib.request.urlopen(f"{prometheus.url}/metrics", timeout=30) as response:
        text = response.read().decode()
    handlers: dict[str, float] = {}
    for labels, value in samples(text, "prometheus_http_requests_total"):
        handler = labels.get("handler", "")
        handlers[handler] = handlers.get(handler, 0.0) + value
    queries = handlers.get("/api/v1/query", 0.0)
    with urllib.request.urlopen(operator.metrics_url, timeout=30) as response:
        own = response.read().decode()
    evaluations = sum(
        float(line.split()[-1])
        for line in own.splitlines()
        if line.startswith("placement_reconcile_duration_seconds_count")
    )
    collections = {
        labels["generation"]: value
        for labels, value in samples(own, "python_gc_collections_total")
        if "generation" in labels
    }
    wakeups = {
        labels["found"]: value
        for labels, value in samples(own, "placement_daemon_wakeups_total")
        if "found" in labels
    }
    resizes = {
        labels["direction"]: value
        for labels, value in samples(own, "placement_prometheus_batch_resizes_total")
        if "direction" in labels
    }
    pid = operator.pid
    assert pid is not None
    pids = cluster.pids()
    servers = {name: cpu_seconds(pids[name]) for name in SERVERS}
    return Counters(
        time.monotonic(),
        evaluations,
        requests,
        writes,
        queries,
        cpu_seconds(pid),
        servers,
        handlers.get("/api/v1/query_range", 0.0),
        by_kind,
        collections,
        wakeups,
        resizes,
    )


def increase(last: dict[str, float] | None, first: dict[str, float] | None) -> dict[str, float]:
    """What each counter of a labelled family grew by between two reads, where it grew."""
    last, first = last or {}, first or {}
    return {
        key: round(value - first.get(key, 0.0), 2)
        for key, value in sorted(last.items())
        if value > first.get(key, 0.0)
    }


def audited_reads(log: Path | None, since: dt.datetime, until: dt.datetime) -> dict[str, int]:
    """The gets and lists on the operator's resources the API server's audit log recorded
    between two moments, by "client verb resource code" (the client: the user agent's
    program, e.g. kopf, python, kube-controller-manager)."""
    found: Counter[str] = Counter()
    if log is None or not log.exists():
        return {}
    for line in log.read_text().splitlines():
        try:
            event = json.loads(line)
            at = dt.datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00"))
        except (ValueError, KeyError):
            continue
        resource = (event.get("objectRef") or {}).get("resource")
        if not since <= at < until or resource not in OPERATOR_RESOURCES:
            continue
        agent = (event.get("userAgent") or "?").split("/")[0].split(" ")[0]
        code = (event.get("responseStatus") or {}).get("code")
        found[f"{agent} {event.get('verb')} {resource} {code}"] += 1
    return dict(sorted(found.items()))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int, field: str = "VmHWM") -> float:
    """Peak resident memory (VmHWM), or the current one with field="VmRSS"."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def thread_count(pid: int) -> int:
    """The operator's threads at the end of the window (kopf's pool, clients', ours)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    memory = f"{memory_kb / 1024**2:.1f} GiB"
    return f"{os.cpu_count()} cores {model}, {memory}, Python {platform.python_version()}"


# -- one run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    window_s: float  # the steady window
    profile: Path | None  # where py-spy's output goes, if anywhere
    tracemalloc: Path | None = None  # where the operator's tracemalloc snapshots go, if anywhere


def profile(pid: int, stem: Path, say: Any, seconds: int = 20) -> None:
    """py-spy's samples of the operator's threads, raw and summarized by function."""
    raw = stem.with_suffix(".raw.txt")
    spy = Path(sys.executable).with_name("py-spy")
    command = [str(spy), "record", "-p", str(pid), "-d", str(seconds), "-r", "50"]
    subprocess.run(
        [*command, "-f", "raw", "-o", str(raw), "--nonblocking"],
        check=True,
        capture_output=True,
    )
    summary = summarize(raw.read_text())
    stem.with_suffix(".summary.txt").write_text(summary)
    say(summary)


def summarize(raw: str, top: int = 30) -> str:
    """Share of samples in which each function is on the stack (inclusive), most first."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        frames = {frame.split(" (")[0] + " " + _where(frame) for frame in stack.split(";")}
        for frame in frames:
            inclusive[frame] += int(count)
    lines = [f"py-spy: {total} samples; share of samples with the function on the stack"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"


def _where(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "module.py"
    inside = frame.rpartition("(")[2]
    return Path(inside.split(":")[0]).name if inside else ""


def take_snapshot(pid: int, path: Path, n: int, say: Any, top: int = 25) -> None:
    """The operator's live Python allocations (tracemalloc, on SIGUSR1), summed by file and
    by traceback, with bytes per placement; written beside the snapshot as a .txt."""
    import tracemalloc

    path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 600
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(1)
    if not path.exists():
        say("  no tracemalloc snapshot (is the operator tracing?)")
        return
    snap = tracemalloc.Snapshot.load(str(path))
    total = sum(stat.size for stat in snap.statistics("filename"))
    lines = [f"tracemalloc, {n} placements: {total / 2**20:.1f} MiB traced"]
    for key in ("filename", "lineno"):
        lines.append(f"-- by {key}: MiB, bytes per placement, blocks")
        for stat in snap.statistics(key)[:top]:
            where = stat.traceback[0]
            lines.append(
                f"  {stat.size / 2**20:8.1f} {stat.size / n:9.0f} {stat.count:9d}  "
                f"{_short(where.filename)}:{where.lineno if key == 'lineno' else ''}"
            )
    lines.append("-- by traceback (the largest): MiB, bytes per placement, blocks")
    for stat in snap.statistics("traceback")[:top]:
        lines.append(f"  {stat.size / 2**20:8.1f} {stat.size / n:9.0f} {stat.count:9d}")
        lines += [f"      {_short(frame.filename)}:{frame.lineno}" for frame in stat.traceback]
    text = "\n".join(lines) + "\n"
    path.with_suffix(".txt").write_text(text)
    say(text)


def _short(filename: str) -> str:
    """A module's path from its package down (no path of the machine it ran on)."""
    for marker in ("site-packages/", "/operator/", "/lib/python"):
        if marker in filename:
            tail = filename.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker == "/lib/python" else tail
    return filename


class DecisionWatch:
    """When each placement is first seen with a decision (a watch, so no list per poll), and
    with kopf's finalizer (the operator's first patch: what a first evaluation waits for)."""

    def __init__(self, api: client.ApiClient) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.decided: dict[tuple[str, str], float] = {}
        self.finalized: dict[tuple[str, str], float] = {}
        self._stop = threading.Event()
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DecisionWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._watch.stop()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        # Each watch resumes where the last one ended: a watch from no resourceVersion is
        # sent every placement again (at 10,000, about 90 MB of the API server's work each
        # minute of the bulk apply, counted as the operator's).
        since: dict[str, str] = {}
        while not self._stop.is_set():
            try:
                for event in self._watch.stream(
                    self.custom.list_cluster_custom_object,
                    GROUP,
                    VERSION,
                    PLURAL,
                    timeout_seconds=60,
                    **since,
                ):
                    item = event["object"]
                    key = (item["metadata"]["namespace"], item["metadata"]["name"])
                    if FINALIZER in (item["metadata"].get("finalizers") or ()):
                        self.finalized.setdefault(key, time.monotonic())
                    if (item.get("status") or {}).get("decision"):
                        self.decided.setdefault(key, time.monotonic())
                    if self._stop.is_set():
                        return
                if self._watch.resource_version:
                    since = {"resource_version": self._watch.resource_version}
            except Exception:  # a dropped or expired watch: start another, from the start
                since = {}
                time.sleep(0.5)


def quantiles(values: list[float]) -> list[float] | None:
    """p50 and p99, rounded (None: no values)."""
    if not values:
        return None
    return [round(statistics.median(values), 2), round(percentile(values, 0.99), 2)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def parallel(calls: list[Any], workers: int = 8) -> None:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(call) for call in calls]:
            future.result()


def run_mode(
    n: int,
    mode: str,
    prometheus: LocalPrometheus,
    workdir: Path,
    *,
    options: Options,
    say: Any,
) -> dict[str, Any]:
    nodes = max(2, math.ceil(n * REPLICAS / PODS_PER_NODE) + 1)
    with LocalCluster(
        workdir / "cluster", nodes=nodes, client_qps=200, audit_reads=True
    ) as cluster:
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        try:
            return _measure(n, mode, cluster, api, prometheus, workdir, options, say)
        finally:
            api.close()


def _measure(
    n: int,
    mode: str,
    cluster: LocalCluster,
    api: client.ApiClient,
    prometheus: LocalPrometheus,
    workdir: Path,
    options: Options,
    say: Any,
) -> dict[str, Any]:
    core, apps, custom = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
    cluster.kubectl("apply", "--server-side", "-f", str(CRD_FILE))
    cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    for ns in namespaces(n):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    started = time.monotonic()
    parallel(
        [
            lambda ns=ns, d=d: apps.create_namespaced_deployment(ns, deployment(d))
            for ns, d in workloads(n)
        ]
    )
    _wait_for_pods(apps, n, say)
    say(f"  {n} deployments, {n * REPLICAS} pods running in {time.monotonic() - started:.0f}s")

    log = workdir / f"operator-{mode}.log"
    snapshot = None
    if options.tracemalloc is not None:  # the operator inherits the environment
        snapshot = options.tracemalloc / f"tracemalloc-n{n}-{mode}.snapshot"
        os.environ[SNAPSHOT_ENV] = str(snapshot)
    operator = start_operator(
        cluster.kubeconfig,
        prometheus.url,
        log,
        tick_seconds=1,
        extra_args=["--query-mode", mode],
        timeout=60.0 if snapshot is None else 300.0,
    )
    os.environ.pop(SNAPSHOT_ENV, None)
    try:
        pid = operator.pid
        assert pid is not None
        before = read_counters(cluster, prometheus, operator)
        now = dt.datetime.now(dt.UTC)
        manifests = [placement(i, ns, d, now) for i, (ns, d) in enumerate(workloads(n))]
        created: dict[tuple[str, str], float] = {}

        def create(manifest: dict[str, Any]) -> None:
            key = (manifest["metadata"]["namespace"], manifest["metadata"]["name"])
            created[key] = time.monotonic()
            custom.create_namespaced_custom_object(GROUP, VERSION, key[0], PLURAL, manifest)

        bulk_profile = bulk_profiler(pid, n, mode, options, say)
        with DecisionWatch(api) as decisions:
            applied = time.monotonic()
            applied_utc = dt.datetime.now(dt.UTC)
            bulk_profile.start()
            parallel([lambda m=m: create(m) for m in manifests])
            say(f"  {n} placements applied in {time.monotonic() - applied:.1f}s ({mode})")
            deadline = time.monotonic() + 120 + n * 0.3
            progress = time.monotonic()
            while len(decisions.decided) < n and time.monotonic() < deadline:
                time.sleep(0.5)
                if time.monotonic() - progress >= 15:  # where the placements are, as it goes
                    progress = time.monotonic()
                    say(
                        f"  {progress - applied:.0f}s: {len(decisions.finalized)} with the "
                        f"finalizer, {len(decisions.decided)} decided (load {load()})"
                    )
            latencies = [
                decisions.decided[k] - created[k] for k in created if k in decisions.decided
            ]
            # The two stages of a first decision: kopf's patch of the finalizer, then the
            # evaluation (held back until the finalizer shows) and its status write.
            to_finalizer = [
                decisions.finalized[k] - created[k] for k in created if k in decisions.finalized
            ]
            after_finalizer = [
                decisions.decided[k] - decisions.finalized[k]
                for k in created
                if k in decisions.decided and k in decisions.finalized
            ]
        # What the bulk apply cost until the last decision: requests, writes, CPU.
        decided_at = read_counters(cluster, prometheus, operator)
        decided_utc = dt.datetime.now(dt.UTC)
        bulk_profile.join()
        if len(latencies) < n:
            say(f"  only {len(latencies)} of {n} decided before the deadline")
        _check_operator(operator)
        # Settle: decisions made during the apply may be refined once (e.g. queue series).
        time.sleep(max(10.0, min(60.0, n * 0.02)))
        first = read_counters(cluster, prometheus, operator)
        window_from = dt.datetime.now(dt.UTC)
        load_start = load()
        time.sleep(options.window_s)
        window_to = dt.datetime.now(dt.UTC)
        last = read_counters(cluster, prometheus, operator)
        _check_operator(operator)
        if options.profile is not None:  # after the window, so sampling does not slow it
            profile(pid, options.profile / f"profile-n{n}-{mode}", say)
        rss = peak_rss_mb(pid)
        rss_steady = peak_rss_mb(pid, "VmRSS")
        threads = thread_count(pid)
        if snapshot is not None:  # after the RSS: tracing itself costs memory too
            take_snapshot(pid, snapshot, n, say)
        pids = cluster.pids()
        servers = {
            name: {"peak_rss_mb": round(peak_rss_mb(pids[name]), 1),
                   "rss_mb": round(peak_rss_mb(pids[name], "VmRSS"), 1)}
            for name in SERVERS
        }  # fmt: skip
        time.sleep(2)  # the audit log is written in batches a second apart
        reads = audited_reads(cluster.audit_log, window_from, window_to)
        bulk_reads = audited_reads(cluster.audit_log, applied_utc, decided_utc)
    finally:
        operator.stop()
    passes = (last.evaluations - first.evaluations) / n
    elapsed = last.at - first.at
    per_pass = lambda delta: round(delta / passes, 2) if passes else None  # noqa: E731
    return {
        "placements": n,
        "mode": mode,
        "decided": len(latencies),
        "decided_p50_s": round(statistics.median(latencies), 2) if latencies else None,
        "decided_p99_s": round(percentile(latencies, 0.99), 2) if latencies else None,
        "decided_max_s": round(max(latencies), 2) if latencies else None,
        "finalizer_p50_p99_s": quantiles(to_finalizer),
        "decided_after_finalizer_p50_p99_s": quantiles(after_finalizer),
        # From the first create request to the last decision seen: the requests on the
        # operator's resources (the benchmark's creates included: N "POST workloadplacements")
        # and the CPU seconds of the operator and of the servers.
        "bulk_s": round(decided_at.at - before.at, 1),
        "bulk_api_requests_per_placement": round(
            (decided_at.api_requests - before.api_requests) / n, 2
        ),
        "bulk_api_writes_per_placement": round((decided_at.api_writes - before.api_writes) / n, 2),
        "bulk_api_requests": increase(decided_at.api_by_kind, before.api_by_kind),
        "bulk_api_reads_by_client": bulk_reads,
        # Looks at placements after their first, to the last decision, by what they found
        # (held back for the finalizer or a status write counts as due).
        "bulk_wakeups": increase(decided_at.wakeups, before.wakeups),
        "bulk_cpu_s": {
            "operator": round(decided_at.operator_cpu_s - before.operator_cpu_s, 1),
            **{
                name: round(decided_at.server_cpu_s[name] - before.server_cpu_s[name], 1)
                for name in SERVERS
            },
        },
        "cycle_s": round(elapsed / passes, 2) if passes else None,
        "passes_measured": round(passes, 2),
        "prometheus_queries_per_cycle": per_pass(
            last.prometheus_queries - first.prometheus_queries
        ),
        # Load histories: read when each placement is first evaluated (one range query per
        # query shape and namespace in batched mode), then once an hour: none in the window.
        # Why the queries per cycle are what they are: batches halved for slow answers (in
        # the bulk apply, and in the window) and doubled back.
        "batch_resizes_bulk": increase(decided_at.batch_resizes, before.batch_resizes),
        "batch_resizes_window": increase(last.batch_resizes, first.batch_resizes),
        "history_range_queries_first_evaluations": round(
            first.prometheus_range_queries - before.prometheus_range_queries
        ),
        "history_range_queries_per_cycle": per_pass(
            last.prometheus_range_queries - first.prometheus_range_queries
        ),
        "api_requests_idle_cycle": per_pass(last.api_requests - first.api_requests),
        "api_writes_idle_cycle": per_pass(last.api_writes - first.api_writes),
        # The window's requests by "VERB resource code" (all of them, not per pass).
        "api_requests_idle_window": increase(last.api_by_kind, first.api_by_kind),
        # The same window's gets and lists by client, from the API server's audit log.
        "api_reads_idle_window_by_client": reads,
        "gc_collections_per_cycle": {
            generation: per_pass(count)
            for generation, count in increase(last.gc_collections, first.gc_collections).items()
        },
        "daemon_wakeups_per_cycle": {
            found: per_pass(count) for found, count in increase(last.wakeups, first.wakeups).items()
        },
        "rss_mb": round(rss, 1),
        "rss_steady_mb": round(rss_steady, 1),
        "operator_threads": threads,
        "cpu_s_per_cycle": per_pass(last.operator_cpu_s - first.operator_cpu_s),
        # The servers' CPU per second of the window (per pass is not theirs: they serve the
        # benchmark's own watch, the controllers and kwok too).
        **{
            name.replace("-", "_"): {
                **servers[name],
                "cpu_per_s": round(
                    (last.server_cpu_s[name] - first.server_cpu_s[name]) / elapsed, 2
                ),
            }
            for name in SERVERS
        },
        "load_during_window": f"{load_start} -> {load()}",
        "window_utc": [f"{window_from:%H:%M:%S}", f"{window_to:%H:%M:%S}"],
    }


def bulk_profiler(pid: int, n: int, mode: str, options: Options, say: Any) -> threading.Thread:
    """py-spy on the operator from the bulk apply's start (where its seconds go), with
    --profile; else a thread that does nothing."""
    if options.profile is None:
        return threading.Thread(target=lambda: None)
    return threading.Thread(
        target=profile,
        args=(pid, options.profile / f"profile-bulk-n{n}-{mode}", say),
        kwargs={"seconds": max(10, min(60, n // 50))},
        daemon=True,
    )


def _wait_for_pods(apps: client.AppsV1Api, n: int, say: Any) -> None:
    deadline = time.monotonic() + 120 + n * 0.5
    ready = 0
    while time.monotonic() < deadline:
        items = apps.list_deployment_for_all_namespaces(label_selector="app").items
        ready = len([d for d in items if d.status and d.status.ready_replicas == REPLICAS])
        if ready >= n:
            return
        time.sleep(2)
    say(f"  only {ready} of {n} deployments ready; measuring anyway")


def _check_operator(operator: ManagedProcess) -> None:
    if operator.exit_code() is not None:
        raise operator.failure("exited during the benchmark")


def feed(exporter: Exporter, prometheus: LocalPrometheus, n: int) -> None:
    """One utilization series per Deployment, a queue series for the Recommend kind."""
    utilization = exporter.gauge(
        UTILIZATION, "useful work over capacity", ["namespace", "deployment"]
    )
    queue = exporter.gauge(QUEUE, "requests waiting", ["namespace", "deployment"])
    for index, (ns, name) in enumerate(workloads(n)):
        utilization.labels(ns, name).set(round(0.08 + 0.3 * ((index * 37) % 100) / 100, 3))
        if index % 4 == 0:
            queue.labels(ns, name).set(index % 50)
    deadline = time.monotonic() + 120
    query = f"count(avg_over_time({UTILIZATION}[1h:]))"
    while time.monotonic() < deadline:
        result = prometheus.query(query)
        if result and float(result[0]["value"][1]) >= n:  # type: ignore[index]
            return
        time.sleep(1)
    raise TimeoutError(f"Prometheus has not averaged all {n} series after 120s")


def compare(n: int, workdir: Path, options: Options, modes: list[str], say: Any) -> dict[str, Any]:
    with (
        Exporter() as exporter,
        LocalPrometheus(
            workdir / "prometheus", targets=[exporter.target], scrape_interval="5s"
        ) as prometheus,
    ):
        feed(exporter, prometheus, n)
        results = {}
        for mode in modes:
            say(f"N={n} {mode}: load {load()}")
            results[mode] = run_mode(n, mode, prometheus, workdir / mode, options=options, say=say)
            say("  " + json.dumps(results[mode]))
    main = dict(results[modes[0]])
    for mode in modes[1:]:
        main[mode.replace("-", "_")] = results[mode]
    if "per-placement" in results and "batched" in results:
        batched, single = results["batched"], results["per-placement"]
        main["query_ratio_per_placement_to_batched"] = _ratio(
            single["prometheus_queries_per_cycle"], batched["prometheus_queries_per_cycle"]
        )
        main["cycle_ratio_per_placement_to_batched"] = _ratio(single["cycle_s"], batched["cycle_s"])
    main["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    main["machine"] = machine()
    return main


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 1) if a and b else None


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(13, 4))
    for axis, key, unit, target in (
        (axes[0], "decided_p99_s", "s", 60),
        (axes[1], "cycle_s", "s", 15),
        (axes[2], "rss_mb", "MB", 400),
    ):
        for mode, style in (("batched", "o-"), ("per_placement", "s--")):
            points = [
                (row["placements"], (row if mode == "batched" else row.get(mode) or {}).get(key))
                for row in rows
            ]
            points = [(x, y) for x, y in points if y is not None]
            if points:
                axis.plot(*zip(*points, strict=True), style, label=mode.replace("_", "-"))
        axis.axhline(target, color="red", linewidth=0.8, linestyle=":", label=f"target {target}")
        axis.set_xscale("log")
        axis.set_xlabel("placements")
        axis.set_title(f"{key} ({unit})")
        axis.legend()
    date = rows[-1].get("date", "")
    figure.suptitle(f"placement-operator scale, {rows[-1].get('machine', '')}, {date}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def replot(results: Path, path: Path) -> None:
    """The plot of the last row of each N in a JSON-lines file."""
    latest = {}
    for line in results.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            latest[row["placements"]] = row
    plot([latest[n] for n in sorted(latest)], path)


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM unwinds like Ctrl-C, so every `with` stops what it started.
    raise KeyboardInterrupt


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--placements", help="N, or a list: 10,100,1000")
    parser.add_argument(
        "--replot",
        type=Path,
        help="no run: draw --plot from this file's JSON lines (runs of one N each, e.g. "
        "bench/results/scale.jsonl), the last line of each N",
    )
    parser.add_argument("--output", type=Path, help="append each N's JSON line to this file")
    parser.add_argument("--plot", type=Path, help="write a PNG of the figures against N")
    parser.add_argument("--window", type=float, default=30.0, help="steady window, seconds")
    parser.add_argument("--modes", default=",".join(MODES), help="batched,per-placement")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument(
        "--profile",
        type=Path,
        help="after each steady window, sample the operator 20 s with py-spy; write the raw "
        "stacks and a summary of where its threads spend their time into this directory",
    )
    parser.add_argument(
        "--tracemalloc",
        type=Path,
        help="run the operator under tracemalloc (slower) and, after each steady window, write "
        "a snapshot of its live allocations and a summary by file and traceback here",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.replot:
        if not args.plot:
            parser.error("--replot needs --plot")
        replot(args.replot, args.plot)
        return 0
    if not args.placements:
        parser.error("--placements is required (or --replot)")
    sizes = [int(part) for part in args.placements.split(",")]
    modes = [m for m in args.modes.split(",") if m]
    if any(m not in MODES for m in modes) or any(n < 1 for n in sizes):
        parser.error(f"--modes must be among {', '.join(MODES)}; --placements at least 1")
    signal.signal(signal.SIGTERM, _interrupt)
    return run_sizes(sizes, modes, args)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_sizes(sizes: list[int], modes: list[str], args: argparse.Namespace) -> int:
    options = Options(window_s=args.window, profile=args.profile, tracemalloc=args.tracemalloc)
    for directory in (options.profile, options.tracemalloc):
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="placement-bench-"))
    rows = []
    try:
        for n in sizes:
            row = compare(n, workdir / f"n{n}", options, modes, say)
            rows.append(row)
            line = json.dumps(row)
            if args.output:
                with args.output.open("a") as out:
                    out.write(line + "\n")
            if args.plot and n == sizes[-1]:
                plot(rows, args.plot)  # before the last line, which stays the JSON
                say(f"plot written to {args.plot}")
            print(line, flush=True)
    except ApiException as error:
        say(f"error: the API server refused a request: {error.status} {error.reason}")
        return 1
    finally:
        if args.keep:
            say(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
