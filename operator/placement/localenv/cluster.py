"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver (TLS, RBAC),
kube-controller-manager, kube-scheduler and kwok fake nodes.

The pytest fixtures, `make cluster`, the demo and the benchmarks all start it through
`LocalCluster`, so they run against the same thing:

    with LocalCluster(workdir) as cluster:
        cluster.kubectl("get", "nodes")
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import textwrap
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from placement.localenv import tools
from placement.localenv.pki import ClusterPki, create_pki
from placement.localenv.process import (
    ComponentError,
    ManagedProcess,
    Service,
    free_port,
    http_ok,
)

SERVICE_CIDR = "10.0.0.0/24"
POD_CIDR = "10.244.0.0/16"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"


@dataclass
class StartTimings:
    """Seconds each component took to become healthy (printed by `make cluster`)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = ", ".join(f"{name} {secs:.1f}s" for name, secs in self.seconds.items())
        return f"{parts}; total {sum(self.seconds.values()):.1f}s"


AUDIT_READS_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    verbs: ["get", "list"]
  - level: None
"""


class LocalCluster(Service):
    """Start, use and stop one local control plane rooted in `workdir`."""

    def __init__(
        self,
        workdir: Path,
        *,
        nodes: int = 1,
        start_timeout: float = 90.0,
        client_qps: int | None = None,
        audit_reads: bool = False,
    ) -> None:
        self.workdir = workdir.resolve()
        # An audit log of the gets and lists (not the watches), with who made each: which
        # client made an idle cycle's requests (bench/scale.py).
        self.audit_log = self.workdir / "audit.log" if audit_reads else None
        self.node_count = nodes
        # The controller-manager's and scheduler's API rate (their default, 20/s, takes
        # minutes to create a benchmark's thousands of pods).
        self.client_qps = client_qps
        self.start_timeout = start_timeout
        self.kubeconfig = self.workdir / "kubeconfig"
        self.timings = StartTimings()
        self.api_port = 0
        self._processes: list[ManagedProcess] = []
        self._pki: ClusterPki | None = None

    # -- lifecycle -------------------------------------------------------------------

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def start(self) -> None:
        """Start every component in dependency order; on any failure stop what started.

        Ports are picked free, then bound by another process a moment later: something else
        can take one in between. That one case is retried once, with new ports."""
        try:
            self._start_once()
        except ComponentError as error:
            if "address already in use" not in str(error):
                raise
            self._start_once()

    def _start_once(self) -> None:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        (self.workdir / "logs").mkdir(parents=True)
        try:
            self._pki = create_pki(self.workdir / "pki")
            self._write_kubeconfig()
            self._start_etcd()
            self._start_apiserver()
            self._start_controller_manager()
            self._start_scheduler()
            self._start_kwok()
            self._add_nodes()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop in reverse order: clients before the apiserver, the apiserver before etcd."""
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()

    def running(self) -> dict[str, int | None]:
        """Each component's pid, or None once it has exited."""
        return {p.name: (p.pid if p.exit_code() is None else None) for p in self._processes}

    # -- use -------------------------------------------------------------------------

    def kubectl(
        self, *args: str, check: bool = True, input_text: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this cluster."""
        result = subprocess.run(
            [str(tools.binary("kubectl")), "--kubeconfig", str(self.kubeconfig), *args],
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, result.args, result.stdout, result.stderr
            )
        return result

    def pids(self) -> dict[str, int]:
        """The running components' process ids by name (etcd, kube-apiserver, ...)."""
        return {p.name: p.pid for p in self._processes if p.pid is not None}

    # -- components ------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        process = ManagedProcess(name, argv, self.workdir / "logs" / f"{name}.log")
        self._processes.append(process)
        process.start()
        return process

    def _client_tls(self) -> ssl.SSLContext:
        assert self._pki is not None
        context = ssl.create_default_context(cafile=str(self._pki.ca.cert))
        context.load_cert_chain(str(self._pki.admin.cert), str(self._pki.admin.key))
        return context

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        etcd = self._spawn(
            "etcd",
            [
                str(tools.binary("etcd")),
                "--name=local",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=local=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync=true",  # a throwaway cluster; fsync only slows tests
                "--log-level=warn",
            ],
        )
        self.timings.seconds["etcd"] = etcd.wait_until(
            lambda: http_ok(f"{self.etcd_url}/health"), self.start_timeout, "healthy"
        )

    def _start_apiserver(self) -> None:
        assert self._pki is not None
        pki = self._pki
        apiserver = self._spawn(
            "kube-apiserver",
            [
                str(tools.binary("kube-apiserver")),
                f"--etcd-servers={self.etcd_url}",
                f"--secure-port={self.api_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={pki.serving.cert}",
                f"--tls-private-key-file={pki.serving.key}",
                f"--client-ca-file={pki.ca.cert}",
                "--authorization-mode=Node,RBAC",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                f"--service-account-issuer={self.server}",
                f"--service-account-key-file={pki.service_account_pub}",
                f"--service-account-signing-key-file={pki.service_account_key}",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--v=1",
                *self._audit_flags(),
            ],
        )
        context = self._client_tls()
        self.timings.seconds["kube-apiserver"] = apiserver.wait_until(
            lambda: http_ok(f"{self.server}/readyz", context), self.start_timeout, "ready"
        )

    def _start_controller_manager(self) -> None:
        assert self._pki is not None
        self._start_client_component(
            "kube-controller-manager",
            [
                f"--root-ca-file={self._pki.ca.cert}",
                f"--service-account-private-key-file={self._pki.service_account_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
            ],
        )

    def _start_scheduler(self) -> None:
        self._start_client_component("kube-scheduler", [])

    def _audit_flags(self) -> list[str]:
        if self.audit_log is None:
            return []
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(AUDIT_READS_POLICY)
        return [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-mode=batch",
            "--audit-log-batch-max-wait=1s",
        ]

    def _start_client_component(self, name: str, extra_flags: list[str]) -> None:
        """controller-manager and scheduler: API clients with a health port of their own."""
        port = free_port()
        component = self._spawn(
            name,
            [
                str(tools.binary(name)),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / (name + '-certs')}",
                "--leader-elect=false",
                "--v=1",
                *(
                    [f"--kube-api-qps={self.client_qps}", f"--kube-api-burst={self.client_qps}"]
                    if self.client_qps
                    else []
                ),
                *extra_flags,
            ],
        )
        insecure = ssl._create_unverified_context()  # self-signed serving cert of its own
        self.timings.seconds[name] = component.wait_until(
            lambda: http_ok(f"https://127.0.0.1:{port}/healthz", insecure),
            self.start_timeout,
            "healthy",
        )

    def _start_kwok(self) -> None:
        port = free_port()
        # Standalone kwok has no default stages (kwokctl injects them); ours are kwok's
        # defaults plus pod-fail. An explicit config also keeps ~/.kwok/kwok.yaml out.
        config = self.workdir / "kwok.yaml"
        config.write_text(kwok_config())
        kwok = self._spawn(
            "kwok",
            [
                str(tools.binary("kwok")),
                f"--config={config}",
                f"--kubeconfig={self.kubeconfig}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                f"--cidr={POD_CIDR}",
                "--node-ip=10.243.0.1",
                f"--server-address=127.0.0.1:{port}",
            ],
        )
        self.timings.seconds["kwok"] = kwok.wait_until(
            lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), self.start_timeout, "healthy"
        )

    def _add_nodes(self) -> None:
        started = time.monotonic()
        names = [f"kwok-node-{index}" for index in range(self.node_count)]
        manifests = "\n---\n".join(_node_manifest(name) for name in names)
        self.kubectl("apply", "-f", "-", input_text=manifests)
        waited = self.kubectl(
            "wait",
            "--for=condition=Ready",
            *(f"node/{n}" for n in names),
            f"--timeout={int(self.start_timeout)}s",
            check=False,
        )
        if waited.returncode != 0:
            kwok = next(p for p in self._processes if p.name == "kwok")
            raise kwok.failure(f"did not make the nodes Ready: {waited.stderr.strip()}")
        self.timings.seconds["nodes"] = time.monotonic() - started

    def _write_kubeconfig(self) -> None:
        assert self._pki is not None
        pki = self._pki
        self.api_port = free_port()  # chosen here: the kubeconfig names it before it listens

        def inline(path: Path) -> str:
            import base64

            return base64.b64encode(path.read_bytes()).decode()

        self.kubeconfig.write_text(
            textwrap.dedent(
                f"""\
                apiVersion: v1
                kind: Config
                clusters:
                - name: placement-local
                  cluster:
                    server: {self.server}
                    certificate-authority-data: {inline(pki.ca.cert)}
                users:
                - name: admin
                  user:
                    client-certificate-data: {inline(pki.admin.cert)}
                    client-key-data: {inline(pki.admin.key)}
                contexts:
                - name: placement-local
                  context:
                    cluster: placement-local
                    user: admin
                current-context: placement-local
                """
            )
        )
        self.kubeconfig.chmod(0o600)


def kwok_config() -> str:
    """kwok's configuration: its options and every stage shipped in kwok_stages/."""
    # kwok applies its option defaults only without a config file, so they are spelled out.
    options = (
        "  podPlayStageParallelism: 4\n  nodePlayStageParallelism: 4\n"
        "  nodeLeaseParallelism: 4\n  podsOnNodeSyncParallelism: 4\n"
    )
    documents = [
        f"apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions:\n{options}"
    ]
    stages = resources.files("placement.localenv") / "kwok_stages"
    for stage in sorted(stages.iterdir(), key=lambda entry: entry.name):
        if stage.name.endswith(".yaml"):
            documents.append(stage.read_text())
    return "---\n".join(documents)


def _node_manifest(name: str) -> str:
    # No taint: every workload in the local cluster may land on the fake nodes.
    return textwrap.dedent(
        f"""\
        apiVersion: v1
        kind: Node
        metadata:
          name: {name}
          annotations:
            {KWOK_NODE_ANNOTATION}: fake
            node.alpha.kubernetes.io/ttl: "0"
          labels:
            kubernetes.io/hostname: {name}
            kubernetes.io/os: linux
            kubernetes.io/arch: amd64
            type: kwok
        status:
          allocatable: {{cpu: "64", memory: 512Gi, pods: "250", nvidia.com/gpu: "8"}}
          capacity: {{cpu: "64", memory: 512Gi, pods: "250", nvidia.com/gpu: "8"}}
        """
    )


__all__ = ["ComponentError", "LocalCluster", "StartTimings"]
