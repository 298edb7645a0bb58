"""`make demo`: the operator deciding the shipped examples on a real local cluster.

Starts the control plane, Prometheus and an exporter that plays a utilization profile,
installs the CRD, runs `placement run`, applies examples/ and prints `kubectl get wp` and the
Events of each placement. Then stops everything, unless --keep.

Three changes to the examples, printed when applied: mode Enforce (they ship in Recommend),
each batch window moved to open now (UTC) and evaluationInterval 10s, so a whole batch cycle
happens while you watch.

An async placement stays in Recommend: the demo runs no KEDA operator, only (when `make tools`
has built KEDA) KEDA's ScaledObject CRD, so the operator sees KEDA installed and recommends
async; without the CRD it says async needs KEDA.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from placement.adapters.prometheus import averaged
from placement.localenv import tools
from placement.localenv.cluster import LocalCluster
from placement.localenv.operator_process import start_operator
from placement.localenv.process import ComponentError, ManagedProcess
from placement.localenv.prometheus import Exporter, LocalPrometheus
from placement.localenv.tools import ToolsError

REPO = Path(__file__).resolve().parents[3]
NAMESPACE = "inference"
# tokens/s one H100 serves at batch 256 (docs/design.md): the fleet's capacity unit.
REPLICA_CAPACITY = 21_431.0

# deployment -> (replicas, mean useful utilization, swing)
FLEET = {
    "enricher": (6, 0.15, 0.03),
    "chat": (8, 0.55, 0.10),
    "embedder": (2, 0.35, 0.05),
    "translator": (6, 0.15, 0.03),
    "summarizer": (4, 0.25, 0.05),
}


class UtilizationProfile:
    """Serves tokens/s and capacity per deployment; tokens/s follow a slow sine (a day
    compressed into ten minutes), so the numbers move like real traffic."""

    def __init__(self, exporter: Exporter) -> None:
        labels = ["namespace", "deployment"]
        self.served = exporter.gauge("inference_tokens_per_second", "tokens/s served", labels)
        self.capacity = exporter.gauge(
            "inference_capacity_tokens_per_second", "tokens/s the fleet can serve", labels
        )
        self.queue = exporter.gauge("inference_queue_depth", "requests waiting", labels)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._play, daemon=True)

    def start(self) -> None:
        self._tick(0.0)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _play(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(1.0):
            self._tick(time.monotonic() - started)

    def _tick(self, elapsed: float) -> None:
        phase = 2 * math.pi * elapsed / 600
        for deployment, (replicas, mean, swing) in FLEET.items():
            capacity = replicas * REPLICA_CAPACITY
            self.capacity.labels(NAMESPACE, deployment).set(capacity)
            self.served.labels(NAMESPACE, deployment).set(
                capacity * (mean + swing * math.sin(phase))
            )
            self.queue.labels(NAMESPACE, deployment).set(round(40 + 30 * math.sin(phase)))


def _deployment(name: str, replicas: int) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "containers": [{"name": "server", "image": f"registry.example/{name}:1"}]
                    },
                },
            },
        }
    )


def _for_demo(manifest: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    start, end = now - dt.timedelta(minutes=30), now + dt.timedelta(hours=3)
    spec = manifest["spec"]
    if "async" not in spec:  # no KEDA operator runs here to carry async out
        spec["mode"] = "Enforce"
    spec["batch"]["window"] = {"start": f"{start:%H:%M}", "end": f"{end:%H:%M}", "timeZone": "UTC"}
    spec["evaluationInterval"] = "10s"
    pod = spec["batch"]["jobTemplate"]["spec"]["template"]
    # kwok runs each batch pod for 5 seconds, then it succeeds.
    pod.setdefault("metadata", {}).setdefault("annotations", {})[
        "sim.placement.runplacement.io/run-duration"
    ] = "5s"
    manifest["metadata"]["namespace"] = NAMESPACE
    return manifest


def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run(workdir: Path, keep: bool, settle_seconds: float) -> int:
    exporter = Exporter()
    profile = UtilizationProfile(exporter)
    cluster = LocalCluster(workdir / "cluster", nodes=2)
    prometheus: LocalPrometheus | None = None
    operator: ManagedProcess | None = None
    try:
        _step("starting the local control plane, Prometheus and a utilization exporter")
        exporter.start()
        profile.start()
        cluster.start()
        prometheus = LocalPrometheus(workdir / "prometheus", targets=[exporter.target])
        prometheus.start()
        print(f"cluster up ({cluster.timings}); Prometheus at {prometheus.url}")

        _step("installing the CRD and the example Deployments")
        print(cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds")).stdout.strip())
        cluster.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/workloadplacements.placement.runplacement.io",
        )
        _install_keda_crd(cluster)
        cluster.kubectl("create", "namespace", NAMESPACE)
        manifests = "---\n".join(_deployment(n, r) for n, (r, _, _) in FLEET.items())
        print(cluster.kubectl("apply", "-f", "-", input_text=manifests).stdout.strip())

        _step("running the operator: placement run")
        operator = start_operator(
            cluster.kubeconfig, prometheus.url, workdir / "operator.log", tick_seconds=1
        )
        print(f"operator live; its log: {operator.log_path}")
        _wait_for_samples(prometheus)

        _step(
            "applying examples/ (mode Enforce except async ones, batch windows moved to open "
            "now, evaluationInterval 10s)"
        )
        now = dt.datetime.now(dt.UTC)
        names = []
        for path in sorted((REPO / "examples").glob("*.yaml")):
            manifest = _for_demo(yaml.safe_load(path.read_text()), now)
            names.append(manifest["metadata"]["name"])
            print(
                cluster.kubectl(
                    "apply", "-f", "-", input_text=yaml.safe_dump(manifest)
                ).stdout.strip()
            )

        _wait_for_decisions(cluster, names, settle_seconds)
        _report(cluster, names)
        if keep:
            _step("still running (--keep); Ctrl-C stops everything")
            print(f"  export KUBECONFIG={cluster.kubeconfig}")
            print(f"  kubectl describe wp -n {NAMESPACE} nightly-enrichment")
            threading.Event().wait()
        return 0
    except (ComponentError, ToolsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        _step("stopping everything")
        if operator is not None:
            operator.stop()
        profile.stop()
        if prometheus is not None:
            prometheus.stop()
        cluster.stop()
        exporter.stop()


def _install_keda_crd(cluster: LocalCluster) -> None:
    """KEDA's ScaledObject CRD alone, when `make tools` built KEDA: enough for the operator
    to see KEDA installed (async is recommended, not carried out: no KEDA operator runs)."""
    try:
        crd = tools.manifests("keda") / "config/crd/bases/keda.sh_scaledobjects.yaml"
    except ToolsError:
        print("KEDA is not built (make tools): async placements say AsyncNeedsKeda")
        return
    print(cluster.kubectl("apply", "--server-side", "-f", str(crd)).stdout.strip())
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/scaledobjects.keda.sh"
    )
    print("only KEDA's ScaledObject CRD, no KEDA operator: async is recommended, not carried out")


def _wait_for_samples(prometheus: LocalPrometheus) -> None:
    """Until every deployment's utilization answers the way the operator asks for it."""
    query = averaged(
        "sum by (deployment) (inference_tokens_per_second)"
        " / sum by (deployment) (inference_capacity_tokens_per_second)",
        dt.timedelta(minutes=1),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if len(prometheus.query(query)) == len(FLEET):
            return
        time.sleep(0.5)


def _wait_for_decisions(cluster: LocalCluster, names: list[str], settle_seconds: float) -> None:
    """Until every placement has a decision and the batch one saw its Job succeed."""
    print("waiting for the decisions", end="", flush=True)
    deadline = time.monotonic() + settle_seconds
    while time.monotonic() < deadline:
        reasons = cluster.kubectl(
            "get",
            "wp",
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={range .items[*]}{.status.decision.reason}{'\\n'}{end}",
        ).stdout.split()
        if len(reasons) == len(names) and "BatchSucceeded" in reasons:
            break
        print(".", end="", flush=True)
        time.sleep(1)
    print()


def _report(cluster: LocalCluster, names: list[str]) -> None:
    _step(f"kubectl get wp -n {NAMESPACE}")
    print(cluster.kubectl("get", "wp", "-n", NAMESPACE).stdout.rstrip())
    _step(f"kubectl get deployments,jobs -n {NAMESPACE}")
    print(cluster.kubectl("get", "deployments,jobs", "-n", NAMESPACE).stdout.rstrip())
    for name in names:
        _step(f"Events of wp/{name}")
        print(
            cluster.kubectl(
                "get",
                "events",
                "-n",
                NAMESPACE,
                "--sort-by=.lastTimestamp",
                "--field-selector",
                f"involvedObject.kind=WorkloadPlacement,involvedObject.name={name}",
                "-o",
                "custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message",
            ).stdout.rstrip()
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep everything running")
    parser.add_argument("--dir", type=Path, default=Path(".local/demo"))
    parser.add_argument(
        "--settle", type=float, default=90.0, help="seconds to wait for the decisions"
    )
    args = parser.parse_args(argv)
    return run(args.dir.resolve(), args.keep, args.settle)


if __name__ == "__main__":
    sys.exit(main())
