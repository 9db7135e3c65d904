"""The click journal: the durable path from the redirect to the database that never makes a click wait.

The redirect appends each click as one JSON line to this process's journal file with a single
`os.write` before it answers: once the call returns, the line is the kernel's, and a killed process
(SIGKILL, OOM, a crash) loses nothing. There is no fsync per click, so a power loss can lose what the
OS had not yet written out (the last moments of clicks) unless `CRM_REFERRALS_CLICK_JOURNAL_FSYNC` is
set, which syncs every line at the cost of a disk flush per click.

A background task (`clicks.service.drain`) inserts the lines into `click`, with one
`crm.click.recorded` outbox event each and the file's applied offset, in one transaction.

Each process writes its own files and holds an exclusive `flock` on each until it has applied and
deleted it. The lock dies with the process, so a file whose lock can be taken belongs to a process
that is gone: any replica sharing the data folder drains it (at start-up, and every half minute).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

FOLDER: Final = "referrals-click-journal"
_NAME = re.compile(r"^clicks-[A-Za-z0-9_.-]{1,160}\.jsonl$")
# A file this large is closed and a new one begun, so that applied files can be deleted.
ROTATE_BYTES: Final = 4 * 1024 * 1024


def is_journal_name(name: str) -> bool:
    return _NAME.match(name) is not None


def _new_name() -> str:
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:60] or "host"
    return f"clicks-{host}-{os.getpid()}-{time.time_ns()}-{secrets.token_hex(4)}.jsonl"


def lock(fd: int) -> bool:
    """Take the exclusive lock on an open journal without waiting; False when a live process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@dataclass
class ClickJournal:
    folder: Path
    fsync: bool = False
    rotate_bytes: int = ROTATE_BYTES
    _fd: int | None = None
    _name: str | None = None
    _size: int = 0
    # Files this process wrote and no longer writes: locked until applied and deleted.
    _retired: dict[str, int] = field(default_factory=dict)

    @property
    def current(self) -> str | None:
        return self._name

    def own(self) -> list[str]:
        """This process's files, retired first (they hold the older clicks), then the one being written."""
        return [*self._retired, *([self._name] if self._name else [])]

    def retired(self, name: str) -> bool:
        return name in self._retired

    def append(self, line: bytes) -> None:
        """Write one line (ending in a newline) with a single `os.write`."""
        if self._fd is None:
            self._open()
        assert self._fd is not None
        try:
            written = os.write(self._fd, line)
            if self.fsync:
                os.fdatasync(self._fd)
        except OSError:
            # A full disk, say: whatever part of the line went in stays at the end of a retired file,
            # where the drain drops an unfinished line, and the next click starts a new file.
            self.retire()
            raise
        self._size += written
        if written != len(line):
            self.retire()
            raise OSError(f"short write to the click journal: {written} of {len(line)} bytes")

    def _open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            name = _new_name()
            fd = os.open(self.folder / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
            # Another process's drain may open a brand-new file and take its lock first (it then
            # deletes the empty file): begin another.
            if lock(fd):
                self._fd, self._name, self._size = fd, name, 0
                return
            os.close(fd)

    def rotate_if_large(self) -> None:
        if self._fd is not None and self._size >= self.rotate_bytes:
            self.retire()

    def retire(self) -> None:
        """Stop writing the current file; it stays locked until the drain has applied and deleted it."""
        if self._fd is not None and self._name is not None:
            self._retired[self._name] = self._fd
        self._fd, self._name, self._size = None, None, 0

    def release(self, name: str) -> None:
        """A retired file was applied and deleted: let go of it."""
        fd = self._retired.pop(name, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        """Let go of every file (locks included), applied or not: a later start drains what is left."""
        self.retire()
        for name in list(self._retired):
            self.release(name)
