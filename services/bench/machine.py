"""Facts about where and on what the benchmark ran, for the report."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]


def _git(*args: str) -> str | None:
    if shutil.which("git") is None:
        return None
    try:
        completed = subprocess.run(
            ["git", *args], cwd=REPOSITORY, capture_output=True, text=True, timeout=10, check=True
        )
    except (subprocess.SubprocessError, OSError):
        return None
    return completed.stdout.strip()


def git_commit() -> str | None:
    """Short commit hash, marked when the work tree differs from it."""
    commit = _git("rev-parse", "--short", "HEAD")
    if not commit:
        return None
    return f"{commit} (with uncommitted changes)" if _git("status", "--porcelain") else commit


def _first(path: str, prefix: str) -> str | None:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(prefix)), None)


def machine() -> dict[str, str | int | float]:
    mem_kb = _first("/proc/meminfo", "MemTotal")
    return {
        "cores": os.cpu_count() or 0,
        "cpu": _first("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "ram_gib": round(int(mem_kb.split()[0]) / 1024 / 1024, 1) if mem_kb else 0.0,
        "os": platform.platform(),
        "python": platform.python_version(),
    }
