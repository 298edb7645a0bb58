"""Child processes that never outlive their owner and explain themselves when they fail."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

_PR_SET_PDEATHSIG = 1
# Loaded here, in the parent: the child between fork and exec should only make the call.
_LIBC = ctypes.CDLL("libc.so.6", use_errno=True)


class ComponentError(RuntimeError):
    """A component did not start or become healthy; the message quotes its log tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # Runs in the child before exec: the kernel kills it when its parent dies, even by
    # SIGKILL, so a crashed test run or supervisor leaves no orphan etcd or apiserver.
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def is_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


class Service:
    """Something started and stopped around a `with` block: stopped however the block ends."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ManagedProcess:
    """One long-running binary with its own log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                # Own process group: Ctrl-C reaches the owner, which stops children in order.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def exit_code(self) -> int | None:
        return self._process.poll() if self._process else None

    def failure(self, what: str) -> ComponentError:
        return ComponentError(
            f"{self.name} {what}. Last lines of {self.log_path}:\n{log_tail(self.log_path)}"
        )

    def wait_until(self, check: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll `check` until true; fail fast if the process exits. Returns seconds waited."""
        started = time.monotonic()
        while True:
            code = self.exit_code()
            if code is not None:
                raise self.failure(f"exited with code {code} before it was {what}")
            with contextlib.suppress(Exception):
                if check():
                    return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise self.failure(f"was not {what} after {timeout:.0f}s")
            time.sleep(0.2)

    def stop(self, timeout: float = 10.0) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def http_ok(url: str, context: ssl.SSLContext | None = None, timeout: float = 2.0) -> bool:
    """True when GET url answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False
