"""How the local engines are wired, without starting them: which Kueue webhooks reach the
apiserver and where, what certificates they get, and when a built engine counts as built."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from placement.localenv import tools
from placement.localenv.engines import LocalKueue
from placement.localenv.pki import create_serving_ca, issue_serving_pair

WEBHOOKS = """\
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: mutating-webhook-configuration}
webhooks:
- name: mjob.kb.io
  clientConfig: {service: {name: webhook-service, namespace: system, path: /mutate-batch-v1-job}}
  rules: [{apiGroups: [batch], resources: [jobs], apiVersions: [v1], operations: [CREATE]}]
- name: mdeployment.kb.io
  clientConfig: {service: {name: webhook-service, namespace: system, path: /mutate-deploy}}
  rules: [{apiGroups: [apps], resources: [deployments], apiVersions: [v1], operations: [CREATE]}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: validating-webhook-configuration}
webhooks:
- name: vclusterqueue.kb.io
  clientConfig: {service: {name: webhook-service, namespace: system, path: /validate-cq}}
  rules: [{apiGroups: [kueue.x-k8s.io], resources: [clusterqueues], apiVersions: [v1beta2],
           operations: [CREATE]}]
- name: vpod.kb.io
  clientConfig: {service: {name: webhook-service, namespace: system, path: /validate--v1-pod}}
  rules: [{apiGroups: [""], resources: [pods], apiVersions: [v1], operations: [CREATE]}]
"""


def _kueue() -> LocalKueue:
    # Only what _webhooks reads: no cluster, no process.
    kueue = LocalKueue.__new__(LocalKueue)
    kueue.webhook_port = 40123
    kueue._webhook_names = (
        "kueue-mutating-webhook-configuration",
        "kueue-validating-webhook-configuration",
    )
    return kueue


def test_only_kueues_own_and_the_job_webhooks_are_registered_and_they_name_a_url(
    tmp_path: Path,
) -> None:
    manifests = tmp_path / "manifests.yaml"
    manifests.write_text(WEBHOOKS)
    configurations = _kueue()._webhooks(manifests, "Q0E=")

    by_name: dict[str, Any] = {c["metadata"]["name"]: c for c in configurations}
    mutating = by_name["kueue-mutating-webhook-configuration"]["webhooks"]
    validating = by_name["kueue-validating-webhook-configuration"]["webhooks"]
    # A Deployment or Pod write never waits on Kueue; Jobs and Kueue's objects do.
    assert [w["name"] for w in mutating] == ["mjob.kb.io"]
    assert [w["name"] for w in validating] == ["vclusterqueue.kb.io"]
    assert mutating[0]["clientConfig"] == {
        "url": "https://127.0.0.1:40123/mutate-batch-v1-job",
        "caBundle": "Q0E=",
    }


def test_the_kueue_certificates_satisfy_its_rotator_and_the_apiserver(tmp_path: Path) -> None:
    validity = LocalKueue.cert_validity
    ca = create_serving_ca(
        tmp_path, "ca", "kueue-ca", server_names=("kueue-ca",), validity=validity, rsa_key=True
    )
    names = ("kueue-webhook-service.kueue-system.svc", "127.0.0.1")
    pair = issue_serving_pair(tmp_path, "serving", ca, names, validity=validity)

    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    cert.verify_directly_issued_by(ca_cert)
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in alt.get_values_for_type(x509.IPAddress)
    assert names[0] in alt.get_values_for_type(x509.DNSName)
    ca_alt = ca_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ca_alt.get_values_for_type(x509.DNSName) == ["kueue-ca"]
    # Kueue regenerates (with names that do not include 127.0.0.1) within 90 days of expiry.
    horizon = dt.datetime.now(dt.UTC) + dt.timedelta(days=90)
    assert ca_cert.not_valid_after_utc > horizon and cert.not_valid_after_utc > horizon
    # Its rotator parses the CA key with x509.ParsePKCS1PrivateKey.
    assert ca.key.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")


def test_a_built_engine_needs_its_binary_and_its_manifests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLACEMENT_TOOLS_DIR", str(tmp_path))
    kueue = tools.go_tool("kueue")
    kueue.bin_dir.mkdir(parents=True)
    binary = kueue.path("kueue")
    binary.write_text("#!/bin/sh\n")
    os.chmod(binary, 0o755)
    assert not kueue.is_built()
    with pytest.raises(tools.ToolsError, match="run `make tools`"):
        tools.manifests("kueue")
    for _, directory in kueue.manifests:
        (kueue.manifest_dir / directory).mkdir(parents=True)
    assert kueue.is_built()
    assert tools.manifests("kueue") == tmp_path / f"kueue-v{kueue.version}" / "manifests"


def test_the_engines_are_built_by_make_tools_like_the_control_plane() -> None:
    names = [tool.name for tool in tools.TOOLS]
    assert {"keda", "kueue"} <= set(names)
    assert tools.go_tool("keda").version.startswith("2.21.")
    assert tools.go_tool("kueue").version.startswith("0.17.")
