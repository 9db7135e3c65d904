"""Transactional outbox and its relay.

A service adds an event row in the same transaction as the state change it announces
(`Outbox.add(session, event)`), so a commit either has both or neither. The relay publishes rows in
id order and deletes them once the bus has acknowledged them.

**Order per key is the outbox's own guarantee.** Rows are published in id order, and ids are handed out
at insert time, so two transactions emitting for one key must commit in the order they inserted. On
PostgreSQL `Outbox.add` therefore takes a transaction-scoped advisory lock on the key in the same
statement as the insert: a second transaction emitting for that key waits until the first one ends.
No writer has to remember to lock its aggregate. (Code that emits first and then updates a row another
emitter holds can deadlock; PostgreSQL then aborts one of them, which is retried, never reordered.)
On SQLite every writing transaction holds the database's write lock from its first statement, which
gives the same order.

Two relays can run against one PostgreSQL database: rows are hashed by key into slots, and a relay
locks the slots it works on with `FOR UPDATE SKIP LOCKED` for the span of one batch. One key is thus
published by one relay at a time, in order; a relay that dies releases its slots with its transaction,
and its unacknowledged rows are sent again (consumers drop the duplicates by event id). SQLite has no
row locks, so there relays lease slots instead (see `_publish_batch_sqlite`).

A row the bus refuses for good (larger than the broker takes, say) is moved to `outbox_dead` with the
error, counted in `crm_outbox_refused_total`, and listed and re-driven by `crm dlq`; the rows behind it
keep flowing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
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
    Text,
    delete,
    event,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from shared.aio import sleep_unless_stopped
from shared.bus.base import BusUnavailable, EventBus, Message, MessageRefused
from shared.db import Database, UTCDateTime, read_scope, session_scope, utc_now
from shared.events import topics as topic_definitions
from shared.events.base import Event
from shared.events.envelope import to_message
from shared.observability import EVENTS_PUBLISHED, OUTBOX_REFUSED

log = logging.getLogger(__name__)

SLOT_COUNT = 16
# First half of the two-part PostgreSQL advisory lock key: the outbox's own namespace.
_KEY_LOCK_CLASS = zlib.crc32(b"crm.outbox.key") - 2**31

# id, event_id, topic, partition_key, headers, payload
OutboxRow = Row[Any, Any, Any, Any, Any, Any]


def slot_for(key: str) -> int:
    return zlib.crc32(key.encode()) % SLOT_COUNT


def _key_lock_id(key: str) -> int:
    # int4 range, as pg_advisory_xact_lock(int4, int4) wants.
    return zlib.crc32(key.encode()) - 2**31


class OutboxSignal:
    """Wakes the relays of this process when a transaction that staged events commits.

    Relays in other processes still poll; in-process ones stop waiting at once, which is what keeps
    commit-to-publish latency in milliseconds rather than a polling interval.
    """

    def __init__(self) -> None:
        self._waiters: set[asyncio.Event] = set()

    def register(self) -> asyncio.Event:
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        return waiter

    def unregister(self, waiter: asyncio.Event) -> None:
        self._waiters.discard(waiter)

    def notify(self) -> None:
        for waiter in self._waiters:
            waiter.set()


@dataclass(frozen=True)
class OutboxTables:
    events: Table
    slots: Table
    dead: Table
    signal: OutboxSignal = field(default_factory=OutboxSignal, compare=False)


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
    dead = Table(
        "outbox_dead",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event_type", String(200), nullable=False),
        Column("topic", String(200), nullable=False),
        Column("partition_key", String(200), nullable=False),
        Column("headers", JSON, nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("error", Text, nullable=False),
        Column("refused_at", UTCDateTime(), nullable=False),
    )
    return OutboxTables(events=events, slots=slots, dead=dead)


def slot_rows() -> list[dict[str, int]]:
    """Rows the initial migration inserts into `outbox_slot`."""
    return [{"slot": slot} for slot in range(SLOT_COUNT)]


_SIGNAL_KEY = "crm_outbox_signals"


@event.listens_for(Session, "after_commit")
def _wake_relays(session: Session) -> None:
    for signal in session.info.pop(_SIGNAL_KEY, ()):
        signal.notify()


@event.listens_for(Session, "after_rollback")
def _forget_staged(session: Session) -> None:
    session.info.pop(_SIGNAL_KEY, None)


class Outbox:
    """Writes events into a service's outbox; used by service code, inside its transaction."""

    def __init__(self, tables: OutboxTables, *, source: str) -> None:
        self.tables = tables
        self.source = source

    def _row(self, event: Event, event_id: str | None = None) -> dict[str, Any]:
        message = to_message(event, source=self.source, event_id=event_id)
        return {
            "event_id": message.headers["ce_id"].decode(),
            "event_type": event.event_type(),
            "topic": message.topic,
            "partition_key": message.key,
            "slot": slot_for(message.key),
            "headers": {name: value.decode() for name, value in message.headers.items()},
            "payload": message.value,
        }

    async def add(self, session: AsyncSession, event: Event, *, event_id: str | None = None) -> str:
        """Stage `event` in the session's transaction; returns the CloudEvents id (`event_id` when given:
        an id derived from what the event announces, for a consumer that must never announce it twice)."""
        values = self._row(event, event_id)
        table = self.tables.events
        if session.get_bind().dialect.name == "postgresql":
            # Lock the key and insert in one round trip; the lock lasts until this transaction ends.
            key_lock = func.pg_advisory_xact_lock(_KEY_LOCK_CLASS, _key_lock_id(values["partition_key"]))
            columns = list(values)
            row = select(*(literal(values[name], table.c[name].type) for name in columns))
            await session.execute(
                insert(table).from_select(columns, row.select_from(select(key_lock).subquery()))
            )
        else:
            await session.execute(insert(table).values(**values))
        session.info.setdefault(_SIGNAL_KEY, set()).add(self.tables.signal)
        return str(values["event_id"])

    async def add_many(
        self, session: AsyncSession, events: Sequence[Event], *, event_ids: Sequence[str] | None = None
    ) -> list[str]:
        """Stage several events in one statement (plus one for the key locks on PostgreSQL). `event_ids`
        gives them CloudEvents ids chosen beforehand (UUIDs), for a writer that keeps the id beside
        its row; by default each gets a new one."""
        if not events:
            return []
        ids: Sequence[str | None] = event_ids if event_ids is not None else [None] * len(events)
        rows = [self._row(event, event_id) for event, event_id in zip(events, ids, strict=True)]
        if session.get_bind().dialect.name == "postgresql":
            # Sorted, so that two transactions locking several keys always meet in the same order.
            keys = sorted({_key_lock_id(row["partition_key"]) for row in rows})
            await session.execute(
                text(
                    "SELECT count(pg_advisory_xact_lock(:lock_class, k))"
                    " FROM (SELECT k FROM unnest(CAST(:keys AS integer[])) AS k ORDER BY k) AS ordered"
                ),
                {"lock_class": _KEY_LOCK_CLASS, "keys": keys},
            )
        await session.execute(insert(self.tables.events), rows)
        session.info.setdefault(_SIGNAL_KEY, set()).add(self.tables.signal)
        return [str(row["event_id"]) for row in rows]


class OutboxRelay:
    def __init__(
        self,
        database: Database,
        tables: OutboxTables,
        bus: EventBus,
        *,
        batch_size: int = 2000,
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
        self.idle_waits = 0  # how often it found nothing to do and waited (for tests and debugging)

    async def publish_batch(self) -> int:
        """Publish one batch; returns how many rows it settled (published or moved aside).

        Raises `BusUnavailable` when the bus is away; then every unacknowledged row stays.
        """
        if not self._topics_ready:
            await self.bus.ensure_topics(topic_definitions.all_bus_topics())
            self._topics_ready = True
        if self.database.is_sqlite:
            settled = await self._publish_batch_sqlite()
        else:
            async with session_scope(self.database) as session:
                # The slot locks last until this transaction ends, i.e. across the publish: that is
                # what keeps a second relay off these keys until their events are out and deleted.
                rows = await self._claim(session)
                settled = await self._publish(session, rows)
        return settled

    async def _publish(self, session: AsyncSession, rows: Sequence[OutboxRow]) -> int:
        return await self._settle(session, rows, await self._send(rows))

    async def _send(self, rows: Sequence[OutboxRow]) -> MessageRefused | None:
        """Publish `rows` in order; a refusal is returned, an outage raised (`BusUnavailable`)."""
        if not rows:
            return None
        try:
            await self.bus.publish([self._message(row) for row in rows])
        except MessageRefused as refusal:
            return refusal
        return None

    async def _settle(
        self, session: AsyncSession, rows: Sequence[OutboxRow], refusal: MessageRefused | None
    ) -> int:
        """Delete what was acknowledged and move a refused row aside; returns how many rows settled.

        Rows after a refused one stay for the next batch: the bus may or may not have written them, and
        sending them again keeps each key's order (a repeat is dropped by consumers by event id).
        """
        if refusal is None:
            await self._delete(session, rows)
            EVENTS_PUBLISHED.labels(self.service).inc(len(rows))
            return len(rows)
        acknowledged, refused = rows[: refusal.index], rows[refusal.index]
        await self._delete(session, acknowledged)
        await self._move_aside(session, refused, refusal.reason)
        EVENTS_PUBLISHED.labels(self.service).inc(len(acknowledged))
        return len(acknowledged) + 1

    async def _move_aside(self, session: AsyncSession, row: OutboxRow, reason: str) -> None:
        events, dead = self.tables.events, self.tables.dead
        full = (await session.execute(select(events).where(events.c.event_id == row.event_id))).one_or_none()
        if full is None:
            return  # another relay settled it meanwhile
        await session.execute(
            insert(dead).values(
                event_id=full.event_id,
                event_type=full.event_type,
                topic=full.topic,
                partition_key=full.partition_key,
                headers=full.headers,
                payload=full.payload,
                created_at=full.created_at,
                error=reason[:4000],
                refused_at=utc_now(),
            )
        )
        await session.execute(delete(events).where(events.c.event_id == row.event_id))
        OUTBOX_REFUSED.labels(self.service).inc()
        log.error(
            "%s: outbox event %s (%s, key %s) refused by the bus and moved aside: %s",
            self.service,
            full.event_id,
            full.event_type,
            full.partition_key,
            reason,
        )

    async def _has_pending(self) -> bool:
        async with read_scope(self.database) as session:
            return bool(await session.scalar(select(exists().select_from(self.tables.events))))

    async def _publish_batch_sqlite(self) -> int:
        # SQLite has no row locks, and holding its database-wide write lock across a slow publish would
        # stall every API write. So a relay leases its slots in one short transaction, publishes without
        # holding the lock, then deletes what it sent and frees the slots in a second one. A relay that
        # dies mid-way loses its lease after `lease_s`, and another relay sends its rows again.
        if not await self._has_pending():
            return 0  # an idle relay reads, and takes no write lock
        async with session_scope(self.database) as session:
            leased = await self._lease_slots(session)
            rows = await self._rows(session, leased)
        if not leased:
            return 0
        outage: BusUnavailable | None = None
        refusal: MessageRefused | None = None
        try:
            refusal = await self._send(rows)  # outside any transaction: other writers go on meanwhile
        except BusUnavailable as exc:
            outage = exc
        async with session_scope(self.database) as session:
            settled = 0 if outage is not None else await self._settle(session, rows, refusal)
            # Free the slots in the same transaction, also after an outage: the rows stay for a retry.
            await session.execute(
                update(self.tables.slots)
                .where(self.tables.slots.c.slot.in_(leased), self.tables.slots.c.owner == self.relay_id)
                .values(owner=None, lease_until=None)
            )
        if outage is not None:
            raise outage
        return settled

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
                    events.c.id,
                    events.c.event_id,
                    events.c.topic,
                    events.c.partition_key,
                    events.c.headers,
                    events.c.payload,
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
        # By event id, not row id: SQLite hands a deleted row's id out again, and a relay whose lease
        # lapsed mid-publish must not delete a newer event that got the same id meanwhile.
        if rows:
            events = self.tables.events
            await session.execute(delete(events).where(events.c.event_id.in_([r.event_id for r in rows])))

    async def run(self, stop: asyncio.Event) -> None:
        wakeup = self.tables.signal.register()
        try:
            await self._run(stop, wakeup)
        finally:
            self.tables.signal.unregister(wakeup)

    async def _run(self, stop: asyncio.Event, wakeup: asyncio.Event) -> None:
        backoff = self.idle_interval_s
        while not stop.is_set():
            wakeup.clear()
            try:
                settled = await self.publish_batch()
                backoff = self.idle_interval_s
            except (BusUnavailable, OSError, ConnectionError) as exc:
                log.warning("outbox relay waiting for the bus: %s", exc)
                settled, backoff = 0, min(backoff * 2, self.max_backoff_s)
            except Exception:
                # A database outage or similar: keep the rows and try again later.
                log.exception("outbox relay batch failed")
                settled, backoff = 0, min(backoff * 2, self.max_backoff_s)
            if settled:
                continue
            if backoff > self.idle_interval_s:
                await sleep_unless_stopped(stop, backoff)  # an outage: do not let commits hurry retries
            else:
                self.idle_waits += 1
                await _first_of(stop, wakeup, timeout_s=backoff)


async def _first_of(stop: asyncio.Event, wakeup: asyncio.Event, *, timeout_s: float) -> None:
    """Wait until `stop` or `wakeup` is set, or `timeout_s` passed (other processes' commits)."""
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wakeup.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
