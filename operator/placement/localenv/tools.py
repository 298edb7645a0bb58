"""Build the local control plane's binaries from the Go module proxy, once per version.

Kubernetes publishes no binaries to any registry this project can reach, so `make tools`
builds kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok and helm
with the local Go toolchain into a cache outside the repository, keyed by version. A second
run finds them and builds nothing. Prometheus and promtool come from Debian's packages.

The engines the operator hands work to, KEDA's operator and Kueue's manager, are built the
same way; their CRDs and webhook manifests are copied from the module cache next to the
binary, so a later `go clean -modcache` does not lose them.

    python -m placement.localenv.tools build     # build what is missing, print timings
    python -m placement.localenv.tools paths     # where each binary is
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "1.36.3"
ETCD_VERSION = "3.6.16"
KWOK_VERSION = "0.8.0"
HELM_VERSION = "3.22.0"
KEDA_VERSION = "2.21.0"
KUEUE_VERSION = "0.17.0"

KUBERNETES_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


class ToolsError(RuntimeError):
    """A binary is missing or could not be built."""


def cache_root() -> Path:
    """Where built binaries live: outside the repository, shared by every checkout."""
    explicit = os.environ.get("PLACEMENT_TOOLS_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "placement-operator" / "tools"


@dataclass(frozen=True)
class GoTool:
    name: str
    version: str
    binaries: tuple[str, ...]
    build: Callable[[GoTool, Path, Path], None]  # (tool, workdir, bindir)
    # (module, directory inside it): manifests copied to manifest_dir next to bin/.
    manifests: tuple[tuple[str, str], ...] = ()

    @property
    def root(self) -> Path:
        return cache_root() / f"{self.name}-v{self.version}"

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def manifest_dir(self) -> Path:
        return self.root / "manifests"

    def path(self, binary: str) -> Path:
        return self.bin_dir / binary

    def is_built(self) -> bool:
        binaries = all(os.access(self.path(b), os.X_OK) for b in self.binaries)
        return binaries and all((self.manifest_dir / d).is_dir() for _, d in self.manifests)


def _go(args: list[str], cwd: Path, extra_env: dict[str, str] | None = None) -> str:
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", **(extra_env or {})}
    proc = subprocess.run(
        ["go", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise ToolsError(f"`go {' '.join(args)}` failed in {cwd}:\n{tail}")
    return proc.stdout


def _build_kubernetes(tool: GoTool, work: Path, out: Path) -> None:
    # k8s.io/kubernetes replaces its staging modules with ./staging paths, so it cannot be
    # `go install`ed; a local module pins each staging module to its published v0.Y.Z
    # (kubernetes/kubernetes#79384).
    version = tool.version
    minor = version.split(".")[1]
    _go(["mod", "init", "localbuild/kubernetes"], work)
    info = json.loads(_go(["mod", "download", "-json", f"k8s.io/kubernetes@v{version}"], work))
    gomod = Path(info["GoMod"]).read_text()
    staging = sorted(
        line.split("=>")[0].strip()
        for line in gomod.splitlines()
        if "=> ./staging/" in line and line.strip().startswith("k8s.io/")
    )
    for module in staging:
        _go(["mod", "edit", f"-replace={module}={module}@v0.{version.split('.', 1)[1]}"], work)
    _go(["mod", "edit", f"-require=k8s.io/kubernetes@v{version}"], work)
    imports = "\n".join(f'\t_ "k8s.io/kubernetes/cmd/{c}"' for c in tool.binaries)
    (work / "tools.go").write_text(f"//go:build tools\npackage tools\n\nimport (\n{imports}\n)\n")
    _go(["mod", "tidy", "-e"], work)
    # Without the version ldflags /version says v0.0.0 and Helm's kubeVersion checks fail.
    base, client = "-X k8s.io/component-base/version", "-X k8s.io/client-go/pkg/version"
    ldflags = " ".join(
        [
            "-s -w",
            f"{base}.gitVersion=v{version} {base}.gitMajor=1 {base}.gitMinor={minor}",
            f"{base}.gitTreeState=clean",
            f"{client}.gitVersion=v{version} {client}.gitMajor=1 {client}.gitMinor={minor}",
        ]
    )
    for command in tool.binaries:
        started = time.monotonic()
        _go(
            [
                "build",
                "-trimpath",
                "-tags",
                "selinux,notest",
                "-ldflags",
                ldflags,
                "-o",
                str(out / command),
                f"k8s.io/kubernetes/cmd/{command}",
            ],
            work,
        )
        print(f"  {command}: {time.monotonic() - started:.0f}s", flush=True)


def _build_etcd(tool: GoTool, work: Path, out: Path) -> None:
    # etcd's server module also carries replaces; required from a local module it resolves
    # its sibling modules at their published versions instead.
    _go(["mod", "init", "localbuild/etcd"], work)
    _go(["get", f"go.etcd.io/etcd/server/v3@v{tool.version}"], work)
    (work / "tools.go").write_text(
        '//go:build tools\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n'
    )
    _go(["mod", "tidy", "-e"], work)
    _go(
        [
            "build",
            "-trimpath",
            "-ldflags",
            "-s -w",
            "-o",
            str(out / "etcd"),
            "go.etcd.io/etcd/server/v3",
        ],
        work,
    )


def _go_install(package: str, ldflags: str = "-s -w") -> Callable[[GoTool, Path, Path], None]:
    def build(tool: GoTool, work: Path, out: Path) -> None:
        _go(
            ["install", "-trimpath", "-ldflags", ldflags, f"{package}@v{tool.version}"],
            work,
            {"GOBIN": str(out), "GOFLAGS": ""},
        )

    return build


def _build_keda(tool: GoTool, work: Path, out: Path) -> None:
    # KEDA's go.mod has a replace directive, so `go install ...@version` is refused; a local
    # module requiring it with the same replace builds the operator binary.
    _go(["mod", "init", "localbuild/keda"], work)
    _go(["mod", "edit", f"-require=github.com/kedacore/keda/v2@v{tool.version}"], work)
    info = json.loads(
        _go(["mod", "download", "-json", f"github.com/kedacore/keda/v2@v{tool.version}"], work)
    )
    for line in Path(info["GoMod"]).read_text().splitlines():
        if line.strip().startswith("replace ") and "=>" in line:
            old, new = line.strip().removeprefix("replace ").split("=>")
            _go(["mod", "edit", f"-replace={'@'.join(old.split())}={'@'.join(new.split())}"], work)
    (work / "tools.go").write_text(
        '//go:build tools\npackage tools\n\nimport _ "github.com/kedacore/keda/v2/cmd/operator"\n'
    )
    _go(["mod", "tidy", "-e"], work)
    version = f"-X github.com/kedacore/keda/v2/version.Version={tool.version}"
    _go(
        [
            "build",
            "-trimpath",
            "-ldflags",
            f"-s -w {version}",
            "-o",
            str(out / "keda-operator"),
            "github.com/kedacore/keda/v2/cmd/operator",
        ],
        work,
    )


def _copy_manifests(tool: GoTool, work: Path, out: Path) -> None:
    for module, directory in tool.manifests:
        info = json.loads(_go(["mod", "download", "-json", f"{module}@v{tool.version}"], work))
        shutil.copytree(Path(info["Dir"]) / directory, out / directory)
    # The module cache is read-only; the copies need not be.
    for path in out.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


TOOLS: tuple[GoTool, ...] = (
    GoTool("kubernetes", KUBERNETES_VERSION, KUBERNETES_COMMANDS, _build_kubernetes),
    GoTool("etcd", ETCD_VERSION, ("etcd",), _build_etcd),
    GoTool("kwok", KWOK_VERSION, ("kwok",), _go_install("sigs.k8s.io/kwok/cmd/kwok")),
    GoTool(
        "helm",
        HELM_VERSION,
        ("helm",),
        _go_install(
            "helm.sh/helm/v3/cmd/helm",
            f"-s -w -X helm.sh/helm/v3/internal/version.version=v{HELM_VERSION}",
        ),
    ),
    GoTool(
        "keda",
        KEDA_VERSION,
        ("keda-operator",),
        _build_keda,
        (("github.com/kedacore/keda/v2", "config/crd/bases"),),
    ),
    GoTool(
        "kueue",
        KUEUE_VERSION,
        ("kueue",),
        _go_install(
            "sigs.k8s.io/kueue/cmd/kueue",
            f"-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=v{KUEUE_VERSION}",
        ),
        (
            # bases/, and patches/ + kustomization.yaml: which CRDs convert by webhook.
            ("sigs.k8s.io/kueue", "config/components/crd"),
            ("sigs.k8s.io/kueue", "config/components/webhook"),
        ),
    ),
)


def go_tool(name: str) -> GoTool:
    """The tool (and its version) called `name`, e.g. "keda"."""
    for candidate in TOOLS:
        if candidate.name == name:
            return candidate
    raise ToolsError(f"unknown tool {name!r}")


def manifests(name: str) -> Path:
    """Directory holding the manifests copied from a built tool's module (CRDs, webhooks)."""
    found = go_tool(name)
    if not found.is_built():
        raise ToolsError(f"{name} v{found.version} is not built in {found.root}: run `make tools`")
    return found.manifest_dir


DEBIAN_PACKAGES = {"prometheus": "prometheus", "promtool": "prometheus"}


def binary(name: str) -> Path:
    """Absolute path of a built (or Debian-installed) binary; a clear error if missing."""
    for tool in TOOLS:
        if name in tool.binaries:
            path = tool.path(name)
            if not os.access(path, os.X_OK):
                raise ToolsError(f"{name} v{tool.version} is not built at {path}: run `make tools`")
            return path
    if name in DEBIAN_PACKAGES:
        found = shutil.which(name)
        if not found:
            raise ToolsError(
                f"{name} is not installed: run `make tools` (Debian package "
                f"{DEBIAN_PACKAGES[name]})"
            )
        return Path(found)
    raise ToolsError(f"unknown tool {name!r}")


@contextlib.contextmanager
def _build_lock(name: str) -> Iterator[None]:
    # Two builds at once (make tools while pytest starts) would race on the same outputs; one
    # lock per tool, so a ten-minute engine build does not hold up the control plane's.
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".lock-{name}", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_go_tool(tool: GoTool) -> float | None:
    """Build one tool if missing; return seconds taken, or None when already cached."""
    if tool.is_built():
        return None
    if shutil.which("go") is None:
        raise ToolsError("the Go toolchain is needed to build the control plane: install Go")
    started = time.monotonic()
    staging = tool.root.with_name(f"{tool.root.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "bin").mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix=f"build-{tool.name}-") as work:
        tool.build(tool, Path(work), staging / "bin")
        if tool.manifests:
            _copy_manifests(tool, Path(work), staging / "manifests")
    # Rename last, so an interrupted build never looks finished.
    shutil.rmtree(tool.root, ignore_errors=True)
    staging.rename(tool.root)
    return time.monotonic() - started


def install_debian_packages() -> float | None:
    """Install Prometheus and promtool from Debian's packages when missing."""
    missing = sorted({pkg for cmd, pkg in DEBIAN_PACKAGES.items() if shutil.which(cmd) is None})
    if not missing:
        return None
    started = time.monotonic()
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
    ):
        proc = subprocess.run(
            [*sudo, *command], env=env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise ToolsError(f"`{' '.join(command)}` failed:\n{proc.stdout[-2000:]}{proc.stderr}")
    return time.monotonic() - started


def build_all(only: tuple[str, ...] = ()) -> dict[str, float | None]:
    """Build or install everything (or the tools named in `only`); map each component to
    seconds taken (None: cached)."""
    timings: dict[str, float | None] = {}
    for tool in TOOLS:
        if only and tool.name not in only:
            continue
        print(f"{tool.name} v{tool.version}: ", end="", flush=True)
        with _build_lock(tool.name):
            if tool.is_built():
                print(f"cached in {tool.root}", flush=True)
                timings[tool.name] = None
                continue
            print("building", flush=True)
            seconds = build_go_tool(tool)
        timings[tool.name] = seconds
        print(f"{tool.name} v{tool.version}: built in {seconds:.0f}s -> {tool.root}", flush=True)
    if only and "prometheus" not in only:
        return timings
    with _build_lock("prometheus"):
        seconds = install_debian_packages()
    timings["prometheus"] = seconds
    where = shutil.which("prometheus")
    if seconds is None:
        print(f"prometheus: already installed at {where}")
    else:
        print(f"prometheus: installed from Debian in {seconds:.0f}s at {where}")
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m placement.localenv.tools")
    parser.add_argument("command", choices=["build", "paths"])
    parser.add_argument(
        "--only", action="append", default=[], metavar="TOOL", help="e.g. keda, kueue"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build_all(tuple(args.only))
        else:
            for tool in TOOLS:
                for name in tool.binaries:
                    print(f"{name}\t{tool.path(name)}")
            for name in DEBIAN_PACKAGES:
                print(f"{name}\t{shutil.which(name) or '(not installed)'}")
    except ToolsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
