"""The engines the operator hands work to, started on 127.0.0.1 against a `LocalCluster`:
KEDA's operator (scales a Deployment between 0 and 1 replica from a ScaledObject's triggers)
and Kueue's manager (admits suspended Jobs against ClusterQueue quota).

Both are the released binaries built by `make tools`, with the CRDs and webhook manifests of
the same release. They run as plain processes with the admin kubeconfig, like the control
plane's own components:

    with LocalCluster(workdir) as cluster, LocalKeda(cluster, workdir / "keda") as keda:
        ...  # ScaledObjects now scale their targets
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import os
import shutil
import textwrap
import time
from pathlib import Path
from typing import Any

import yaml

from placement.localenv import tools
from placement.localenv.cluster import LocalCluster
from placement.localenv.pki import KeyPair, create_serving_ca, issue_serving_pair
from placement.localenv.process import (
    ComponentError,
    ManagedProcess,
    Service,
    free_port,
    http_ok,
)

KEDA_NAMESPACE = "keda"
KUEUE_NAMESPACE = "kueue-system"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_API = "kueue.x-k8s.io/v1beta2"
DEFAULT_FLAVOR = "default-flavor"


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _apply(cluster: LocalCluster, documents: list[dict[str, Any]]) -> None:
    # Server-side: Kueue's Workload CRD is too large for client-side apply's annotation.
    cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "-",
        input_text="\n---\n".join(json.dumps(d) for d in documents),
        timeout=120,
    )


def _load_yaml(directory: Path) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        documents.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return documents


def wait_for_crds(cluster: LocalCluster, names: list[str], timeout: float = 60) -> None:
    """Until every named CRD is Established."""
    jsonpath = (
        '{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Established")].status}'
        "{'\\n'}{end}"
    )
    deadline = time.monotonic() + timeout
    while True:
        result = cluster.kubectl("get", "crd", *names, "-o", f"jsonpath={jsonpath}", check=False)
        established = {line for line in result.stdout.splitlines() if line.endswith("=True")}
        if result.returncode == 0 and len(established) == len(names):
            return
        if time.monotonic() > deadline:
            raise ComponentError(
                f"CRDs not Established after {timeout:.0f}s: {result.stdout}{result.stderr}"
            )
        time.sleep(0.2)


class _Engine(Service):
    """One engine process plus what it installed into the cluster."""

    name = ""

    def __init__(self, cluster: LocalCluster, workdir: Path, *, start_timeout: float) -> None:
        self.cluster = cluster
        self.workdir = workdir.resolve()
        self.start_timeout = start_timeout
        self.startup_seconds = 0.0
        self.probe_port = 0
        self._process: ManagedProcess | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        started = time.monotonic()
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True)
        try:
            self._install()
            self._process = ManagedProcess(self.name, self._argv(), self.log_path, self._env())
            self._process.start()
            self._process.wait_until(
                lambda: http_ok(f"http://127.0.0.1:{self.probe_port}/readyz"),
                self.start_timeout,
                "ready",
            )
            self._after_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    def exit_code(self) -> int | None:
        return self._process.exit_code() if self._process else None

    def _env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig)}

    def _install(self) -> None:
        raise NotImplementedError

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _after_ready(self) -> None:
        """Checks beyond /readyz before the engine counts as started."""


class LocalKeda(_Engine):
    """keda-operator: the ScaledObject controller and the 0 <-> 1 replica scaler.

    Scaling past one replica goes through the HPA it creates and KEDA's separate metrics
    adapter (an APIService); that adapter is not run here."""

    name = "keda-operator"

    def __init__(
        self, cluster: LocalCluster, workdir: Path, *, start_timeout: float = 120.0
    ) -> None:
        super().__init__(cluster, workdir, start_timeout=start_timeout)
        self.version = tools.go_tool("keda").version

    def _install(self) -> None:
        crds = _load_yaml(tools.manifests("keda") / "config/crd/bases")
        _apply(cluster=self.cluster, documents=crds)
        wait_for_crds(self.cluster, [c["metadata"]["name"] for c in crds])
        _apply(
            self.cluster,
            [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KEDA_NAMESPACE}}],
        )
        # The gRPC metrics service (for the adapter) refuses to start without mTLS material;
        # KEDA reads ca.crt, tls.crt and tls.key from --cert-dir.
        certs = self.workdir / "certs"
        ca = create_serving_ca(certs, "ca", "keda-local-ca")
        issue_serving_pair(certs, "tls", ca, ("127.0.0.1", "localhost"))

    def _argv(self) -> list[str]:
        self.probe_port = free_port()
        return [
            str(tools.binary("keda-operator")),
            f"--health-probe-bind-address=127.0.0.1:{self.probe_port}",
            "--enable-prometheus-metrics=false",
            f"--metrics-service-bind-address=127.0.0.1:{free_port()}",
            f"--cert-dir={self.workdir / 'certs'}",
            "--enable-cert-rotation=false",
            "--leader-elect=false",
            "--zap-log-level=info",
            "--zap-encoder=console",
        ]

    def _env(self) -> dict[str, str]:
        return {
            **super()._env(),
            "WATCH_NAMESPACE": "",  # every namespace
            "POD_NAMESPACE": KEDA_NAMESPACE,
            "KEDA_CLUSTER_OBJECT_NAMESPACE": KEDA_NAMESPACE,
        }


class LocalKueue(_Engine):
    """Kueue's manager with the batch/job integration, its webhooks served over TLS on
    127.0.0.1, and a ResourceFlavor every ClusterQueue here can use.

    Kueue runs in its default certificate mode (internal cert management): its rotator finds
    a Secret that is already valid and keeps it, so the certificates are ours, issued for
    both the Service name it checks and the 127.0.0.1 the webhook URLs name. Only the
    webhooks of Kueue's own API and of batch Jobs are registered: those of the integrations
    left disabled (Deployments, Pods, ...) would put every Deployment write behind Kueue."""

    name = "kueue"
    webhook_service = "kueue-webhook-service"
    webhook_secret = "kueue-webhook-server-cert"
    # The rotator replaces certificates that expire within 90 days.
    cert_validity = dt.timedelta(days=365)

    def __init__(
        self, cluster: LocalCluster, workdir: Path, *, start_timeout: float = 120.0
    ) -> None:
        super().__init__(cluster, workdir, start_timeout=start_timeout)
        self.version = tools.go_tool("kueue").version
        self.webhook_port = 0
        self._webhooks_installed = False
        self._webhook_names: tuple[str, str] = (
            "kueue-mutating-webhook-configuration",
            "kueue-validating-webhook-configuration",
        )

    @property
    def webhook_url(self) -> str:
        return f"https://127.0.0.1:{self.webhook_port}"

    # -- install ---------------------------------------------------------------------

    def _install(self) -> None:
        self.webhook_port = free_port()
        manifests = tools.manifests("kueue") / "config/components"
        ca, serving = self._certificates()
        ca_bundle = _b64(ca.cert)

        crds = self._crds(manifests, ca_bundle)
        _apply(self.cluster, crds)
        wait_for_crds(self.cluster, [c["metadata"]["name"] for c in crds])
        self._webhooks_installed = True  # from here on, stop() removes them
        _apply(
            self.cluster,
            [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KUEUE_NAMESPACE}},
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": self.webhook_secret, "namespace": KUEUE_NAMESPACE},
                    "type": "Opaque",
                    "data": {
                        "ca.crt": ca_bundle,
                        "ca.key": _b64(ca.key),
                        "tls.crt": _b64(serving.cert),
                        "tls.key": _b64(serving.key),
                    },
                },
                *self._webhooks(manifests / "webhook/manifests.yaml", ca_bundle),
            ],
        )
        (self.workdir / "config.yaml").write_text(self._config())

    def _certificates(self) -> tuple[KeyPair, KeyPair]:
        certs = self.workdir / "pki"
        # The rotator checks the CA under this name (a SAN), reads its key as PKCS#1 RSA and
        # checks the serving certificate against the Service's DNS name; the apiserver checks
        # it against 127.0.0.1.
        ca = create_serving_ca(
            certs,
            "ca",
            "kueue-ca",
            server_names=("kueue-ca",),
            validity=self.cert_validity,
            rsa_key=True,
        )
        serving = issue_serving_pair(
            certs,
            "serving",
            ca,
            (f"{self.webhook_service}.{KUEUE_NAMESPACE}.svc", "127.0.0.1", "localhost"),
            validity=self.cert_validity,
        )
        # Where the kubelet would mount the Secret.
        mounted = self.workdir / "serving-certs"
        mounted.mkdir()
        shutil.copy(serving.cert, mounted / "tls.crt")
        shutil.copy(serving.key, mounted / "tls.key")
        shutil.copy(ca.cert, mounted / "ca.crt")
        return ca, serving

    def _crds(self, manifests: Path, ca_bundle: str) -> list[dict[str, Any]]:
        crds = _load_yaml(manifests / "crd/bases")
        # Kueue's kustomization turns on conversion (v1beta1 <-> v1beta2) for these.
        converted = {
            patch["metadata"]["name"]
            for patch in _load_yaml(manifests / "crd/patches")
            if patch.get("spec", {}).get("conversion")
        }
        enabled = self._conversion_enabled(manifests / "crd/kustomization.yaml", converted)
        for crd in crds:
            if crd["metadata"]["name"] in enabled:
                crd["spec"]["conversion"] = {
                    "strategy": "Webhook",
                    "webhook": {
                        "clientConfig": {
                            "url": f"{self.webhook_url}/convert",
                            "caBundle": ca_bundle,
                        },
                        "conversionReviewVersions": ["v1"],
                    },
                }
        return crds

    @staticmethod
    def _conversion_enabled(kustomization: Path, patched: set[str]) -> set[str]:
        # Only the patches the kustomization lists (resourceflavors' is commented out).
        listed = yaml.safe_load(kustomization.read_text()).get("patches") or []
        paths = {p["path"] for p in listed if isinstance(p, dict) and "path" in p}
        enabled: set[str] = set()
        for name in patched:
            plural = name.split(".", 1)[0]
            if f"patches/webhook_in_{plural}.yaml" in paths:
                enabled.add(name)
        return enabled

    def _webhooks(self, manifests: Path, ca_bundle: str) -> list[dict[str, Any]]:
        configurations = [d for d in yaml.safe_load_all(manifests.read_text()) if d]
        result: list[dict[str, Any]] = []
        for configuration in configurations:
            kept = []
            for webhook in configuration["webhooks"]:
                rule = webhook["rules"][0]
                ours = "kueue.x-k8s.io" in rule["apiGroups"]
                jobs = rule["apiGroups"] == ["batch"] and rule["resources"] == ["jobs"]
                if not (ours or jobs):
                    continue
                webhook = copy.deepcopy(webhook)
                path = webhook["clientConfig"]["service"]["path"]
                url = f"{self.webhook_url}{path}"
                webhook["clientConfig"] = {"url": url, "caBundle": ca_bundle}
                kept.append(webhook)
            kind = configuration["kind"]
            name = self._webhook_names[0 if kind == "MutatingWebhookConfiguration" else 1]
            result.append({**configuration, "metadata": {"name": name}, "webhooks": kept})
        return result

    def _config(self) -> str:
        self.probe_port = free_port()
        return textwrap.dedent(
            f"""\
            apiVersion: config.kueue.x-k8s.io/v1beta2
            kind: Configuration
            namespace: {KUEUE_NAMESPACE}
            health:
              healthProbeBindAddress: 127.0.0.1:{self.probe_port}
            metrics:
              bindAddress: "0"
            webhook:
              host: 127.0.0.1
              port: {self.webhook_port}
              certDir: {self.workdir / "serving-certs"}
            leaderElection:
              leaderElect: false
            internalCertManagement:
              enable: true
              webhookServiceName: {self.webhook_service}
              webhookSecretName: {self.webhook_secret}
            integrations:
              frameworks:
              - batch/job
            """
        )

    def _argv(self) -> list[str]:
        return [
            str(tools.binary("kueue")),
            f"--config={self.workdir / 'config.yaml'}",
            # An aggregated API server of its own on a fixed port; nothing here uses it.
            "--feature-gates=VisibilityOnDemand=false",
            "--zap-log-level=info",
        ]

    def _after_ready(self) -> None:
        # /readyz says the webhook server listens; this says the apiserver reaches it
        # over TLS and Kueue answers (its ResourceFlavor webhooks).
        self.cluster.kubectl("apply", "-f", "-", input_text=json.dumps(resource_flavor()))

    def stop(self) -> None:
        # Webhooks with failurePolicy Fail and no server behind them would refuse every Job,
        # also when Kueue failed to start.
        if self._webhooks_installed:
            self._webhooks_installed = False
            self.cluster.kubectl(
                "delete",
                "mutatingwebhookconfiguration,validatingwebhookconfiguration",
                *self._webhook_names,
                "--ignore-not-found",
                check=False,
            )
        super().stop()

    # -- queues ----------------------------------------------------------------------

    def cluster_queue(self, name: str, *, cpu: str, memory: str = "64Gi") -> None:
        """A ClusterQueue for every namespace with this much quota of the default flavor."""
        _apply(self.cluster, [cluster_queue(name, cpu=cpu, memory=memory)])

    def local_queue(self, namespace: str, name: str, cluster_queue: str) -> None:
        _apply(self.cluster, [local_queue(namespace, name, cluster_queue)])


def resource_flavor(name: str = DEFAULT_FLAVOR) -> dict[str, Any]:
    return {"apiVersion": KUEUE_API, "kind": "ResourceFlavor", "metadata": {"name": name}}


def cluster_queue(name: str, *, cpu: str, memory: str = "64Gi") -> dict[str, Any]:
    return {
        "apiVersion": KUEUE_API,
        "kind": "ClusterQueue",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {},  # every namespace (an absent selector matches none)
            "resourceGroups": [
                {
                    "coveredResources": ["cpu", "memory"],
                    "flavors": [
                        {
                            "name": DEFAULT_FLAVOR,
                            "resources": [
                                {"name": "cpu", "nominalQuota": cpu},
                                {"name": "memory", "nominalQuota": memory},
                            ],
                        }
                    ],
                }
            ],
        },
    }


def local_queue(namespace: str, name: str, cluster_queue: str) -> dict[str, Any]:
    return {
        "apiVersion": KUEUE_API,
        "kind": "LocalQueue",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterQueue": cluster_queue},
    }


__all__ = [
    "KUEUE_QUEUE_LABEL",
    "LocalKeda",
    "LocalKueue",
    "cluster_queue",
    "local_queue",
    "resource_flavor",
    "wait_for_crds",
]
