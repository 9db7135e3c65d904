"""Transactional outbox and its relay.

A service adds an event row in the same transaction as the state change it announces
(`Outbox.add(session, event)`), so a commit either has both or neither. The relay publishes rows in
id order and deletes them once the bus has acknowledged them.

Two relays can run against one PostgreSQL database: rows are hashed by key into slots, and a relay
locks the slots it works on with `FOR UPDATE SKIP LOCKED` for the span of one batch. One key is thus
published by one relay at a time, in order; a relay that dies releases its slots with its transaction,
and its unacknowledged rows are sent again (consumers drop the duplicates by event id). SQLite has no
row locks, so there relays lease slots instead (see `_publish_batch_sqlite`).

Order per key follows outbox ids, which are handed out at insert time. Code that emits several events
for one aggregate in concurrent transactions must first lock the aggregate's row (`SELECT … FOR UPDATE`),
so that the transaction that inserts first also commits first.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    Row,
    Select,
    SmallInteger,
    String,
    Table,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from shared.aio import sleep_unless_stopped
from shared.bus.base import BusUnavailable, EventBus, Message
from shared.db import Database, UTCDateTime, session_scope, utc_now
from shared.events import topics as topic_names
from shared.events.base import Event
from shared.events.envelope import to_message
from shared.observability import EVENTS_PUBLISHED

log = logging.getLogger(__name__)

SLOT_COUNT = 16

# id, topic, partition_key, headers, payload
OutboxRow = Row[Any, Any, Any, Any, Any]


def slot_for(key: str) -> int:
    return zlib.crc32(key.encode()) % SLOT_COUNT


@dataclass(frozen=True)
class OutboxTables:
    events: Table
    slots: Table


def define_outbox(metadata: MetaData) -> OutboxTables:
    """Attach the outbox tables to a service's MetaData, so its own migrations own them."""
    events = Table(
        "outbox_event",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event_type", String(200), nullable=False),
        Column("topic", String(200), nullable=False),
        Column("partition_key", String(200), nullable=False),
        Column("slot", SmallInteger, nullable=False, index=True),
        Column("headers", JSON, nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False, server_default=func.now()),
    )
    slots = Table(
        "outbox_slot",
        metadata,
        Column("slot", SmallInteger, primary_key=True, autoincrement=False),
        # Used on SQLite only, which has no row locks: which relay holds the slot, and until when.
        Column("owner", String(32), nullable=True),
        Column("lease_until", UTCDateTime(), nullable=True),
    )
    return OutboxTables(events=events, slots=slots)


def slot_rows() -> list[dict[str, int]]:
    """Rows the initial migration inserts into `outbox_slot`."""
    return [{"slot": slot} for slot in range(SLOT_COUNT)]


class Outbox:
    """Writes events into a service's outbox; used by service code, inside its transaction."""

    def __init__(self, tables: OutboxTables, *, source: str) -> None:
        self.tables = tables
        self.source = source

    async def add(self, session: AsyncSession, event: Event) -> str:
        """Stage `event` in the session's transaction; returns the CloudEvents id."""
        message = to_message(event, source=self.source)
        event_id = message.headers["ce_id"].decode()
        await session.execute(
            insert(self.tables.events).values(
                event_id=event_id,
                event_type=event.event_type(),
                topic=message.topic,
                partition_key=message.key,
                slot=slot_for(message.key),
                headers={name: value.decode() for name, value in message.headers.items()},
                payload=message.value,
            )
        )
        return event_id


class OutboxRelay:
    def __init__(
        self,
        database: Database,
        tables: OutboxTables,
        bus: EventBus,
        *,
        batch_size: int = 200,
        slots_per_batch: int = 8,
        idle_interval_s: float = 0.1,
        max_backoff_s: float = 5.0,
        lease_s: float = 60.0,
        service: str = "unnamed",
    ) -> None:
        self.database = database
        self.tables = tables
        self.bus = bus
        self.batch_size = batch_size
        self.slots_per_batch = slots_per_batch
        self.idle_interval_s = idle_interval_s
        self.max_backoff_s = max_backoff_s
        self.lease_s = lease_s
        self.service = service
        self.relay_id = uuid.uuid4().hex
        self._rotation = 0
        self._topics_ready = False

    async def publish_batch(self) -> int:
        """Publish one batch; returns how many events went out. Raises `BusUnavailable` on bus errors."""
        published = await self._publish_batch()
        EVENTS_PUBLISHED.labels(self.service).inc(published)
        return published

    async def _publish_batch(self) -> int:
        if not self._topics_ready:
            await self.bus.ensure_topics([*topic_names.ALL, *map(topic_names.dead_letter, topic_names.ALL)])
            self._topics_ready = True
        if self.database.is_sqlite:
            return await self._publish_batch_sqlite()
        async with session_scope(self.database) as session:
            # The slot locks last until this transaction ends, i.e. across the publish: that is what
            # keeps a second relay off these keys until their events are out and deleted.
            rows = await self._claim(session)
            await self.bus.publish([self._message(row) for row in rows])
            await self._delete(session, rows)
        return len(rows)

    async def _publish_batch_sqlite(self) -> int:
        # SQLite has no row locks, and holding its database-wide write lock across a slow publish would
        # stall every API write. So a relay leases its slots in one short transaction, publishes without
        # holding the lock, then deletes what it sent and frees the slots in a second one. A relay that
        # dies mid-way loses its lease after `lease_s`, and another relay sends its rows again.
        async with session_scope(self.database) as session:
            leased = await self._lease_slots(session)
            rows = await self._rows(session, leased)
        published: Sequence[OutboxRow] = []
        try:
            if rows:
                await self.bus.publish([self._message(row) for row in rows])
                published = rows
        finally:
            if leased:
                async with session_scope(self.database) as session:
                    await self._delete(session, published)
                    await session.execute(
                        update(self.tables.slots)
                        .where(
                            self.tables.slots.c.slot.in_(leased), self.tables.slots.c.owner == self.relay_id
                        )
                        .values(owner=None, lease_until=None)
                    )
        return len(published)

    def _slots_with_pending_events(self) -> Select[int]:
        events, slots = self.tables.events, self.tables.slots
        self._rotation = (self._rotation + 1) % SLOT_COUNT
        # Rotating the start keeps busy low-numbered slots from starving the others.
        return (
            select(slots.c.slot)
            .where(slots.c.slot.in_(select(events.c.slot).distinct().scalar_subquery()))
            .order_by((slots.c.slot + self._rotation) % SLOT_COUNT)
            .limit(self.slots_per_batch)
        )

    async def _lease_slots(self, session: AsyncSession) -> list[int]:
        slots = self.tables.slots
        now = utc_now()
        free = self._slots_with_pending_events().where(
            or_(slots.c.lease_until.is_(None), slots.c.lease_until < now)
        )
        chosen = list((await session.scalars(free)).all())
        if chosen:
            await session.execute(
                update(slots)
                .where(slots.c.slot.in_(chosen))
                .values(owner=self.relay_id, lease_until=now + timedelta(seconds=self.lease_s))
            )
        return chosen

    async def _claim(self, session: AsyncSession) -> Sequence[OutboxRow]:
        locked = (
            await session.scalars(self._slots_with_pending_events().with_for_update(skip_locked=True))
        ).all()
        return await self._rows(session, list(locked))

    async def _rows(self, session: AsyncSession, slots: list[int]) -> Sequence[OutboxRow]:
        if not slots:
            return []
        events = self.tables.events
        return (
            await session.execute(
                select(
                    events.c.id, events.c.topic, events.c.partition_key, events.c.headers, events.c.payload
                )
                .where(events.c.slot.in_(slots))
                .order_by(events.c.id)
                .limit(self.batch_size)
            )
        ).all()

    @staticmethod
    def _message(row: OutboxRow) -> Message:
        return Message(
            topic=row.topic,
            key=row.partition_key,
            value=row.payload,
            headers={name: value.encode() for name, value in row.headers.items()},
        )

    async def _delete(self, session: AsyncSession, rows: Sequence[OutboxRow]) -> None:
        if rows:
            await session.execute(
                delete(self.tables.events).where(self.tables.events.c.id.in_([r.id for r in rows]))
            )

    async def run(self, stop: asyncio.Event) -> None:
        backoff = self.idle_interval_s
        while not stop.is_set():
            try:
                published = await self.publish_batch()
                backoff = self.idle_interval_s
            except (BusUnavailable, OSError, ConnectionError) as exc:
                log.warning("outbox relay waiting for the bus: %s", exc)
                published, backoff = 0, min(backoff * 2, self.max_backoff_s)
            except Exception:
                # A database outage or similar: keep the rows and try again later.
                log.exception("outbox relay batch failed")
                published, backoff = 0, min(backoff * 2, self.max_backoff_s)
            if published:
                continue
            await sleep_unless_stopped(stop, backoff)
