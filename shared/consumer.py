"""Idempotent consumers.

For each record: parse the CloudEvent, run the handler for its type, and write a
`processed_event(consumer, event_id)` row, all in one transaction. A redelivered event finds its row
and is skipped. The bus position is committed only after the database commit.

Failures are told apart. An outage (database or bus unreachable) is waited out, retrying without end,
because dropping events would lose data. Any other error is retried a bounded number of times with
backoff; then the record goes to `<topic>.dlq` with the error in its headers, and the consumer moves on.
A record that cannot be parsed at all goes to the DLQ at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, TypeVar

from sqlalchemy import Column, MetaData, String, Table, func, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.aio import sleep_unless_stopped
from shared.bus.base import BusUnavailable, Consumer, EventBus, Message, Record
from shared.db import Database, UTCDateTime, session_scope
from shared.events.base import Event
from shared.events.envelope import Envelope, from_record
from shared.events.registry import UnknownEventType
from shared.events.topics import dead_letter
from shared.observability import EVENTS_CONSUMED

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, Envelope], Awaitable[None]]
Outcome = Literal["applied", "duplicate", "ignored", "dead_lettered"]
T = TypeVar("T")


@dataclass(frozen=True)
class ConsumerSpec:
    """A named consumer (its group id) and the handlers it runs, by event class."""

    name: str
    topics: Sequence[str]
    handlers: Mapping[type[Event], Handler] = field(default_factory=dict)


def define_processed_events(metadata: MetaData) -> Table:
    return Table(
        "processed_event",
        metadata,
        Column("consumer", String(200), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("processed_at", UTCDateTime(), nullable=False, server_default=func.now()),
    )


# SQLSTATE classes that mean the database is away or overloaded, not that the statement is wrong:
# 08 connection exception, 53 insufficient resources, 57 operator intervention (restart, shutdown).
_OUTAGE_SQLSTATE_CLASSES = frozenset({"08", "53", "57"})


class Stopping(Exception):
    """Raised inside a consumer that was told to stop while it waited out an outage."""


def is_outage(exc: BaseException) -> bool:
    """Errors that mean 'try again later', not 'this event is bad'."""
    if isinstance(
        exc, (BusUnavailable, ConnectionError, TimeoutError, OSError, OperationalError, InterfaceError)
    ):
        return True
    if isinstance(exc, DBAPIError):
        sqlstate = str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "")
        return exc.connection_invalidated or sqlstate[:2] in _OUTAGE_SQLSTATE_CLASSES
    return False


class ConsumerRunner:
    def __init__(
        self,
        spec: ConsumerSpec,
        database: Database,
        processed: Table,
        bus: EventBus,
        *,
        max_attempts: int = 5,
        base_backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
    ) -> None:
        self.spec = spec
        self.database = database
        self.processed = processed
        self.bus = bus
        self.max_attempts = max_attempts
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self._stop = asyncio.Event()

    async def _already_processed(self, session: AsyncSession, event_id: str) -> bool:
        found = await session.scalar(
            select(self.processed.c.event_id).where(
                self.processed.c.consumer == self.spec.name, self.processed.c.event_id == event_id
            )
        )
        return found is not None

    async def _apply(self, handler: Handler, envelope: Envelope) -> Outcome:
        async with session_scope(self.database) as session:
            if await self._already_processed(session, envelope.id):
                return "duplicate"
            await handler(session, envelope)
            await session.execute(
                insert(self.processed).values(consumer=self.spec.name, event_id=envelope.id)
            )
        return "applied"

    async def _dead_letter(self, record: Record, error: BaseException, attempts: int) -> None:
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
        await self._until_available(lambda: self.bus.publish([message]))
        log.error("%s: event at %s/%s sent to DLQ: %s", self.spec.name, record.topic, record.offset, error)

    async def _until_available(self, action: Callable[[], Awaitable[T]]) -> T:
        """Run `action`, waiting out outages for as long as they last (or until told to stop)."""
        backoff = self.base_backoff_s
        while True:
            try:
                return await action()
            except Exception as exc:
                if not is_outage(exc):
                    raise
                log.warning("%s: waiting out an outage: %s", self.spec.name, exc)
                await sleep_unless_stopped(self._stop, backoff)
                if self._stop.is_set():
                    # Leave the record uncommitted: the next member picks it up.
                    raise Stopping from exc
                backoff = min(backoff * 2, self.max_backoff_s)

    async def process(self, record: Record) -> Outcome:
        """Handle one record to the end: applied, skipped (duplicate, not ours) or dead-lettered."""
        outcome = await self._process(record)
        EVENTS_CONSUMED.labels(self.spec.name, outcome).inc()
        return outcome

    async def _process(self, record: Record) -> Outcome:
        try:
            envelope = from_record(record)
        except UnknownEventType:
            return "ignored"  # a newer producer's event type this consumer does not know
        except Exception as exc:
            # Unreadable (not a CloudEvent, bad data, a failing upcaster): retrying cannot help.
            await self._dead_letter(record, exc, attempts=1)
            return "dead_lettered"
        handler = self.spec.handlers.get(type(envelope.event))
        if handler is None:
            return "ignored"
        attempts = 0
        backoff = self.base_backoff_s
        while True:
            attempts += 1
            try:
                return await self._until_available(lambda: self._apply(handler, envelope))
            except Stopping:
                raise
            except Exception as exc:
                if isinstance(exc, IntegrityError) and await self._processed_elsewhere(envelope.id):
                    return "duplicate"  # a concurrent delivery of the same event committed first
                if attempts >= self.max_attempts:
                    await self._dead_letter(record, exc, attempts)
                    return "dead_lettered"
                log.warning("%s: attempt %d failed for %s: %s", self.spec.name, attempts, envelope.id, exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)

    async def _processed_elsewhere(self, event_id: str) -> bool:
        async with self.database.sessionmaker() as session:
            return await self._already_processed(session, event_id)

    async def process_batch(self, consumer: Consumer, records: Sequence[Record]) -> None:
        for record in records:
            await self.process(record)
        try:
            await consumer.commit(records)
        except BusUnavailable as exc:
            # The effects are committed and deduplicated; a redelivery after this is harmless.
            log.warning("%s: position commit failed, records may be redelivered: %s", self.spec.name, exc)

    async def run(self, stop: asyncio.Event, *, poll_timeout_s: float = 0.5) -> None:
        self._stop = stop
        backoff = self.base_backoff_s
        while not stop.is_set():
            consumer = self.bus.consumer(self.spec.name, self.spec.topics)
            try:
                await consumer.start()
                backoff = self.base_backoff_s
                while not stop.is_set():
                    records = await consumer.poll(timeout_s=poll_timeout_s)
                    if records:
                        await self.process_batch(consumer, records)
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
                try:
                    await consumer.stop()
                except Exception:
                    log.debug("consumer stop failed", exc_info=True)
