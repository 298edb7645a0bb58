"""`make cluster` / `make cluster-down`: a local control plane that outlives the command.

    python -m placement.localenv up   [--dir DIR] [--nodes N] [--engines keda,kueue]
    python -m placement.localenv down [--dir DIR]               # stop everything it started

`--engines` starts KEDA and/or Kueue beside the control plane (`make cluster` asks for both;
without it, neither).

`up` starts a detached supervisor (`serve`) that owns every process. The processes die with
the supervisor (PR_SET_PDEATHSIG), so even a killed supervisor leaves no orphan behind.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from placement.localenv import tools
from placement.localenv.cluster import LocalCluster
from placement.localenv.engines import LocalKeda, LocalKueue
from placement.localenv.process import ComponentError, is_alive, log_tail
from placement.localenv.prometheus import LocalPrometheus
from placement.localenv.tools import ToolsError

DEFAULT_DIR = Path(".local")


def _state_file(root: Path) -> Path:
    return root / "state.json"


def _read_state(root: Path) -> dict[str, object] | None:
    try:
        state: dict[str, object] = json.loads(_state_file(root).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return state


ENGINES = {"keda": LocalKeda, "kueue": LocalKueue}


def _engine_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(ENGINES))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown engine(s) {', '.join(unknown)}; known: {', '.join(ENGINES)}"
        )
    return names


def serve(root: Path, nodes: int, engine_names: list[str]) -> int:
    """Run in the foreground until SIGTERM/SIGINT; record progress in state.json."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    state_path = _state_file(root)
    cluster = LocalCluster(root / "cluster", nodes=nodes)
    prometheus = LocalPrometheus(root / "prometheus")
    engines = [ENGINES[name](cluster, root / name) for name in engine_names]
    started = time.monotonic()
    try:
        cluster.start()
        prometheus.start()
        for engine in engines:
            engine.start()
    except (ComponentError, ToolsError) as error:
        for engine in reversed(engines):
            engine.stop()
        prometheus.stop()
        cluster.stop()
        state_path.write_text(json.dumps({"status": "failed", "error": str(error)}))
        return 1
    state_path.write_text(
        json.dumps(
            {
                "status": "ready",
                "pid": os.getpid(),
                "kubeconfig": str(cluster.kubeconfig),
                "server": cluster.server,
                "prometheus": prometheus.url,
                "startSeconds": round(time.monotonic() - started, 1),
                "timings": {k: round(v, 1) for k, v in cluster.timings.seconds.items()},
                "prometheusSeconds": round(prometheus.startup_seconds, 1),
                "engines": {e.name: round(e.startup_seconds, 1) for e in engines},
                "children": {
                    **cluster.running(),
                    "prometheus": prometheus.pid,
                    **{e.name: e.pid for e in engines},
                },
            }
        )
    )
    stop.wait()
    for engine in reversed(engines):
        engine.stop()
    prometheus.stop()
    cluster.stop()
    state_path.unlink(missing_ok=True)
    return 0


def up(root: Path, nodes: int, engine_names: list[str], timeout: float) -> int:
    root = root.resolve()
    state = _read_state(root)
    if state and state.get("status") == "ready" and is_alive(int(str(state["pid"]))):
        _print_usage(state, already=True)
        return 0
    root.mkdir(parents=True, exist_ok=True)
    _state_file(root).unlink(missing_ok=True)
    log = root / "supervisor.log"
    with open(log, "wb") as out:
        supervisor = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "placement.localenv",
                "serve",
                "--dir",
                str(root),
                "--nodes",
                str(nodes),
                "--engines",
                ",".join(engine_names),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the shell that ran `make cluster`
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _read_state(root)
        if state and state.get("status") == "ready":
            _print_usage(state, already=False)
            return 0
        if state and state.get("status") == "failed":
            print(f"error: the cluster did not start: {state['error']}", file=sys.stderr)
            return 1
        if supervisor.poll() is not None:
            print(f"error: the supervisor exited:\n{log_tail(log)}", file=sys.stderr)
            return 1
        time.sleep(0.3)
    supervisor.terminate()
    print(f"error: no cluster after {timeout:.0f}s:\n{log_tail(log)}", file=sys.stderr)
    return 1


def down(root: Path) -> int:
    root = root.resolve()
    state = _read_state(root)
    if not state or "pid" not in state:
        print("no local cluster is running")
        return 0
    pid = int(str(state["pid"]))
    if is_alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while is_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if is_alive(pid):
            os.kill(pid, signal.SIGKILL)  # its children follow it (PDEATHSIG)
    _state_file(root).unlink(missing_ok=True)
    print("local cluster stopped")
    return 0


def _print_usage(state: dict[str, object], *, already: bool) -> None:
    if already:
        print("local cluster already running")
    else:
        timings = state.get("timings", {})
        assert isinstance(timings, dict)
        parts = ", ".join(f"{k} {v}s" for k, v in timings.items())
        print(
            f"local cluster started in {state['startSeconds']}s ({parts}); "
            f"prometheus ready in {state['prometheusSeconds']}s"
        )
        engines = state.get("engines") or {}
        assert isinstance(engines, dict)
        for name, seconds in engines.items():
            print(f"  {name} started in {seconds}s")
    print(f"  API server:  {state['server']}")
    print(f"  Prometheus:  {state['prometheus']}")
    kubectl_dir = tools.binary("kubectl").parent
    print("Use it with (the kubectl built for this 1.36 cluster first on PATH):")
    print(f"  export KUBECONFIG={state['kubeconfig']}")
    print(f"  export PATH={kubectl_dir}:$PATH")
    print("  kubectl get nodes")
    print("Stop it with: make cluster-down")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m placement.localenv")
    parser.add_argument("command", choices=["up", "down", "serve"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--engines", type=_engine_names, default=[], help="comma list: keda,kueue")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.dir, args.nodes, args.engines, args.timeout)
    if args.command == "down":
        return down(args.dir)
    return serve(args.dir.resolve(), args.nodes, args.engines)


if __name__ == "__main__":
    sys.exit(main())
