"""Clicks: what the redirect records, the drain that takes the journal into the database, and the list.

The journal's lines are applied in transactions of up to `_CHUNK_BYTES`: the clicks (skipping any
already there), one `crm.click.recorded` outbox event per click inserted, and the file's new applied
offset commit together. So a crash anywhere leaves either all three or none, and a file applied again
from an older offset (its row lost with a deleted file) doubles nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.clicks.cache import LinkTarget
from services.referrals.clicks.journal import is_journal_name, lock
from services.referrals.clicks.models import Click
from services.referrals.clicks.path import ClickPath, click_path
from services.referrals.clicks.repository import ClickRepository
from services.referrals.db import outbox
from shared.aio import sleep_unless_stopped, unless_stopped
from shared.db import Database, read_scope, session_scope, utc_now
from shared.events.referrals import ClickRecorded
from shared.pagination import PageRequest, Slice
from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)

# One transaction applies at most this much of a journal (about 200 clicks): building a batch's rows
# and events holds the event loop for ~0.1 ms a click, and the redirects share it, so a large batch
# would show as a spike in their latency.
_CHUNK_BYTES = 64 * 1024
# After a click wakes it, the drain waits this long for more: under load one transaction takes many
# clicks instead of one each, and a lone click still reaches the database a moment after its redirect.
_LINGER_S = 0.1
# Clicks parsed, inserted and announced per statement within a transaction.
_SLICE = 32
# While redirects are being served, the drain rests this many times as long as each transaction took.
_YIELD_FACTOR = 2.0
# How often the drain looks for journals of processes that are gone, besides at start-up.
_ORPHAN_SCAN_S = 30.0
# With no click to wake it, the drain still runs this often (a wake-up lost in a race costs no more).
_IDLE_S = 1.0
_RETRY_S = 1.0
_JOURNAL_VERSION = 1


@dataclass(frozen=True)
class ClickLine:
    """One click as the redirect journals it."""

    id: str
    visitor_id: str
    link_id: uuid.UUID
    code: str
    program_id: uuid.UUID
    affiliate_id: uuid.UUID
    clicked_at: datetime
    ip_hash: str | None
    user_agent: str | None
    referrer: str | None
    landing_url: str
    is_bot: bool

    def encode(self) -> bytes:
        record = {
            "v": _JOURNAL_VERSION,
            "id": self.id,
            "visitor_id": self.visitor_id,
            "link_id": str(self.link_id),
            "code": self.code,
            "program_id": str(self.program_id),
            "affiliate_id": str(self.affiliate_id),
            "clicked_at": self.clicked_at.isoformat(),
            "ip_hash": self.ip_hash,
            "user_agent": self.user_agent,
            "referrer": self.referrer,
            "landing_url": self.landing_url,
            "is_bot": self.is_bot,
        }
        return json.dumps(record, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def _row(line: bytes) -> dict[str, Any]:
    record = json.loads(line)
    return {
        "id": record["id"],
        "visitor_id": record["visitor_id"],
        "link_id": uuid.UUID(record["link_id"]),
        "code": record["code"],
        "program_id": uuid.UUID(record["program_id"]),
        "affiliate_id": uuid.UUID(record["affiliate_id"]),
        "clicked_at": datetime.fromisoformat(record["clicked_at"]),
        "ip_hash": record["ip_hash"],
        "user_agent": record["user_agent"],
        "referrer": record["referrer"],
        "landing_url": record["landing_url"],
        "is_bot": record["is_bot"],
        "recorded_at": utc_now(),
    }


def _event(row: dict[str, Any]) -> ClickRecorded:
    return ClickRecorded(
        click_id=row["id"],
        link_id=row["link_id"],
        code=row["code"],
        program_id=row["program_id"],
        affiliate_id=row["affiliate_id"],
        is_bot=row["is_bot"],
        clicked_at=row["clicked_at"],
    )


def _read(path: Path, offset: int) -> bytes:
    with path.open("rb") as file:
        file.seek(offset)
        return file.read(_CHUNK_BYTES)


async def _apply_chunk(database: Database, path: Path) -> tuple[int, bool]:
    """Apply the next complete lines of the journal at `path`: (clicks inserted, whether more may
    follow). An unfinished last line is left for the next call."""
    name = path.name
    async with session_scope(database) as session:
        repository = ClickRepository(session)
        offset = await repository.applied_offset(name)
        chunk = _read(path, offset)
        end = chunk.rfind(b"\n") + 1
        if end == 0:
            return 0, False
        lines = chunk[:end].splitlines()
        inserted = 0
        # In slices, each awaiting the database: the loop is never held for more than a slice's worth
        # of parsing and event building (a few ms), so the redirects sharing it see no spike.
        for start in range(0, len(lines), _SLICE):
            rows: list[dict[str, Any]] = []
            for line in lines[start : start + _SLICE]:
                try:
                    rows.append(_row(line))
                except (ValueError, KeyError, TypeError) as exc:
                    # Only an unfinished write could leave one, and a file with one is not written again.
                    log.warning("click journal %s: a line that is not a click is skipped (%r)", name, exc)
            new = await repository.insert(rows)
            await outbox.add_many(session, [_event(row) for row in rows if row["id"] in new])
            inserted += len(new)
        await repository.set_applied_offset(name, offset + end)
    return inserted, len(chunk) == _CHUNK_BYTES


async def _apply_file(path: ClickPath, file: Path) -> int:
    """Apply the file up to its last complete line. The redirect comes first: while redirects keep
    arriving, the drain rests `_YIELD_FACTOR` times as long as each transaction took, so it takes at
    most a third of the process's time and a burst of clicks waits in the journal, not in the redirect's
    queue. With no redirects it goes at full speed."""
    loop = asyncio.get_running_loop()
    applied, more = 0, True
    while more:
        started, seen = loop.time(), path.journaled
        count, more = await _apply_chunk(path.database, file)
        applied += count
        if path.journaled != seen:
            await asyncio.sleep((loop.time() - started) * _YIELD_FACTOR)
        elif more:
            await asyncio.sleep(0)
    return applied


async def _finish(database: Database, path: Path) -> None:
    """A file that no process writes any more, applied: delete it, then its row (in this order, so that
    no crash can make a deleted file's clicks be applied again)."""
    async with session_scope(database) as session:
        applied = await ClickRepository(session).applied_offset(path.name)
    rest = _delete(path) - applied
    if rest:
        log.warning("click journal %s: an unfinished last line of %d bytes is dropped", path.name, rest)
    async with session_scope(database) as session:
        await ClickRepository(session).forget_journal(path.name)


async def _drain_orphans(path: ClickPath) -> int:
    """Apply and delete the journals of processes that are gone (their lock can be taken)."""
    folder = path.journal.folder
    if not folder.is_dir():
        return 0
    own = set(path.journal.own())
    applied = 0
    for name in sorted(os.listdir(folder)):
        if name in own or not is_journal_name(name):
            continue
        file = folder / name
        try:
            fd = os.open(file, os.O_RDONLY)
        except FileNotFoundError:
            continue  # another replica finished it
        try:
            # Locked by a live process, or already unlinked by the one that drained it before us.
            if not lock(fd) or os.fstat(fd).st_ino != _inode(file):
                continue
            log.info("click journal %s: left by a process that is gone; applying it", name)
            applied += await _apply_file(path, file)
            await _finish(path.database, file)
        finally:
            os.close(fd)
    return applied


def _delete(file: Path) -> int:
    """Delete a journal (a local file: no need to leave the loop); its size before."""
    size = file.stat().st_size
    file.unlink(missing_ok=True)
    return size


def _inode(file: Path) -> int | None:
    try:
        return file.stat().st_ino
    except FileNotFoundError:
        return None


async def drain(path: ClickPath, *, orphans: bool = False) -> int:
    """Apply what this process journaled since the last drain (and, with `orphans`, what processes that
    are gone left); returns the clicks inserted."""
    async with path.drain_lock:
        journal = path.journal
        journal.rotate_if_large()
        applied = 0
        for name in journal.own():
            file = journal.folder / name
            applied += await _apply_file(path, file)
            if journal.retired(name):
                await _finish(path.database, file)
                journal.release(name)
        if orphans:
            applied += await _drain_orphans(path)
        return applied


async def drain_clicks(runtime: ServiceRuntime, stop: asyncio.Event) -> None:
    """The drain's loop, started with the web app (`endpoints._draining`): at start-up (journals a
    killed process left included), after each click, and at shutdown. A database outage only delays
    it: the journal keeps the clicks."""
    path = click_path(runtime)
    next_scan = 0.0
    while not stop.is_set():
        scan = time.monotonic() >= next_scan
        # Cleared before the drain, so a click journaled while it runs wakes the next one at once.
        path.wake.clear()
        try:
            await drain(path, orphans=scan)
        except Exception as exc:
            log.warning("draining the click journal failed (%r); retrying", exc)
            await unless_stopped(stop, asyncio.sleep(_RETRY_S), default=None)
            continue
        if scan:
            next_scan = time.monotonic() + _ORPHAN_SCAN_S
        with contextlib.suppress(TimeoutError):
            await unless_stopped(stop, asyncio.wait_for(path.wake.wait(), _IDLE_S), default=True)
        await sleep_unless_stopped(stop, _LINGER_S)
    # Shutting down: apply the rest and delete the files, so a clean stop leaves no journal behind.
    path.journal.retire()
    try:
        await drain(path)
    except Exception as exc:
        log.warning("click journal left to the next start (%r)", exc)
    finally:
        path.journal.close()


async def list_clicks(
    session: AsyncSession,
    page: PageRequest,
    *,
    link_id: uuid.UUID | None = None,
    affiliate_id: uuid.UUID | None = None,
    program_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Slice[Click]:
    return await ClickRepository(session).page(
        page, link_id=link_id, affiliate_id=affiliate_id, program_id=program_id, since=since, until=until
    )


async def find_target(path: ClickPath, code: str) -> LinkTarget | None:
    """What the redirect needs of the link with `code`, read from the database (a cache miss)."""
    async with read_scope(path.database) as session:
        found = await ClickRepository(session).link_by_code(code)
        # Inside the session: its end expires what it loaded.
        return None if found is None else LinkTarget.of(*found)
