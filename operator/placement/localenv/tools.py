"""Build the local control plane's binaries from the Go module proxy, once per version.

Kubernetes publishes no binaries to any registry this project can reach, so `make tools`
builds kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok and helm
with the local Go toolchain into a cache outside the repository, keyed by version. A second
run finds them and builds nothing. Prometheus and promtool come from Debian's packages.

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

    @property
    def bin_dir(self) -> Path:
        return cache_root() / f"{self.name}-v{self.version}" / "bin"

    def path(self, binary: str) -> Path:
        return self.bin_dir / binary

    def is_built(self) -> bool:
        return all(os.access(self.path(b), os.X_OK) for b in self.binaries)


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
)

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
def _build_lock() -> Iterator[None]:
    # Two builds at once (make tools while pytest starts) would race on the same outputs.
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as handle:
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
    staging = tool.bin_dir.parent / "bin.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix=f"build-{tool.name}-") as work:
        tool.build(tool, Path(work), staging)
    # Rename last, so an interrupted build never looks finished.
    shutil.rmtree(tool.bin_dir, ignore_errors=True)
    staging.rename(tool.bin_dir)
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


def build_all() -> dict[str, float | None]:
    """Build or install everything; map each component to seconds taken (None: cached)."""
    timings: dict[str, float | None] = {}
    with _build_lock():
        for tool in TOOLS:
            print(f"{tool.name} v{tool.version}: ", end="", flush=True)
            if tool.is_built():
                print(f"cached in {tool.bin_dir}", flush=True)
                timings[tool.name] = None
                continue
            print("building", flush=True)
            seconds = build_go_tool(tool)
            timings[tool.name] = seconds
            print(
                f"{tool.name} v{tool.version}: built in {seconds:.0f}s -> {tool.bin_dir}",
                flush=True,
            )
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
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build_all()
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
