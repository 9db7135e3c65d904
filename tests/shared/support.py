"""A service-shaped database of the tests' own (outbox, consumer tables, an append-only effect log) and
helpers to drive a consumer over it."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime

from prometheus_client import REGISTRY
from sqlalchemy import Column, Integer, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.bus.base import Consumer, EventBus, Message, Record
from shared.consumer import ConsumerRunner, ConsumerSpec, Handler
from shared.db import Database, new_metadata, session_scope
from shared.events import topics
from shared.events.base import Event
from shared.events.catalog import ContactCreated
from shared.events.envelope import Envelope, to_message
from shared.service_tables import define_service_tables
from shared.testing.bus import drain

CONSUMER = "test.consumer"

metadata = new_metadata()
tables = define_service_tables(metadata, service="test")
# Append-only on purpose: a unique key here would hide an event applied twice.
effects = Table(
    "effect",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("note", String(50)),
)
# One aggregate that concurrent transactions update, each announcing its new value.
aggregates = Table(
    "aggregate", metadata, Column("id", String(36), primary_key=True), Column("value", String(50))
)


def created(contact_id: uuid.UUID, source: str = "test") -> ContactCreated:
    return ContactCreated(
        contact_id=contact_id, lifecycle_stage="lead", source=source, created_at=datetime.now(UTC)
    )


async def count(database: Database, table: Table) -> int:
    async with database.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def stage(database: Database, event: ContactCreated) -> None:
    async with session_scope(database) as session:
        await tables.outbox.add(session, event)


class Recorder:
    """A handler that appends one row per event it applies, and fails on request."""

    def __init__(
        self,
        *,
        fail_for: set[uuid.UUID] | None = None,
        fail_times: int = 10**6,
        error: Exception | None = None,
    ) -> None:
        self.fail_for = fail_for or set()
        self.fail_times = fail_times
        self.error = error
        self.calls: dict[str, int] = defaultdict(int)

    async def __call__(self, session: AsyncSession, envelope: Envelope) -> None:
        self.calls[envelope.id] += 1
        await session.execute(insert(effects).values(event_id=envelope.id, note="applied"))
        event = envelope.event
        assert isinstance(event, ContactCreated)
        if event.contact_id in self.fail_for and self.calls[envelope.id] <= self.fail_times:
            raise self.error or ValueError(f"cannot handle {event.contact_id}")


def runner_for(
    database: Database, bus: EventBus, handler: Recorder | None, *, max_attempts: int = 5
) -> ConsumerRunner:
    handlers: dict[type[Event], Handler] = {ContactCreated: handler} if handler is not None else {}
    spec = ConsumerSpec(name=CONSUMER, topics=[topics.CONTACTS], handlers=handlers)
    return ConsumerRunner(
        spec, database, tables.consumer_tables, bus, base_backoff_s=0.01, max_attempts=max_attempts
    )


def consumed(outcome: str) -> float:
    return (
        REGISTRY.get_sample_value("crm_events_consumed_total", {"consumer": CONSUMER, "outcome": outcome})
        or 0
    )


def message(contact: uuid.UUID | None = None) -> Message:
    return to_message(created(contact or uuid.uuid4()), source="/crm/test")


async def read(bus: EventBus, count_: int, group: str = CONSUMER) -> tuple[Consumer, list[Record]]:
    consumer = bus.consumer(group, [topics.CONTACTS.name])
    await consumer.start()
    return consumer, await drain(consumer, count=count_)


async def dead_letters(bus: EventBus) -> int:
    return sum((await bus.end_offsets([topics.CONTACTS.dead_letter])).values())
