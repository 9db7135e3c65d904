"""Transactional outbox and its relay.

A service adds an event row in the same transaction as the state change it announces
(`Outbox.add(session, event)`), so a commit either has both or neither. The relay publishes rows in
id order and deletes them once the bus has acknowledged them.

Two relays can run against one PostgreSQL database: rows are hashed by key into slots, and a relay
locks the slots it works on with `FOR UPDATE SKIP LOCKED` for the span of one batch. One key is thus
published by one relay at a time, in order; a relay that dies releases its slots with its transaction,
and its unacknowledged rows are sent again (consumers drop the duplicates by event id).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from shared.aio import sleep_unless_stopped
from shared.bus.base import BusUnavailable, EventBus, Message
from shared.db import Database, UTCDateTime, session_scope
from shared.events import topics as topic_names
from shared.events.base import Event
from shared.events.envelope import to_message

log = logging.getLogger(__name__)

SLOT_COUNT = 16


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
        "outbox_slot", metadata, Column("slot", SmallInteger, primary_key=True, autoincrement=False)
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
    ) -> None:
        self.database = database
        self.tables = tables
        self.bus = bus
        self.batch_size = batch_size
        self.slots_per_batch = slots_per_batch
        self.idle_interval_s = idle_interval_s
        self.max_backoff_s = max_backoff_s
        self._rotation = 0
        self._topics_ready = False

    async def publish_batch(self) -> int:
        """Publish one batch; returns how many events went out. Raises `BusUnavailable` on bus errors."""
        if not self._topics_ready:
            await self.bus.ensure_topics([*topic_names.ALL, *map(topic_names.dead_letter, topic_names.ALL)])
            self._topics_ready = True
        events, slots = self.tables.events, self.tables.slots
        self._rotation = (self._rotation + 1) % SLOT_COUNT
        async with session_scope(self.database) as session:
            pending_slots = select(events.c.slot).distinct().scalar_subquery()
            locked = (
                await session.scalars(
                    select(slots.c.slot)
                    .where(slots.c.slot.in_(pending_slots))
                    .order_by((slots.c.slot + self._rotation) % SLOT_COUNT)
                    .limit(self.slots_per_batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not locked:
                return 0
            rows = (
                await session.execute(
                    select(
                        events.c.id,
                        events.c.topic,
                        events.c.partition_key,
                        events.c.headers,
                        events.c.payload,
                    )
                    .where(events.c.slot.in_(locked))
                    .order_by(events.c.id)
                    .limit(self.batch_size)
                )
            ).all()
            messages = [
                Message(
                    topic=row.topic,
                    key=row.partition_key,
                    value=row.payload,
                    headers={name: value.encode() for name, value in row.headers.items()},
                )
                for row in rows
            ]
            await self.bus.publish(messages)
            await session.execute(delete(events).where(events.c.id.in_([row.id for row in rows])))
            return len(rows)

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

    async def pending(self) -> int:
        async with self.database.sessionmaker() as session:
            return int(await session.scalar(select(func.count()).select_from(self.tables.events)) or 0)
