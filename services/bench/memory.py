"""Resident memory of server processes, sampled from `/proc/<pid>/status` (VmRSS) in a thread of its
own, so that a busy event loop in the benchmark does not thin out the samples."""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType
from typing import Self

SAMPLE_INTERVAL_S = 0.2


def rss_bytes(pid: int) -> int | None:
    """VmRSS of `pid`, or None once the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024  # reported in kB
    return None


class RssSampler:
    """Tracks the highest RSS seen per label while processes are watched."""

    def __init__(self, interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._watched: dict[str, int] = {}
        self._peaks: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, name="rss-sampler", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def watch(self, label: str, pid: int) -> None:
        with self._lock:
            self._watched[label] = pid
        self._sample_once()

    def unwatch(self, label: str) -> None:
        self._sample_once()
        with self._lock:
            self._watched.pop(label, None)

    def peaks(self) -> dict[str, int]:
        with self._lock:
            return dict(self._peaks)

    def _sample_once(self) -> None:
        with self._lock:
            watched = list(self._watched.items())
        for label, pid in watched:
            rss = rss_bytes(pid)
            if rss is not None:
                with self._lock:
                    self._peaks[label] = max(rss, self._peaks.get(label, 0))

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample_once()
