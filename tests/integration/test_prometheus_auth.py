"""The real Prometheus behind TLS and basic auth (its --web.config.file): the operator's
reader gets through with the CA bundle and the credentials, and is refused without them,
with no credential in what it reports."""

from __future__ import annotations

import datetime as dt
import textwrap
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import yaml

from placement.adapters.prometheus import MetricsReader, Outcome
from placement.localenv import tools
from placement.localenv.pki import create_pki
from placement.localenv.process import ManagedProcess, free_port
from placement.runtime.cli import main
from placement.runtime.config import OperatorConfig
from tests.integration.wait import until

with warnings.catch_warnings():
    # bcrypt for Prometheus' basic_auth_users: Debian's libxcrypt has it, `crypt` wraps it
    # (deprecated, but the only bcrypt without another package on Python 3.11 and 3.12).
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

USER, PASSWORD = "placement-reader", "pr0m-s3cret"
EXAMPLES = Path(__file__).parents[2] / "examples"
QUERY = "vector(0.25)"  # a value without any scrape: only the connection is under test


@dataclass(frozen=True)
class SecuredPrometheus:
    url: str
    ca_file: Path


@pytest.fixture(scope="module")
def secured_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredPrometheus]:
    workdir = tmp_path_factory.mktemp("secured-prometheus")
    pki = create_pki(workdir / "pki")  # its serving certificate names 127.0.0.1
    # Cost 4: the lowest bcrypt allows, so each request is not a quarter-second of hashing.
    hashed = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    web_config = workdir / "web.yml"
    web_config.write_text(
        textwrap.dedent(
            f"""\
            tls_server_config:
              cert_file: {pki.serving.cert}
              key_file: {pki.serving.key}
            basic_auth_users:
              {USER}: '{hashed}'
            """
        )
    )
    (workdir / "prometheus.yml").write_text("global:\n  scrape_interval: 15s\n")
    port = free_port()
    process = ManagedProcess(
        "prometheus-secured",
        [
            str(tools.binary("prometheus")),
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.config.file={web_config}",
            "--log.level=warn",
        ],
        workdir / "prometheus.log",
    )
    process.start()
    url = f"https://127.0.0.1:{port}"

    def ready() -> int:
        try:
            return requests.get(
                f"{url}/-/ready", verify=str(pki.ca.cert), auth=(USER, PASSWORD), timeout=2
            ).status_code
        except requests.RequestException:
            return 0

    try:
        until(ready, lambda status: status == 200, timeout=60, what="secured Prometheus ready")
        yield SecuredPrometheus(url, pki.ca.cert)
    finally:
        process.stop()


def _reader(config: OperatorConfig) -> MetricsReader:
    return MetricsReader(
        config.prometheus_url,
        timeout=5,
        headers=config.prometheus_request_headers(),
        basic_auth=config.prometheus_basic_auth(),
        ca_file=config.prometheus_ca_file,
    )


def test_basic_auth_and_the_ca_bundle_from_the_environment_get_an_answer(
    secured_prometheus: SecuredPrometheus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_URL", secured_prometheus.url)
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_BASIC_AUTH_USERNAME", USER)
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_BASIC_AUTH_PASSWORD", PASSWORD)
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_CA_FILE", str(secured_prometheus.ca_file))
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_HEADERS", '{"X-Scope-OrgID": "team-a"}')
    reading = _reader(OperatorConfig.from_environment()).utilization(QUERY, timedelta(minutes=1))
    assert (reading.outcome, reading.value) == (Outcome.OK, 0.25)


def test_without_credentials_prometheus_refuses_and_the_error_says_so(
    secured_prometheus: SecuredPrometheus,
) -> None:
    config = OperatorConfig(
        prometheus_url=secured_prometheus.url,
        prometheus_ca_file=str(secured_prometheus.ca_file),
    )
    reading = _reader(config).utilization(QUERY, timedelta(minutes=1))
    assert reading.outcome is Outcome.ERROR
    assert "401" in reading.detail


def test_a_wrong_password_is_refused_and_never_shown(
    secured_prometheus: SecuredPrometheus,
) -> None:
    config = OperatorConfig(
        prometheus_url=secured_prometheus.url,
        prometheus_basic_auth_username=USER,
        prometheus_basic_auth_password="not-the-password",
        prometheus_ca_file=str(secured_prometheus.ca_file),
    )
    reading = _reader(config).utilization(QUERY, timedelta(minutes=1))
    assert reading.outcome is Outcome.ERROR and "401" in reading.detail
    assert "not-the-password" not in reading.describe()


def test_without_the_ca_bundle_the_certificate_is_not_trusted(
    secured_prometheus: SecuredPrometheus,
) -> None:
    config = OperatorConfig(
        prometheus_url=secured_prometheus.url,
        prometheus_basic_auth_username=USER,
        prometheus_basic_auth_password=PASSWORD,
    )
    reading = _reader(config).utilization(QUERY, timedelta(minutes=1))
    assert reading.outcome is Outcome.ERROR
    assert "certificate verify failed" in reading.detail
    assert PASSWORD not in reading.describe()


def test_series_from_prometheus_uses_the_same_connection_settings(
    secured_prometheus: SecuredPrometheus,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = yaml.safe_load((EXAMPLES / "nightly-enrichment.yaml").read_text())
    manifest["spec"]["metrics"] = {"utilization": QUERY}
    placement_file = tmp_path / "wp.yaml"
    placement_file.write_text(yaml.safe_dump(manifest))
    end = dt.datetime.now(dt.UTC)
    command = [
        "series", "from-prometheus", "--placement", str(placement_file),
        "--prometheus-url", secured_prometheus.url, "--replicas", "2",
        "--start", (end - dt.timedelta(minutes=10)).isoformat(), "--end", end.isoformat(),
        "--step", "1m", "--output", str(tmp_path / "series.csv"),
    ]  # fmt: skip
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_CA_FILE", str(secured_prometheus.ca_file))
    assert main(command) == 1  # no credentials: refused, one line, no traceback
    assert "401" in capsys.readouterr().err
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_BASIC_AUTH_USERNAME", USER)
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_BASIC_AUTH_PASSWORD", PASSWORD)
    assert main(command) == 0, capsys.readouterr().err
    assert "0.25" in (tmp_path / "series.csv").read_text()
