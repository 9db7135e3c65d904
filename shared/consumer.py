"""Idempotent consumers that track their positions in the view's own database.

A runner applies a batch of records in one transaction: each handler's writes, the consumer's position
(`consumer_position`: consumer, topic, partition → next offset) and a `processed_event(consumer,
event_id)` row per applied event commit together. The bus position is committed only afterwards, and
is a hint: the database position decides. So

- a redelivered record (offset below the position) is skipped;
- the same event published twice by the relay (a new offset, the same CloudEvents id) is skipped by its
  id; those repeats arrive within minutes, so ids are kept only for `dedup_window` and then pruned;
- any view can be rebuilt by resetting it and its positions and replaying its topics (`replay`).

A consumer whose spec asks for it (`watermark=True`) also keeps, per partition of its topics, a
**completeness watermark** (`consumer_watermark.complete_before`): every record the bus accepted into
that partition before that instant has been settled by the consumer (applied, skipped, or
dead-lettered). It rises two ways, never falls, and only while the consumer runs:

- **caught up**: every few seconds the runner notes the time T, then asks the bus for the partitions'
  end offsets, then reads its stored positions. A partition whose position reaches its end had settled
  every record accepted before T (the end was read after T), so its watermark moves to T;
- **behind**: when a batch is applied, a partition whose records carry their append time
  (`Record.log_append_time`; those times do not decrease along a partition) moves, in the batch's
  transaction, to the append time of the last record settled: every record appended before it has a
  lower offset. Records stamped by their producers (Kafka's `CreateTime`) do not move it this way.

A partition's row is created by the first caught-up check, with a null watermark while it is behind, so
a topic's watermark (the earliest over its partitions, `complete_before`) is never that of some of its
partitions only. A stopped consumer's watermark stays where it was; a replay resets it.

Failures are told apart:
- an **outage** (database or bus unreachable) is waited out, retrying without end;
- a **transient** database error (serialization failure, deadlock, lock timeout) is retried without end;
- any other error is retried `max_attempts` times with backoff, then the record goes to
  `<topic>.dlq` with the error in its headers and the consumer moves on. A record that cannot be read
  at all goes there at once. Errors raised by a handler's own work (a `TimeoutError` from a call it
  makes, say) are failures of the event, not outages, unless they come from the database;
- an event **newer than this build** (an unknown type, or a known type at a newer schema version) is
  never acknowledged as handled: the runner holds its partition there, with a log line and the
  `crm_consumer_waiting_for_upgrade` metric, until a member that knows it takes over. A producer that
  rolls out before its consumers thus delays their effects and never drops them. Waiting keeps each
  key's order, which parking the record and re-driving it later would not; the price is that the other
  keys of that partition wait too. A known type without a handler is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

from shared.aio import sleep_unless_stopped, unless_stopped
from shared.bus.base import BusUnavailable, Consumer, EventBus, Message, MessageRefused, Record
from shared.db import Database, UTCDateTime, session_scope, utc_now
from shared.events.base import Event
from shared.events.envelope import Envelope, from_record
from shared.events.registry import NotUnderstoodYet
from shared.events.topics import TopicDefinition, dead_letter
from shared.observability import CONSUMER_LAG, CONSUMER_RETRIES, CONSUMER_WAITING, EVENTS_CONSUMED

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, Envelope], Awaitable[None]]
Outcome = Literal["applied", "duplicate", "skipped", "dead_lettered", "waiting"]
T = TypeVar("T")


@dataclass(frozen=True)
class ConsumerSpec:
    """A named consumer (its group id), the topics it reads, its handlers by event class, and the
    tables of the view it builds (emptied by `crm replay` before the view is rebuilt)."""

    name: str
    topics: Sequence[TopicDefinition]
    handlers: Mapping[type[Event], Handler] = field(default_factory=dict)
    owns: Sequence[Table | type[DeclarativeBase]] = ()
    replay_refused: str | None = None
    """Why `crm replay` must not rebuild this consumer (its effects are not a view it owns and could
    empty); None when it may."""
    watermark: bool = False
    """Keep a completeness watermark per partition (see the module), for reads that show how complete
    the view is. Off by default: it costs a bus round trip and a small write every few seconds."""

    @property
    def topic_names(self) -> list[str]:
        return [topic.name for topic in self.topics]


@dataclass(frozen=True)
class ConsumerTables:
    processed: Table
    positions: Table
    watermarks: Table


def define_consumer_tables(metadata: MetaData) -> ConsumerTables:
    processed = Table(
        "processed_event",
        metadata,
        Column("consumer", String(200), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("processed_at", UTCDateTime(), nullable=False, server_default=func.now(), index=True),
    )
    positions = Table(
        "consumer_position",
        metadata,
        Column("consumer", String(200), primary_key=True),
        Column("topic", String(200), primary_key=True),
        Column("partition", Integer, primary_key=True, autoincrement=False),
        Column("next_offset", BigInteger, nullable=False),
        Column("updated_at", UTCDateTime(), nullable=False),
    )
    watermarks = Table(
        "consumer_watermark",
        metadata,
        Column("consumer", String(200), primary_key=True),
        Column("topic", String(200), primary_key=True),
        Column("partition", Integer, primary_key=True, autoincrement=False),
        # Every record the bus accepted into the partition before this instant is settled; null: not
        # known yet (the consumer has not caught up with the partition since it started from scratch).
        Column("complete_before", UTCDateTime(), nullable=True),
        Column("updated_at", UTCDateTime(), nullable=False),
    )
    return ConsumerTables(processed=processed, positions=positions, watermarks=watermarks)


_STAGED_ROWS = "crm_staged_rows"


def stage_insert(
    session: AsyncSession, table: Table, row: dict[str, Any], *, unless_present: bool = False
) -> None:
    """Queue a row for `table`; the runner inserts the batch's rows in one statement per table.

    For views that append (a timeline, a log): it spares building an ORM object and a flush per event,
    which is most of what applying an event costs. The rows commit with the batch, or not at all.
    `unless_present`: a row whose key or unique value is there already is skipped, for a view that two
    paths may fill with the same row (an entry made both by its event and by a later stitching).
    """
    staged = session.info.setdefault(_STAGED_ROWS, {})
    staged.setdefault((table, unless_present), []).append(row)


async def insert_staged(session: AsyncSession) -> None:
    """Insert the rows staged so far now: a handler that deletes or reads them must call this first."""
    staged: dict[tuple[Table, bool], list[dict[str, Any]]] = session.info.pop(_STAGED_ROWS, {})
    postgres = session.get_bind().dialect.name == "postgresql"
    for (table, unless_present), rows in staged.items():
        if unless_present:
            skipping = (postgresql.insert if postgres else sqlite.insert)(table).on_conflict_do_nothing()
            await session.execute(skipping, rows)
        else:
            await session.execute(insert(table), rows)


Positions = dict[tuple[str, int], int]


async def stored_positions(session: AsyncSession, tables: ConsumerTables, consumer: str) -> Positions:
    """A consumer's stored positions: (topic, partition) → the next offset it will apply."""
    table = tables.positions
    rows = await session.execute(
        select(table.c.topic, table.c.partition, table.c.next_offset).where(table.c.consumer == consumer)
    )
    return {(topic, partition): int(offset) for topic, partition, offset in rows}


async def complete_before(
    session: AsyncSession, tables: ConsumerTables, consumer: ConsumerSpec
) -> dict[str, datetime | None]:
    """Per topic of `consumer`: the instant before which every record the bus accepted is settled (the
    earliest over the topic's partitions), or None while that is not known for every partition."""
    table = tables.watermarks
    rows = await session.execute(
        select(table.c.topic, table.c.complete_before).where(table.c.consumer == consumer.name)
    )
    by_topic: dict[str, list[datetime | None]] = {}
    for topic, instant in rows:
        by_topic.setdefault(topic, []).append(instant)
    found: dict[str, datetime | None] = {}
    for topic in consumer.topic_names:
        instants = by_topic.get(topic, [])
        known = [instant for instant in instants if instant is not None]
        found[topic] = min(known) if instants and len(known) == len(instants) else None
    return found


# SQLSTATE classes that mean the database is away or overloaded, not that the statement is wrong:
# 08 connection exception, 53 insufficient resources, 57 operator intervention (restart, shutdown).
_OUTAGE_SQLSTATE_CLASSES = frozenset({"08", "53", "57"})
# Conflicts between concurrent transactions: running the same work again succeeds.
# 40001 serialization failure, 40P01 deadlock detected, 55P03 lock not available (lock timeout).
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03"})

Failure = Literal["outage", "transient", "failure"]


class Stopping(Exception):
    """Raised inside a consumer that was told to stop while it waited out an outage."""


class HandlerError(Exception):
    """A handler raised; `__cause__` holds what it raised."""


class ConcurrentDelivery(Exception):
    """Another member advanced this consumer's position first (a rebalance overlap)."""


def _sqlstate(exc: DBAPIError) -> str:
    return str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "")


# SQLite result codes that mean "not now" rather than "this statement is wrong" (a missing table, say).
_SQLITE_OUTAGES = frozenset(
    {"SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN"}
)


def _classify_database_error(exc: BaseException) -> Failure | None:
    if isinstance(exc, (PoolTimeout, DisconnectionError)):
        return "outage"  # every pooled connection is busy, or the server went away
    if isinstance(exc, DBAPIError) and (sqlite_error := getattr(exc.orig, "sqlite_errorname", None)):
        return "outage" if sqlite_error in _SQLITE_OUTAGES else None
    if isinstance(exc, DBAPIError):
        sqlstate = _sqlstate(exc)
        if sqlstate in _TRANSIENT_SQLSTATES:
            return "transient"
        if exc.connection_invalidated or sqlstate[:2] in _OUTAGE_SQLSTATE_CLASSES:
            return "outage"
        if isinstance(exc, (OperationalError, InterfaceError)) and not sqlstate:
            return "outage"  # driver-level: SQLite busy or locked, a dropped connection
    return None


def classify(exc: BaseException) -> Failure:
    """What an error means for the event being applied: wait it out, retry it, or count it."""
    if isinstance(exc, ConcurrentDelivery):
        return "transient"
    if isinstance(exc, HandlerError):
        # A handler's own work: only the database it writes to can be away; a TimeoutError or a
        # ConnectionError from anything else it calls is this event's failure, and bounded.
        cause = exc.__cause__
        return (_classify_database_error(cause) if cause is not None else None) or "failure"
    if database := _classify_database_error(exc):
        return database
    if isinstance(exc, (BusUnavailable, ConnectionError, TimeoutError, OSError)):
        return "outage"  # raised by the runner's own bus and database calls
    return "failure"


def is_outage(exc: BaseException) -> bool:
    return classify(exc) == "outage"


def _original(error: BaseException) -> BaseException:
    return error.__cause__ if isinstance(error, HandlerError) and error.__cause__ else error


class ConsumerRunner:
    def __init__(
        self,
        spec: ConsumerSpec,
        database: Database,
        tables: ConsumerTables,
        bus: EventBus,
        *,
        max_attempts: int = 5,
        base_backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
        dedup_window: timedelta = timedelta(days=7),
        prune_every_s: float = 600.0,
        commit_every_s: float = 1.0,
        watermark_every_s: float = 2.0,
    ) -> None:
        self.spec = spec
        self.database = database
        self.tables = tables
        self.bus = bus
        self.max_attempts = max_attempts
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.dedup_window = dedup_window
        self.prune_every_s = prune_every_s
        self.commit_every_s = commit_every_s
        self.watermark_every_s = watermark_every_s
        self._stop = asyncio.Event()
        self._waiting_labels: set[tuple[str, str, str]] = set()

    # --- positions and event ids ------------------------------------------------------------------

    async def positions(self) -> Positions:
        """The stored positions, read in a session of their own."""
        async with self.database.sessionmaker() as session:
            return await self._load_positions(session)

    async def _load_positions(self, session: AsyncSession) -> Positions:
        return await stored_positions(session, self.tables, self.spec.name)

    async def _save_positions(
        self,
        session: AsyncSession,
        before: Mapping[tuple[str, int], int],
        after: Mapping[tuple[str, int], int],
    ) -> None:
        positions, now = self.tables.positions, utc_now()
        for (topic, partition), offset in after.items():
            old = before.get((topic, partition))
            if old == offset:
                continue
            if old is None:
                try:
                    async with session.begin_nested():
                        await session.execute(
                            insert(positions).values(
                                consumer=self.spec.name,
                                topic=topic,
                                partition=partition,
                                next_offset=offset,
                                updated_at=now,
                            )
                        )
                except IntegrityError as exc:
                    raise ConcurrentDelivery(f"{self.spec.name}: {topic}/{partition} claimed") from exc
                continue
            # Moves only from the position this transaction read: a concurrent member that got there
            # first makes this one roll back instead of applying the same records twice.
            result = await session.execute(
                update(positions)
                .where(
                    positions.c.consumer == self.spec.name,
                    positions.c.topic == topic,
                    positions.c.partition == partition,
                    positions.c.next_offset == old,
                )
                .values(next_offset=offset, updated_at=now)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise ConcurrentDelivery(f"{self.spec.name}: {topic}/{partition} moved from {old}")

    async def _raise_watermarks(
        self, session: AsyncSession, instants: Mapping[tuple[str, int], datetime]
    ) -> None:
        """Move existing watermark rows up to `instants`, never down; a row not there yet stays away
        (it is created for all of a topic's partitions at once, by `record_watermarks`)."""
        table, now = self.tables.watermarks, utc_now()
        for (topic, partition), instant in instants.items():
            await session.execute(
                update(table)
                .where(
                    table.c.consumer == self.spec.name,
                    table.c.topic == topic,
                    table.c.partition == partition,
                    or_(table.c.complete_before.is_(None), table.c.complete_before < instant),
                )
                .values(complete_before=instant, updated_at=now)
            )

    async def record_watermarks(self) -> None:
        """The caught-up check (see the module): partitions whose stored position reaches the end
        offset the bus gave after the check began are complete before the time it began."""
        began = utc_now()  # before asking for the ends: records accepted by then lie below them
        ends = await self.bus.end_offsets(self.spec.topic_names)
        table = self.tables.watermarks
        async with session_scope(self.database) as session:
            positions = await self._load_positions(session)  # read after the ends
            rows = await session.execute(
                select(table.c.topic, table.c.partition).where(table.c.consumer == self.spec.name)
            )
            known = {(topic, partition) for topic, partition in rows}
            caught_up = {p: began for p, end in ends.items() if positions.get(p, 0) >= end}
            new = [p for p in ends if p not in known]
            if new:
                try:
                    async with session.begin_nested():
                        await session.execute(
                            insert(table),
                            [
                                {
                                    "consumer": self.spec.name,
                                    "topic": topic,
                                    "partition": partition,
                                    "complete_before": caught_up.get((topic, partition)),
                                    "updated_at": began,
                                }
                                for topic, partition in new
                            ],
                        )
                except IntegrityError:
                    pass  # another member created them first; the update below still applies
            await self._raise_watermarks(session, caught_up)

    async def _seen(self, session: AsyncSession, event_ids: Sequence[str]) -> set[str]:
        processed = self.tables.processed
        rows = await session.scalars(
            select(processed.c.event_id).where(
                processed.c.consumer == self.spec.name, processed.c.event_id.in_(event_ids)
            )
        )
        return set(rows)

    # --- applying ---------------------------------------------------------------------------------

    async def _apply(self, items: Sequence[tuple[Record, Envelope]]) -> list[Outcome]:
        """Apply `items` in one transaction, skipping what this consumer has already seen."""
        outcomes: list[Outcome] = []
        applied: list[Envelope] = []
        # Per partition, the append time of the last record this batch settles (see the module).
        appended_ms: dict[tuple[str, int], int] = {}
        async with session_scope(self.database) as session:
            before = await self._load_positions(session)
            after = dict(before)
            seen = await self._seen(session, [envelope.id for _, envelope in items])
            for record, envelope in items:
                partition = (record.topic, record.partition)
                if record.offset < after.get(partition, 0):
                    outcomes.append("duplicate")  # redelivered: this record's effect is committed
                    continue
                after[partition] = record.offset + 1
                if record.log_append_time:
                    appended_ms[partition] = record.timestamp_ms
                else:
                    appended_ms.pop(partition, None)
                if envelope.id in seen:
                    outcomes.append("duplicate")  # the relay published this event twice
                    continue
                handler = self.spec.handlers.get(type(envelope.event))
                if handler is None:
                    outcomes.append("skipped")  # a type this consumer knows and does not need
                    continue
                try:
                    await handler(session, envelope)
                except Exception as exc:
                    raise HandlerError(f"{type(exc).__name__}: {exc}") from exc
                seen.add(envelope.id)
                applied.append(envelope)
                outcomes.append("applied")
            await insert_staged(session)
            if applied:
                now = utc_now()
                await session.execute(
                    insert(self.tables.processed),
                    [
                        {"consumer": self.spec.name, "event_id": envelope.id, "processed_at": now}
                        for envelope in applied
                    ],
                )
            await self._save_positions(session, before, after)
            if self.spec.watermark and appended_ms:
                await self._raise_watermarks(
                    session,
                    {
                        partition: datetime.fromtimestamp(stamp / 1000, UTC)
                        for partition, stamp in appended_ms.items()
                    },
                )
        finished = time.time()
        for envelope in applied:
            CONSUMER_LAG.labels(self.spec.name).observe(max(0.0, finished - envelope.time.timestamp()))
        return outcomes

    async def _until_available(self, action: Callable[[], Awaitable[T]]) -> T:
        """Run `action`, waiting out outages and transient conflicts for as long as they last."""
        backoff = self.base_backoff_s
        while True:
            try:
                return await action()
            except Exception as exc:
                reason = classify(exc)
                if reason == "failure":
                    raise
                CONSUMER_RETRIES.labels(self.spec.name, reason).inc()
                log.warning("%s: waiting out %s: %s", self.spec.name, reason, _original(exc))
                await sleep_unless_stopped(self._stop, backoff)
                if self._stop.is_set():
                    # Leave the record uncommitted: the next member picks it up.
                    raise Stopping from exc
                backoff = min(backoff * 2, self.max_backoff_s)

    async def _dead_letter(self, record: Record, error: BaseException, attempts: int) -> None:
        error = _original(error)
        headers = dict(record.headers)
        headers.update(
            {
                "crm_error": str(error)[:2000].encode(),
                "crm_error_type": type(error).__name__.encode(),
                "crm_consumer": self.spec.name.encode(),
                "crm_attempts": str(attempts).encode(),
                "crm_original_topic": record.topic.encode(),
                "crm_original_partition": str(record.partition).encode(),
                "crm_original_offset": str(record.offset).encode(),
                "crm_failed_at": datetime.now(UTC).isoformat().encode(),
            }
        )
        message = Message(
            topic=dead_letter(record.topic), key=record.key or "", value=record.value, headers=headers
        )
        await self._until_available(lambda: self._publish_dead_letter(message, record))
        # Settled like an applied record, so "caught up" and a redelivery treat it the same way.
        await self.set_positions({(record.topic, record.partition): record.offset + 1})
        log.error("%s: event at %s/%s sent to DLQ: %s", self.spec.name, record.topic, record.offset, error)

    async def apply_records(self, items: Sequence[tuple[Record, Envelope]]) -> list[Outcome]:
        """Apply `items` in one transaction, waiting out outages; raises what a handler raised."""
        outcomes = await self._until_available(lambda: self._apply(items))
        for outcome in outcomes:
            EVENTS_CONSUMED.labels(self.spec.name, outcome).inc()
        return outcomes

    async def _publish_dead_letter(self, message: Message, record: Record) -> None:
        try:
            await self.bus.publish([message])
        except MessageRefused:
            # The error headers pushed a record near the size limit over it: keep only where it came from.
            kept = {k: v for k, v in message.headers.items() if not k.startswith("crm_error")}
            lean = Message(topic=message.topic, key=message.key, value=message.value, headers=kept)
            try:
                await self.bus.publish([lean])
            except MessageRefused as exc:
                # Nothing may be skipped silently: wait (logged as an outage) until the topic takes it.
                raise BusUnavailable(
                    f"{message.topic} refuses the dead letter of {record.topic}/{record.offset}: {exc}"
                ) from exc

    async def _apply_one(self, record: Record, envelope: Envelope) -> Outcome:
        """One record to the end: applied, skipped, or dead-lettered after bounded attempts."""
        attempts = 0
        backoff = self.base_backoff_s
        while True:
            attempts += 1
            try:
                [outcome] = await self._until_available(lambda: self._apply([(record, envelope)]))
                return outcome
            except Stopping:
                raise
            except Exception as exc:
                if attempts >= self.max_attempts:
                    await self._dead_letter(record, exc, attempts)
                    return "dead_lettered"
                CONSUMER_RETRIES.labels(self.spec.name, "failure").inc()
                log.warning(
                    "%s: attempt %d failed for %s: %s", self.spec.name, attempts, envelope.id, _original(exc)
                )
            await sleep_unless_stopped(self._stop, backoff)
            if self._stop.is_set():
                raise Stopping
            backoff = min(backoff * 2, self.max_backoff_s)

    async def _wait_for_upgrade(self, consumer: Consumer, record: Record, reason: NotUnderstoodYet) -> None:
        await consumer.hold(record)
        labels = (self.spec.name, record.topic, str(record.partition))
        CONSUMER_WAITING.labels(*labels).set(1)
        if labels not in self._waiting_labels:
            self._waiting_labels.add(labels)
            log.warning(
                "%s: holding %s/%s at offset %s until a build that understands it runs: %s",
                self.spec.name,
                record.topic,
                record.partition,
                record.offset,
                reason,
            )

    async def handle(self, consumer: Consumer, records: Sequence[Record]) -> list[Record]:
        """Apply `records`; returns those that are done (to commit), in order.

        Records at or after one this build does not understand yet are held, not returned.
        """
        held: set[tuple[str, int]] = set()
        readable: list[tuple[Record, Envelope]] = []
        unreadable: dict[int, Exception] = {}
        done: list[Record] = []
        for record in records:
            partition = (record.topic, record.partition)
            if partition in held:
                continue
            try:
                readable.append((record, from_record(record)))
            except NotUnderstoodYet as exc:
                await self._wait_for_upgrade(consumer, record, exc)
                EVENTS_CONSUMED.labels(self.spec.name, "waiting").inc()
                held.add(partition)
                continue
            except Exception as exc:
                # Unreadable (not a CloudEvent, bad data, a failing upcaster): retrying cannot help.
                unreadable[id(record)] = exc
            done.append(record)
        if not unreadable and readable:
            try:
                await self.apply_records(readable)
                return done
            except Stopping:
                raise
            except Exception as exc:
                # One event of the batch failed: apply them one by one, so only that one is retried.
                log.info("%s: batch of %d failed, applying one by one: %s", self.spec.name, len(done), exc)
        envelopes = {id(record): envelope for record, envelope in readable}
        for record in done:
            if id(record) in unreadable:
                await self._dead_letter(record, unreadable[id(record)], attempts=1)
                result: Outcome = "dead_lettered"
            else:
                result = await self._apply_one(record, envelopes[id(record)])
            EVENTS_CONSUMED.labels(self.spec.name, result).inc()
        return done

    async def process_batch(self, consumer: Consumer, records: Sequence[Record]) -> None:
        """Handle `records` and commit the bus position past those done."""
        done = await self.handle(consumer, records)
        await self._commit(consumer, {(r.topic, r.partition): r for r in done})

    async def _commit(self, consumer: Consumer, latest: dict[tuple[str, int], Record]) -> None:
        try:
            await consumer.commit(list(latest.values()))
        except BusUnavailable as exc:
            # The effects and positions are committed in the database; a redelivery is skipped.
            log.warning("%s: bus position commit failed, records may be redelivered: %s", self.spec.name, exc)
        latest.clear()

    # --- housekeeping -----------------------------------------------------------------------------

    async def prune(self) -> int:
        """Forget event ids older than the dedup window; positions cover redeliveries from then on."""
        processed = self.tables.processed
        async with session_scope(self.database) as session:
            result = await session.execute(
                delete(processed).where(
                    and_(
                        processed.c.consumer == self.spec.name,
                        processed.c.processed_at < utc_now() - self.dedup_window,
                    )
                )
            )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def set_positions(self, positions: Mapping[tuple[str, int], int]) -> None:
        """Move stored positions forward to `positions` (never back), waiting out outages."""

        async def advance() -> None:
            async with session_scope(self.database) as session:
                before = await self._load_positions(session)
                # A partition without a row gets one, even at 0: a stored position is what the
                # consumer starts from, where the group's offset would otherwise decide.
                forward = {
                    p: offset for p, offset in positions.items() if p not in before or offset > before[p]
                }
                await self._save_positions(session, before, forward)

        await self._until_available(advance)

    async def reset(self) -> None:
        """Empty this consumer's view, positions and event ids, for a rebuild from the start."""
        async with session_scope(self.database) as session:
            for table in self.spec.owns:
                await session.execute(delete(table))
            for table in (self.tables.positions, self.tables.processed, self.tables.watermarks):
                await session.execute(delete(table).where(table.c.consumer == self.spec.name))

    async def _watermarks_if_possible(self) -> None:
        """`record_watermarks`, whose failure only leaves the watermarks where they are."""
        try:
            await self.record_watermarks()
        except Exception as exc:
            if is_outage(exc) or classify(exc) == "transient":
                log.warning("%s: watermark not recorded: %s", self.spec.name, exc)
            else:
                log.exception("%s: watermark not recorded", self.spec.name)

    @property
    def waiting(self) -> bool:
        """True while this member holds a partition at an event newer than its build."""
        return bool(self._waiting_labels)

    def _clear_waiting(self) -> None:
        for labels in self._waiting_labels:
            CONSUMER_WAITING.remove(*labels)
        self._waiting_labels.clear()

    async def run(self, stop: asyncio.Event, *, poll_timeout_s: float = 0.5) -> None:
        self._stop = stop
        backoff = self.base_backoff_s
        next_prune = time.monotonic()
        while not stop.is_set():
            # From the stored positions, not the group's offsets: a database restored to an earlier state
            # reads again what it lost, and one ahead of the group skips what it applied.
            consumer = self.bus.consumer(self.spec.name, self.spec.topic_names, start_at=self.positions)
            uncommitted: dict[tuple[str, int], Record] = {}
            try:
                # Created from their definitions (retention, min ISR) before anything subscribes.
                await self.bus.ensure_topics([config for t in self.spec.topics for config in t.bus_topics()])
                await consumer.start()
                backoff = self.base_backoff_s
                # The bus position is only a hint (the stored position decides), so it is committed at
                # most every `commit_every_s` and when idle, not after every batch: on a busy topic
                # that spares a bus round trip (a synced write, on the embedded bus) per batch.
                last_commit = time.monotonic()
                next_watermark = time.monotonic()
                while not stop.is_set():
                    # Stopping ends a poll that is still waiting: nothing was handed over yet, and the
                    # stored positions, not the bus, say where the next member starts.
                    records = await unless_stopped(
                        stop, consumer.poll(timeout_s=poll_timeout_s, max_records=500), default=[]
                    )
                    if records:
                        for record in await self.handle(consumer, records):
                            uncommitted[(record.topic, record.partition)] = record
                    if uncommitted and (not records or time.monotonic() - last_commit >= self.commit_every_s):
                        await self._commit(consumer, uncommitted)
                        last_commit = time.monotonic()
                    if self.spec.watermark and time.monotonic() >= next_watermark:
                        next_watermark = time.monotonic() + self.watermark_every_s
                        await self._watermarks_if_possible()
                    if time.monotonic() >= next_prune:
                        next_prune = time.monotonic() + self.prune_every_s
                        await self.prune()
            except Stopping:
                break
            except Exception as exc:
                if not is_outage(exc):
                    log.exception("%s: consumer loop failed; restarting", self.spec.name)
                else:
                    log.warning("%s: bus unavailable, retrying: %s", self.spec.name, exc)
                await sleep_unless_stopped(stop, backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
            finally:
                self._clear_waiting()  # a new member looks at held records afresh
                try:
                    if uncommitted:
                        await self._commit(consumer, uncommitted)
                    await consumer.stop()
                except Exception:
                    log.debug("consumer stop failed", exc_info=True)
