"""Start the real Kafka broker and PostgreSQL server through the project's own `deploy/` scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
DEPLOY = REPOSITORY / "deploy"


def _run_script(script: str, command: str, env: dict[str, str], *, output_key: str | None = None) -> str:
    completed = subprocess.run(
        ["bash", str(DEPLOY / script), command],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=sys.stderr,  # progress (e.g. the first jar download) shows in the test output
        text=True,
        check=False,
        timeout=900,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"deploy/{script} {command} failed with exit code {completed.returncode}")
    if output_key is None:
        return ""
    for line in completed.stdout.splitlines():
        if line.startswith(f"{output_key}="):
            return line.split("=", 1)[1].strip()
    raise RuntimeError(f"deploy/{script} {command} printed no {output_key}= line")


@dataclass
class KafkaBroker:
    """A single-node KRaft broker on loopback; stopping keeps its data so it can come back."""

    port: int
    data_dir: Path
    bootstrap: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env = {
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.port + 1),
            "KAFKA_DATA_DIR": str(self.data_dir),
        }

    def start(self) -> str:
        self.bootstrap = _run_script("kafka.sh", "start", self.env, output_key="KAFKA_BOOTSTRAP")
        return self.bootstrap

    def stop(self) -> None:
        _run_script("kafka.sh", "stop", self.env)

    def reset(self) -> None:
        _run_script("kafka.sh", "reset", self.env)


@dataclass
class PostgresServer:
    port: int
    data_dir: Path
    url: str = ""

    @property
    def env(self) -> dict[str, str]:
        return {"PG_PORT": str(self.port), "PG_DATA_DIR": str(self.data_dir)}

    def start(self) -> str:
        self.url = _run_script("postgres.sh", "start", self.env, output_key="PG_URL")
        return self.url

    def stop(self) -> None:
        _run_script("postgres.sh", "stop", self.env)
