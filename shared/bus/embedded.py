"""Embedded bus: a durable log in one SQLite file, with the same semantics as Kafka.

Each topic is one partition, so order per key holds (it holds for all records). Group positions are
committed in the same file. A group has one active member at a time: a lease row names it, and a second
member (another process, say) stands by until the lease lapses. Several processes may share the file.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import aiosqlite

from shared.bus.base import (
    BusUnavailable,
    Consumer,
    EventBus,
    Message,
    MessageRefused,
    PartitionOffsets,
    Record,
    StartPositions,
    TopicConfig,
)

_PARTITION = 0
_LEASE_MS = 10_000
# An idle member renews its lease only when a third of it has passed, not on every fetch: each renewal
# is a synced write to the log file.
_RENEW_AFTER_MS = _LEASE_MS // 3
# As on Kafka (message.max.bytes): a record larger than this is refused, not retried.
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576

_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS records (
    topic TEXT NOT NULL,
    offset INTEGER NOT NULL,
    key TEXT,
    value BLOB NOT NULL,
    headers TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (topic, offset)
);
CREATE TABLE IF NOT EXISTS positions (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (grp, topic)
);
CREATE TABLE IF NOT EXISTS leases (
    grp TEXT PRIMARY KEY,
    member TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
"""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _encode_headers(headers: Mapping[str, bytes]) -> str:
    return json.dumps({name: base64.b64encode(value).decode() for name, value in headers.items()})


def _decode_headers(text: str) -> dict[str, bytes]:
    return {name: base64.b64decode(value) for name, value in json.loads(text).items()}


class EmbeddedBus(EventBus):
    def __init__(
        self,
        path: Path,
        *,
        poll_interval_s: float = 0.2,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.path = path
        self.poll_interval_s = poll_interval_s
        self.max_message_bytes = max_message_bytes
        self._connection: aiosqlite.Connection | None = None
        # One connection serves every coroutine; the lock keeps their transactions apart.
        self._lock = asyncio.Lock()
        # Set, and replaced, at each publish; a waiter waits on the one current when it began. An event,
        # not a condition: a wait cancelled mid-way (a consumer stopping during a poll) leaves no lock
        # behind to re-acquire, which with `wait_for` on Python 3.11 could stay held for good.
        self._published = asyncio.Event()

    async def start(self) -> None:
        if self._connection is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = await aiosqlite.connect(self.path, isolation_level=None)
        await connection.execute("PRAGMA journal_mode=WAL")
        await connection.execute("PRAGMA synchronous=FULL")
        await connection.execute("PRAGMA busy_timeout=30000")
        await connection.executescript(_SCHEMA)
        self._connection = connection

    async def stop(self) -> None:
        async with self._lock:  # not while another coroutine is inside a statement
            if self._connection is not None:
                await self._connection.close()
                self._connection = None

    @property
    def connection(self) -> aiosqlite.Connection:
        if self._connection is None:
            raise BusUnavailable("embedded bus is not started")
        return self._connection

    async def ping(self) -> bool:
        try:
            async with self._lock:
                await self.connection.execute("SELECT 1")
        except Exception:
            return False
        return True

    async def ensure_topics(self, topics: Sequence[TopicConfig | str]) -> None:
        # One partition per topic, kept for ever: retention and compaction settings do not apply here.
        names = [topic if isinstance(topic, str) else topic.name for topic in topics]
        async with self._lock:
            try:
                await self.connection.executemany(
                    "INSERT OR IGNORE INTO topics (name) VALUES (?)", [(name,) for name in names]
                )
            except Exception as exc:
                raise BusUnavailable(f"embedded bus unavailable: {exc}") from exc

    def _size(self, message: Message) -> int:
        return (
            len(message.value) + len(message.key) + sum(len(k) + len(v) for k, v in message.headers.items())
        )

    async def publish(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        refused = next(
            (i for i, message in enumerate(messages) if self._size(message) > self.max_message_bytes), None
        )
        if refused is not None:
            # Like Kafka: what comes before the refused record is written, and the caller is told which.
            await self.publish(messages[:refused])
            size = self._size(messages[refused])
            raise MessageRefused(refused, f"record of {size} bytes exceeds {self.max_message_bytes} bytes")
        async with self._lock:
            connection = self.connection
            try:
                await connection.execute("BEGIN IMMEDIATE")
                # Stamped once the write lock is held, and never below a topic's last stamp (a clock set
                # back): append times do not decrease along a topic, as consumers' watermarks assume.
                now = _now_ms()
                next_offsets: dict[str, int] = {}
                stamps: dict[str, int] = {}
                rows = []
                for message in messages:
                    if message.topic not in next_offsets:
                        # Like Kafka's auto-create: publishing to a new topic creates it.
                        await connection.execute(
                            "INSERT OR IGNORE INTO topics (name) VALUES (?)", (message.topic,)
                        )
                        async with connection.execute(
                            "SELECT offset, timestamp_ms FROM records WHERE topic = ?"
                            " ORDER BY offset DESC LIMIT 1",
                            (message.topic,),
                        ) as cursor:
                            row = await cursor.fetchone()
                        next_offsets[message.topic] = int(row[0]) + 1 if row else 0
                        stamps[message.topic] = max(now, int(row[1])) if row else now
                    offset = next_offsets[message.topic]
                    next_offsets[message.topic] = offset + 1
                    rows.append(
                        (
                            message.topic,
                            offset,
                            message.key,
                            message.value,
                            _encode_headers(message.headers),
                            stamps[message.topic],
                        )
                    )
                # One statement for the batch: each call is a hop to the connection's thread and back.
                await connection.executemany(
                    "INSERT INTO records (topic, offset, key, value, headers, timestamp_ms)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                await connection.execute("COMMIT")
            except BaseException as exc:
                # Also on cancellation: the shared connection must not stay inside a transaction.
                if connection.in_transaction:
                    await connection.execute("ROLLBACK")
                if isinstance(exc, Exception):
                    raise BusUnavailable(f"embedded bus write failed: {exc}") from exc
                raise
        published, self._published = self._published, asyncio.Event()
        published.set()

    async def wait_for_publish(self, timeout_s: float) -> None:
        """Return when something is published in this process, or after `timeout_s` (other processes)."""
        published = self._published
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await published.wait()

    def consumer(
        self, group: str, topics: Sequence[str], *, start_at: StartPositions | None = None
    ) -> Consumer:
        return EmbeddedConsumer(self, group, topics, start_at)

    async def end_offsets(self, topics: Sequence[str]) -> PartitionOffsets:
        ends: PartitionOffsets = {}
        async with self._lock:
            for topic in topics:
                async with self.connection.execute(
                    "SELECT COALESCE(MAX(offset) + 1, 0) FROM records WHERE topic = ?", (topic,)
                ) as cursor:
                    row = await cursor.fetchone()
                ends[(topic, _PARTITION)] = int(row[0]) if row else 0
        return ends


class EmbeddedConsumer(Consumer):
    def __init__(
        self, bus: EmbeddedBus, group: str, topics: Sequence[str], start_at: StartPositions | None = None
    ) -> None:
        self.bus = bus
        self.group = group
        self.topics = list(topics)
        self.start_at = start_at
        self._start: Mapping[tuple[str, int], int] = {}
        self.member = uuid.uuid4().hex
        # The member's read position runs ahead of the committed one until it commits.
        self._positions: dict[str, int] = {}
        self._held: set[str] = set()
        self._lease_renewed_ms = 0
        self._started = False

    async def start(self) -> None:
        await self.bus.ensure_topics(self.topics)
        # Read once: after a takeover the member starts from these again, and what the store applied
        # since is skipped by the store's own positions.
        self._start = await self.start_at() if self.start_at is not None else {}
        self._positions = {}
        self._held = set()
        self._lease_renewed_ms = 0
        self._started = True

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        async with self.bus._lock:
            await self.bus.connection.execute(
                "DELETE FROM leases WHERE grp = ? AND member = ?", (self.group, self.member)
            )

    async def _hold_lease(self) -> bool:
        now = _now_ms()
        if now - self._lease_renewed_ms < _RENEW_AFTER_MS:
            return True  # renewed recently: nobody can have taken over before it lapses
        connection = self.bus.connection
        await connection.execute(
            "INSERT INTO leases (grp, member, expires_ms) VALUES (?, ?, ?)"
            " ON CONFLICT (grp) DO UPDATE SET member = excluded.member, expires_ms = excluded.expires_ms"
            " WHERE leases.member = excluded.member OR leases.expires_ms < ?",
            (self.group, self.member, now + _LEASE_MS, now),
        )
        async with connection.execute("SELECT member FROM leases WHERE grp = ?", (self.group,)) as cursor:
            row = await cursor.fetchone()
        holds = row is not None and row[0] == self.member
        if holds:
            self._lease_renewed_ms = now
        else:
            # Someone else took over: forget our uncommitted read-ahead.
            self._positions = {}
            self._lease_renewed_ms = 0
        return holds

    async def _committed(self, topic: str) -> int:
        async with self.bus.connection.execute(
            "SELECT next_offset FROM positions WHERE grp = ? AND topic = ?", (self.group, topic)
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def _fetch(self, max_records: int) -> list[Record]:
        records: list[Record] = []
        async with self.bus._lock:
            if not await self._hold_lease():
                return []
            for topic in self.topics:
                if len(records) >= max_records:
                    break
                if topic in self._held:
                    continue
                if topic not in self._positions:
                    start = self._start.get((topic, 0))
                    self._positions[topic] = start if start is not None else await self._committed(topic)
                async with self.bus.connection.execute(
                    "SELECT offset, key, value, headers, timestamp_ms FROM records"
                    " WHERE topic = ? AND offset >= ? ORDER BY offset LIMIT ?",
                    (topic, self._positions[topic], max_records - len(records)),
                ) as cursor:
                    rows = await cursor.fetchall()  # one hop to the connection's thread, not one a row
                for offset, key, value, headers, timestamp_ms in rows:
                    records.append(
                        Record(
                            topic=topic,
                            partition=_PARTITION,
                            offset=offset,
                            key=key,
                            value=value,
                            headers=_decode_headers(headers),
                            timestamp_ms=timestamp_ms,
                            log_append_time=True,  # stamped when the batch is written, under the lock
                        )
                    )
                    self._positions[topic] = offset + 1
        return records

    async def poll(self, *, timeout_s: float = 1.0, max_records: int = 100) -> list[Record]:
        deadline = time.monotonic() + timeout_s
        while True:
            records = await self._fetch(max_records)
            remaining = deadline - time.monotonic()
            if records or remaining <= 0:
                return records
            await self.bus.wait_for_publish(min(remaining, self.bus.poll_interval_s))

    async def commit(self, records: Sequence[Record]) -> None:
        highest: dict[str, int] = {}
        for record in records:
            highest[record.topic] = max(highest.get(record.topic, -1), record.offset)
        if not highest:
            return
        async with self.bus._lock:
            # Only the lease holder moves the group's position: a member whose lease lapsed (a long
            # stall) must not set it back after a newer member committed further.
            if not await self._hold_lease():
                raise BusUnavailable(f"group {self.group}: lease lost, position not committed")
            await self.bus.connection.executemany(
                "INSERT INTO positions (grp, topic, next_offset) VALUES (?, ?, ?)"
                " ON CONFLICT (grp, topic) DO UPDATE SET next_offset = excluded.next_offset",
                [(self.group, topic, offset + 1) for topic, offset in highest.items()],
            )

    async def seek_to_beginning(self) -> None:
        self._positions = dict.fromkeys(self.topics, 0)
        self._held = set()

    async def hold(self, record: Record) -> None:
        self._held.add(record.topic)
        self._positions[record.topic] = record.offset
