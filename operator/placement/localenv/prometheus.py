"""A real Prometheus on 127.0.0.1, scraping exporters the tests control, or replaying
recorded series loaded with `promtool tsdb create-blocks-from openmetrics`.

    with Exporter() as exporter, LocalPrometheus(workdir, targets=[exporter.target]) as prom:
        exporter.gauge("inference_useful_utilization", "...", ["namespace"]).labels("a").set(0.4)
        prom.wait_for_value('inference_useful_utilization{namespace="a"}', 0.4)
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import textwrap
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from placement.localenv import tools
from placement.localenv.process import (
    ComponentError,
    ManagedProcess,
    Service,
    free_port,
    http_ok,
)


class Exporter(Service):
    """A /metrics endpoint on loopback whose values the caller sets."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.port = 0
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._gauges: dict[str, Gauge] = {}

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = free_port()
        self._server, self._thread = start_http_server(
            self.port, addr="127.0.0.1", registry=self.registry
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        """The gauge of that name, created on first use."""
        if name not in self._gauges:
            self._gauges[name] = Gauge(name, documentation, list(labels), registry=self.registry)
        return self._gauges[name]


class PrometheusQueryError(RuntimeError):
    pass


class LocalPrometheus(Service):
    """One Prometheus server process with its own config and data directory."""

    def __init__(
        self,
        workdir: Path,
        *,
        targets: Iterable[str] = (),
        scrape_interval: str = "1s",
        backfill: Iterable[Path] = (),
        retention: str = "3650d",
        start_timeout: float = 60.0,
    ) -> None:
        self.workdir = workdir.resolve()
        self.targets = list(targets)
        self.scrape_interval = scrape_interval
        self.backfill_files = list(backfill)
        self.retention = retention
        self.start_timeout = start_timeout
        self.port = 0
        self.startup_seconds = 0.0
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        data = self.workdir / "data"
        data.mkdir(parents=True)
        for series in self.backfill_files:
            load_openmetrics(series, data)
        config = self.workdir / "prometheus.yml"
        config.write_text(self._config())
        self.port = free_port()
        self._process = ManagedProcess(
            "prometheus",
            [
                str(tools.binary("prometheus")),
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                f"--storage.tsdb.retention.time={self.retention}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            self.workdir / "prometheus.log",
        )
        self._process.start()
        try:
            self.startup_seconds = self._process.wait_until(
                lambda: http_ok(f"{self.url}/-/ready"), self.start_timeout, "ready"
            )
        except ComponentError:
            self.stop()
            raise

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    @contextmanager
    def down(self) -> Iterator[None]:
        """The server stopped for the block (connections refused), then started again on the
        same port with the same data."""
        assert self._process is not None
        self._process.stop()
        try:
            yield
        finally:
            self._process.start()
            self._process.wait_until(lambda: http_ok(f"{self.url}/-/ready"), 60, "ready again")

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """The server paused (SIGSTOP) for the block: it accepts connections and never
        answers, as a Prometheus stuck in a long compaction or GC pause does."""
        assert self.pid is not None
        os.kill(self.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.pid, signal.SIGCONT)

    def _config(self) -> str:
        targets = json.dumps(self.targets)
        return textwrap.dedent(
            f"""\
            global:
              scrape_interval: {self.scrape_interval}
              evaluation_interval: {self.scrape_interval}
            scrape_configs:
            - job_name: exporter
              static_configs:
              - targets: {targets}
            """
        )

    # -- queries (the operator uses prometheus-api-client; these are for tests) -----------

    def query(self, promql: str, at: float | None = None) -> list[dict[str, object]]:
        params = {"query": promql}
        if at is not None:
            params["time"] = str(at)
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise PrometheusQueryError(f"{promql}: {body.get('error', body)}")
        result: list[dict[str, object]] = body["data"]["result"]
        return result

    def wait_for_value(self, promql: str, expected: float, timeout: float = 30.0) -> float:
        """Seconds until the query's single value equals `expected`."""
        started = time.monotonic()
        last: object = None
        while time.monotonic() - started < timeout:
            result = self.query(promql)
            if len(result) == 1:
                value = result[0]["value"]
                assert isinstance(value, list)
                last = float(value[1])
                if math.isclose(float(value[1]), expected, rel_tol=1e-9):
                    return time.monotonic() - started
            time.sleep(0.25)
        raise PrometheusQueryError(f"{promql} did not become {expected} (last: {last})")


def load_openmetrics(series: Path, data_dir: Path) -> None:
    """Backfill recorded samples (OpenMetrics text, ending in `# EOF`) into a TSDB directory."""
    result = subprocess.run(
        [
            str(tools.binary("promtool")),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(series),
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ComponentError(f"promtool could not load {series}:\n{result.stdout}{result.stderr}")


def write_openmetrics(
    path: Path,
    metric: str,
    samples: Iterable[tuple[dict[str, str], float, float]],
    *,
    help_text: str = "replayed series",
) -> Path:
    """Write (labels, unix seconds, value) samples as OpenMetrics for `load_openmetrics`."""
    lines = [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
    for labels, timestamp, value in samples:
        rendered = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        lines.append(f"{metric}{{{rendered}}} {value!r} {timestamp:.3f}")
    lines.append("# EOF")
    path.write_text("\n".join(lines) + "\n")
    return path
