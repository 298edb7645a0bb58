"""What each of a new placement's writes costs the API server: CPU per 1,000 requests of each
kind, and the size of a stored placement.

    .venv/bin/python bench/writecost.py [--count 1000] [--output FILE] [--variants ...]

On a fresh local control plane with a real Prometheus: the operator decides four placements
(the four kinds of bench/scale.py), then is stopped, and their bodies and Events are the
templates. Then, with nothing else writing, `--count` new placements are written the way a
bulk apply writes them, one phase at a time (8 clients at once): the create, kopf's PATCH
(finalizer and spec record; here a merge patch, where kopf sends a JSON patch that tests the
resourceVersion), the status PATCH, the Event. Each phase's kube-apiserver and
etcd CPU seconds are read from /proc around it. Variants, each in its own namespace of the
same cluster, back to back under the same load:

- `as-is`: the operator's own status and Event;
- `no-schema`: the same writes against a copy of the CRD (another group) whose schema is
  only `x-kubernetes-preserve-unknown-fields` (what validation against the schema costs);
- `no-rules`: a copy with the schema but without its CEL rules (x-kubernetes-validations);
- `status-half`, `status-tiny`: smaller statuses than the operator's (see STATUSES), to
  see how the status write's cost follows its size.

Also printed: the stored size of a placement (`kubectl get -o json`), with and without
managedFields, and the sizes of its status and Event.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import datetime as dt
import functools
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from placement.core.api import GROUP, PLURAL, VERSION
from placement.localenv.cluster import LocalCluster
from placement.localenv.operator_process import start_operator
from placement.localenv.prometheus import Exporter, LocalPrometheus
from scale import (
    CRD_FILE,
    REPLICAS,
    _wait_for_pods,
    cpu_seconds,
    deployment,
    feed,
    load,
    placement,
    workloads,
)

# Each variant of the CRD under a group of its own, so all are served at once.
GROUPS = {"no-schema": "bare.example.com", "no-rules": "norules.example.com"}


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def variant_crd(variant: str) -> dict[str, Any]:
    """The CRD under the variant's group: no schema at all, or the schema without its CEL
    rules (x-kubernetes-validations)."""
    crd: dict[str, Any] = yaml.safe_load(CRD_FILE.read_text())
    group = GROUPS[variant]
    crd["metadata"]["name"] = f"{PLURAL}.{group}"
    crd["spec"]["group"] = group
    for version in crd["spec"]["versions"]:
        if variant == "no-schema":
            version["schema"] = {
                "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            }
            version.pop("additionalPrinterColumns", None)
        else:
            _drop_rules(version["schema"])
    return crd


def _drop_rules(node: Any) -> None:
    if isinstance(node, dict):
        node.pop("x-kubernetes-validations", None)
        for item in node.values():
            _drop_rules(item)
    elif isinstance(node, list):
        for item in node:
            _drop_rules(item)


def _half(status: dict[str, Any]) -> dict[str, Any]:
    decision = {k: v for k, v in status["decision"].items() if k not in ("inputs", "breakdown")}
    kept = ("phase", "observedGeneration", "conditions")
    return {**{k: v for k, v in status.items() if k in kept}, "decision": decision}


# Smaller statuses (not the operator's: how the cost follows the size).
STATUSES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "status-half": _half,  # no decision inputs or breakdown, history, learning, batch
    "status-tiny": lambda status: {k: status[k] for k in ("phase", "observedGeneration")},
}


def parallel(calls: list[Callable[[], Any]], workers: int = 8) -> None:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(call) for call in calls]:
            future.result()


def capture(cluster: LocalCluster, custom: client.CustomObjectsApi, n: int) -> dict[str, Any]:
    """The four placements' stored bodies and their Events, once each is decided."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        found = custom.list_namespaced_custom_object(GROUP, VERSION, "bench-000", PLURAL)
        items: list[dict[str, Any]] = found["items"]  # type: ignore[index]
        if len(items) == n and all((i.get("status") or {}).get("decision") for i in items):
            break
        time.sleep(1)
    time.sleep(5)  # the Events follow the status
    out = cluster.kubectl(
        "get", f"{PLURAL}.{GROUP}", "-n", "bench-000", "-o", "json", "--show-managed-fields"
    ).stdout
    events = cluster.kubectl("get", "events", "-n", "bench-000", "-o", "json").stdout
    return {"placements": json.loads(out)["items"], "events": json.loads(events)["items"]}


def sizes(bodies: list[dict[str, Any]], events: list[dict[str, Any]]) -> dict[str, Any]:
    def size(obj: Any) -> int:
        return len(json.dumps(obj, separators=(",", ":")))

    stripped = [{**b, "metadata": {**b["metadata"], "managedFields": None}} for b in bodies]
    ours = [e for e in events if e.get("involvedObject", {}).get("kind") == "WorkloadPlacement"]
    return {
        "placement_bytes": [size(b) for b in bodies],
        "placement_bytes_without_managed_fields": [size(b) for b in stripped],
        "managed_fields_bytes": [size(b["metadata"].get("managedFields")) for b in bodies],
        "managed_fields_entries": [len(b["metadata"].get("managedFields") or []) for b in bodies],
        "status_bytes": [size(b.get("status")) for b in bodies],
        "status_parts_bytes": {
            key: size(bodies[0]["status"][key]) for key in sorted(bodies[0].get("status") or {})
        },
        "annotations_bytes": [size(b["metadata"].get("annotations")) for b in bodies],
        "spec_bytes": [size(b["spec"]) for b in bodies],
        "event_bytes": [size(e) for e in ours],
        "events": len(ours),
    }


class Phases:
    """CPU of the API server and etcd around each phase."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.pids = {k: v for k, v in cluster.pids().items() if k in ("kube-apiserver", "etcd")}
        self.figures: dict[str, dict[str, float]] = {}

    def run(self, name: str, calls: list[Callable[[], Any]]) -> None:
        time.sleep(2)  # let the previous phase's watch fan-out settle
        before = {k: cpu_seconds(p) for k, p in self.pids.items()}
        started = time.monotonic()
        parallel(calls)
        elapsed = time.monotonic() - started
        time.sleep(2)
        per = 1000 / len(calls)
        self.figures[name] = {
            **{
                f"{k}_cpu_s_per_1000": round((cpu_seconds(p) - before[k]) * per, 2)
                for k, p in self.pids.items()
            },
            "wall_s_per_1000": round(elapsed * per, 2),
        }
        say(f"  {name}: {self.figures[name]}  (load {load()})")


def replay(
    api: client.ApiClient,
    phases: Phases,
    variant: str,
    templates: list[dict[str, Any]],
    events: list[dict[str, Any]],
    count: int,
    ns: str,
) -> None:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    group = GROUPS.get(variant, GROUP)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    by_kind = {e["involvedObject"]["name"]: e for e in events}
    names = [f"p-{i:05d}" for i in range(count)]

    def template(i: int) -> dict[str, Any]:
        return templates[i % len(templates)]

    def create(i: int) -> None:
        body = {
            "apiVersion": f"{group}/{VERSION}",
            "kind": "WorkloadPlacement",
            "metadata": {"name": names[i], "namespace": ns},
            "spec": template(i)["spec"],
        }
        custom.create_namespaced_custom_object(group, VERSION, ns, PLURAL, body)

    def metadata(i: int) -> None:
        meta = template(i)["metadata"]
        patch = {
            "metadata": {
                "finalizers": meta.get("finalizers"),
                "annotations": meta.get("annotations"),
            }
        }
        custom.patch_namespaced_custom_object(group, VERSION, ns, PLURAL, names[i], patch)

    def status(i: int) -> None:
        shrink = STATUSES.get(variant)
        given = template(i)["status"]
        patch = {"status": shrink(given) if shrink else given}
        custom.patch_namespaced_custom_object_status(group, VERSION, ns, PLURAL, names[i], patch)

    def event(i: int) -> None:
        source = by_kind.get(template(i)["metadata"]["name"]) or events[0]
        body = copy.deepcopy(source)
        body["metadata"] = {"generateName": f"{names[i]}.", "namespace": ns}
        body["involvedObject"] = {
            **body["involvedObject"],
            "name": names[i],
            "namespace": ns,
            "apiVersion": f"{group}/{VERSION}",
            "uid": None,
            "resourceVersion": None,
        }
        for key in ("firstTimestamp", "lastTimestamp", "eventTime"):
            body.pop(key, None)
        body["firstTimestamp"] = body["lastTimestamp"] = dt.datetime.now(dt.UTC).isoformat()
        core.create_namespaced_event(ns, body)  # type: ignore[arg-type]

    for name, call in (
        ("create", create),
        ("kopf_patch", metadata),
        ("status", status),
        ("event", event),
    ):
        calls: list[Callable[[], Any]] = [functools.partial(call, i) for i in range(count)]
        phases.run(f"{ns}/{name}", calls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument(
        "--variants",
        default="as-is,status-half,status-tiny," * 2,
        help="comma-separated, in turn: as-is, no-schema, no-rules, status-half, status-tiny",
    )
    parser.add_argument("--output", type=Path)
    parser.add_argument("--templates", type=Path, help="reuse captured bodies (a JSON file)")
    parser.add_argument("--save-templates", type=Path)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="placement-writecost-"))
    n = 4
    with (
        Exporter() as exporter,
        LocalPrometheus(
            workdir / "prometheus", targets=[exporter.target], scrape_interval="5s"
        ) as prometheus,
    ):
        feed(exporter, prometheus, n)
        with LocalCluster(workdir / "cluster", nodes=2) as cluster:
            api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
            core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
            custom = client.CustomObjectsApi(api)
            cluster.kubectl("apply", "--server-side", "-f", str(CRD_FILE))
            for variant in GROUPS:
                cluster.kubectl(
                    "apply", "--server-side", "-f", "-", input_text=json.dumps(variant_crd(variant))
                )
            cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
            if args.templates:
                captured = json.loads(args.templates.read_text())
            else:
                core.create_namespace(
                    client.V1Namespace(metadata=client.V1ObjectMeta(name="bench-000"))
                )
                for ns, d in workloads(n):
                    apps.create_namespaced_deployment(ns, deployment(d))
                _wait_for_pods(apps, n, say)
                operator = start_operator(
                    cluster.kubeconfig, prometheus.url, workdir / "operator.log", tick_seconds=1
                )
                try:
                    now = dt.datetime.now(dt.UTC)
                    for i, (ns, d) in enumerate(workloads(n)):
                        custom.create_namespaced_custom_object(
                            GROUP, VERSION, ns, PLURAL, placement(i, ns, d, now)
                        )
                    captured = capture(cluster, custom, n)
                finally:
                    operator.stop()
                if args.save_templates:
                    args.save_templates.write_text(json.dumps(captured))
            row: dict[str, Any] = {"sizes": sizes(captured["placements"], captured["events"])}
            say(json.dumps(row["sizes"]))
            ours = [
                e
                for e in captured["events"]
                if e.get("involvedObject", {}).get("kind") == "WorkloadPlacement"
            ]
            phases = Phases(cluster)
            for k, variant in enumerate(v for v in args.variants.split(",") if v):
                ns = f"cost-{k}-{variant}"
                replay(api, phases, variant, captured["placements"], ours, args.count, ns)
                # Kept: deleting a namespace's objects would load the API server during
                # the next variant.
            row["phases"] = phases.figures
            row["replicas"] = REPLICAS
            row["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            api.close()
    line = json.dumps(row)
    if args.output:
        with args.output.open("a") as out:
            out.write(line + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
