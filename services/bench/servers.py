"""Server processes under test: started as real processes, ready once their health URL answers, and
always stopped (SIGTERM, then SIGKILL) by the context that started them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def crm_command() -> str:
    """The `crm` script of the interpreter running the benchmark (the project's venv)."""
    return str(Path(sys.executable).with_name("crm"))


# Every request the benchmark sends carries this key, so the numbers include checking it.
BENCH_API_KEY = "crm-bench-admin-key"
BENCH_AUTHORIZATION = {"Authorization": f"Bearer {BENCH_API_KEY}"}
_AUTH_SETTINGS = {
    "CRM_BOOTSTRAP_API_KEY": BENCH_API_KEY,
    # One key sends the whole load: measure the service, not its rate limit.
    "CRM_RATE_LIMITS": '{"default": {"per_second": 1000000, "burst": 1000000}}',
}


def child_environment(overrides: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment without its CRM_ settings, which must not leak into the mode under test."""
    base = {name: value for name, value in os.environ.items() if not name.startswith("CRM_")}
    return {**base, **_AUTH_SETTINGS, **overrides}


def _open_log(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("ab")


class ServerProcess:
    def __init__(
        self, label: str, argv: Sequence[str], *, env: Mapping[str, str], log_path: Path, health_url: str
    ) -> None:
        self.label = label
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.health_url = health_url
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError(f"{self.label} is not running")
        return self._process.pid

    def tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        log = _open_log(self.log_path)
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, stdout=log, stderr=asyncio.subprocess.STDOUT
            )
        finally:
            log.close()  # the child holds its own copy of the descriptor
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                if self._process.returncode is not None:
                    raise RuntimeError(f"{self.label} exited early; log {self.log_path}:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.health_url)).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.label} not healthy within {timeout_s:.0f}s; log {self.log_path}")

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await process.wait()


async def start_all(servers: Sequence[ServerProcess]) -> None:
    """Start `servers` side by side. Every start finishes (or fails) before this returns or raises, so
    none is left polling in the background; the caller stops them all in any case."""
    outcomes = await asyncio.gather(*(server.start() for server in servers), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


async def stop_all(servers: Sequence[ServerProcess]) -> None:
    await asyncio.gather(*(server.stop() for server in servers))
