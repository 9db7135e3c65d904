"""Run the product as real processes (`crm dev`, `crm serve …`) and wait for them to be ready."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class CrmProcess:
    """A `crm …` subprocess with its output in a log file; stops with SIGTERM, then SIGKILL."""

    def __init__(
        self, args: list[str], *, env: dict[str, str], log_path: Path, health_url: str | None = None
    ) -> None:
        self.args = args
        self.env = env
        self.log_path = log_path
        self.health_url = health_url
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout_s: float = 60) -> Self:
        crm = Path(sys.executable).with_name("crm")
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [str(crm), *self.args], env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"crm {' '.join(self.args)} exited early:\n{self.tail()}")
            if self.health_url is None:
                # A worker has no HTTP endpoint: it is ready once it logs that its workers run.
                if "workers running" in self.tail():
                    return self
                time.sleep(0.2)
                continue
            try:
                if httpx.get(self.health_url, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"crm {' '.join(self.args)} not healthy in {timeout_s}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a lost node would: no shutdown code runs."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def wait_until(
    condition: Callable[[], object], *, timeout_s: float, interval_s: float = 0.2, message: str = ""
) -> None:
    """Poll `condition` until it returns a truthy value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval_s)
    raise TimeoutError(message or f"condition not met within {timeout_s}s")
