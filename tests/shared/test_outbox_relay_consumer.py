"""Outbox, relay and idempotent consumer, each test on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Column, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.bus.base import EventBus, Message, Record
from shared.bus.embedded import EmbeddedBus
from shared.consumer import ConsumerRunner, ConsumerSpec
from shared.db import Database, new_metadata, session_scope
from shared.events import topics
from shared.events.catalog import ContactCreated
from shared.events.envelope import Envelope, from_record, to_message
from shared.events.topics import dead_letter
from shared.outbox import OutboxRelay, slot_rows
from shared.service_tables import define_service_tables
from shared.testing.bus import drain, poll_quietly

metadata = new_metadata()
tables = define_service_tables(metadata, service="test")
effects = Table(
    "effect", metadata, Column("event_id", String(36), primary_key=True), Column("note", String(50))
)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    async with db.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
        await connection.execute(insert(tables.outbox_tables.slots), slot_rows())
    yield db
    await db.dispose()


def _created(contact_id: uuid.UUID, source: str = "test") -> ContactCreated:
    return ContactCreated(
        contact_id=contact_id, lifecycle_stage="lead", source=source, created_at=datetime.now(UTC)
    )


async def _count(database: Database, table: Table) -> int:
    async with database.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def _stage(database: Database, event: ContactCreated) -> None:
    async with session_scope(database) as session:
        await tables.outbox.add(session, event)


# --- outbox -------------------------------------------------------------------------------------


async def test_the_event_row_commits_with_the_state_change_or_not_at_all(database: Database) -> None:
    async with session_scope(database) as session:
        await session.execute(insert(effects).values(event_id="kept", note="state"))
        await tables.outbox.add(session, _created(uuid.uuid4()))

    with pytest.raises(RuntimeError, match="business rule failed"):
        async with session_scope(database) as session:
            await session.execute(insert(effects).values(event_id="dropped", note="state"))
            await tables.outbox.add(session, _created(uuid.uuid4()))
            raise RuntimeError("business rule failed")

    assert await _count(database, effects) == 1
    assert await _count(database, tables.outbox_tables.events) == 1


# --- relay --------------------------------------------------------------------------------------


async def _drain_outbox(relay: OutboxRelay) -> int:
    published = 0
    while count := await relay.publish_batch():
        published += count
    return published


def _per_key_sources(records: list[Record]) -> dict[str, list[str]]:
    by_key: dict[str, list[str]] = defaultdict(list)
    for record in records:
        event = from_record(record).event
        assert isinstance(event, ContactCreated)
        by_key[str(event.contact_id)].append(str(event.source))
    return by_key


async def test_relay_publishes_cloudevents_in_order_per_key(
    database: Database, local_bus: EmbeddedBus
) -> None:
    contacts = [uuid.uuid4() for _ in range(3)]
    for n in range(20):
        for contact in contacts:
            await _stage(database, _created(contact, source=f"step-{n:02d}"))

    relay = OutboxRelay(database, tables.outbox_tables, local_bus, batch_size=7)
    assert await _drain_outbox(relay) == 60
    assert await _count(database, tables.outbox_tables.events) == 0

    async with local_bus.consumer("reader", [topics.CONTACTS]) as consumer:
        records = await drain(consumer, count=60)
    by_key = _per_key_sources(records)
    assert all(by_key[str(c)] == [f"step-{n:02d}" for n in range(20)] for c in contacts)
    first = records[0]
    assert first.key in {str(c) for c in contacts}
    assert first.headers["ce_specversion"] == b"1.0"
    assert first.headers["ce_type"] == b"crm.contact.created"
    assert first.headers["ce_source"] == b"/crm/test"
    assert first.headers["content-type"] == b"application/json"


async def test_two_relays_share_the_outbox_without_duplicates_or_reordering(
    database: Database, local_bus: EmbeddedBus
) -> None:
    contacts = [uuid.uuid4() for _ in range(20)]
    for n in range(15):
        for contact in contacts:
            await _stage(database, _created(contact, source=f"step-{n:02d}"))

    stop = asyncio.Event()
    relays = [
        OutboxRelay(database, tables.outbox_tables, local_bus, batch_size=10, slots_per_batch=3)
        for _ in range(2)
    ]
    workers = [asyncio.create_task(relay.run(stop)) for relay in relays]
    async with local_bus.consumer("reader", [topics.CONTACTS]) as consumer:
        records = await drain(consumer, count=300)
        records += await poll_quietly(consumer, seconds=1)
    stop.set()
    await asyncio.gather(*workers)

    ids = [record.headers["ce_id"] for record in records]
    assert len(ids) == 300
    assert len(set(ids)) == 300, "an event was published twice"
    by_key = _per_key_sources(records)
    assert all(by_key[str(c)] == [f"step-{n:02d}" for n in range(15)] for c in contacts)


async def test_relay_keeps_events_while_the_bus_is_down(database: Database, tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path / "later.sqlite")  # not started: every publish fails as unavailable
    await _stage(database, _created(uuid.uuid4()))
    relay = OutboxRelay(database, tables.outbox_tables, bus)

    stop = asyncio.Event()
    worker = asyncio.create_task(relay.run(stop))
    await asyncio.sleep(0.5)
    assert await _count(database, tables.outbox_tables.events) == 1

    await bus.start()
    async with bus.consumer("reader", [topics.CONTACTS]) as consumer:
        assert len(await drain(consumer, count=1, timeout_s=15)) == 1
    stop.set()
    await worker
    assert await _count(database, tables.outbox_tables.events) == 0
    await bus.stop()


# --- idempotent consumer ------------------------------------------------------------------------


class Recorder:
    """A handler that writes one row per event it applies, and fails on request."""

    def __init__(self, *, fail_for: set[uuid.UUID] | None = None, fail_times: int = 10**6) -> None:
        self.fail_for = fail_for or set()
        self.fail_times = fail_times
        self.calls: dict[str, int] = defaultdict(int)

    async def __call__(self, session: AsyncSession, envelope: Envelope) -> None:
        self.calls[envelope.id] += 1
        await session.execute(insert(effects).values(event_id=envelope.id, note="applied"))
        event = envelope.event
        assert isinstance(event, ContactCreated)
        if event.contact_id in self.fail_for and self.calls[envelope.id] <= self.fail_times:
            raise ValueError(f"cannot handle {event.contact_id}")


def _runner(database: Database, bus: EventBus, handler: Recorder, **options: float) -> ConsumerRunner:
    spec = ConsumerSpec(name="test.consumer", topics=[topics.CONTACTS], handlers={ContactCreated: handler})
    return ConsumerRunner(spec, database, tables.processed_events, bus, base_backoff_s=0.01, **options)  # type: ignore[arg-type]


async def _run_until_dead_lettered_and_applied(
    runner: ConsumerRunner, bus: EmbeddedBus, database: Database
) -> Record:
    """Run the consumer until one record is dead-lettered and one event applied; returns the dead letter."""
    stop = asyncio.Event()
    worker = asyncio.create_task(runner.run(stop, poll_timeout_s=0.1))
    async with bus.consumer("dlq-reader", [dead_letter(topics.CONTACTS)]) as dlq:
        [dead] = await drain(dlq, count=1, timeout_s=15)
    for _ in range(100):
        if await _count(database, effects) == 1:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await worker
    return dead


async def test_a_redelivered_event_takes_effect_once(database: Database, local_bus: EmbeddedBus) -> None:
    message = to_message(_created(uuid.uuid4()), source="/crm/test")
    await local_bus.publish([message, message])  # the same CloudEvent twice, as after a relay retry
    handler = Recorder()
    runner = _runner(database, local_bus, handler)
    async with local_bus.consumer("test.consumer", [topics.CONTACTS]) as consumer:
        first, second = await drain(consumer, count=2)
        assert [await runner.process(first), await runner.process(second)] == ["applied", "duplicate"]
    assert await _count(database, effects) == 1
    assert await _count(database, tables.processed_events) == 1


async def test_a_failed_attempt_leaves_no_partial_writes(database: Database, local_bus: EmbeddedBus) -> None:
    contact = uuid.uuid4()
    await local_bus.publish([to_message(_created(contact), source="/crm/test")])
    handler = Recorder(fail_for={contact}, fail_times=2)
    runner = _runner(database, local_bus, handler)
    async with local_bus.consumer("test.consumer", [topics.CONTACTS]) as consumer:
        await runner.process_batch(consumer, await drain(consumer, count=1))
    assert sum(handler.calls.values()) == 3
    assert await _count(database, effects) == 1


async def test_a_poison_event_goes_to_the_dlq_and_the_consumer_moves_on(
    database: Database, local_bus: EmbeddedBus
) -> None:
    bad, good = uuid.uuid4(), uuid.uuid4()
    await local_bus.publish(
        [to_message(_created(bad), source="/crm/test"), to_message(_created(good), source="/crm/test")]
    )
    handler = Recorder(fail_for={bad})
    runner = _runner(database, local_bus, handler, max_attempts=3)
    dead = await _run_until_dead_lettered_and_applied(runner, local_bus, database)

    assert from_record(dead).event.key == str(bad)
    assert dead.headers["crm_error_type"] == b"ValueError"
    assert str(bad).encode() in dead.headers["crm_error"]
    assert dead.headers["crm_attempts"] == b"3"
    assert dead.headers["crm_original_topic"] == topics.CONTACTS.encode()
    assert max(handler.calls.values()) == 3
    assert await _count(database, effects) == 1  # the good event was applied; the bad one left nothing


async def test_an_unreadable_record_goes_to_the_dlq_at_once(
    database: Database, local_bus: EmbeddedBus
) -> None:
    garbage = Message(
        topic=topics.CONTACTS, key="k", value=b"not json", headers={"ce_type": b"crm.contact.created"}
    )
    await local_bus.publish([garbage])
    handler = Recorder()
    runner = _runner(database, local_bus, handler)
    async with local_bus.consumer("test.consumer", [topics.CONTACTS]) as consumer:
        await runner.process_batch(consumer, await drain(consumer, count=1))
    async with local_bus.consumer("dlq-reader", [dead_letter(topics.CONTACTS)]) as dlq:
        [dead] = await drain(dlq, count=1)
    assert dead.value == b"not json"
    assert dead.headers["crm_error_type"] == b"EventParseError"
    assert handler.calls == {}


async def test_an_event_with_a_malformed_schema_version_is_dead_lettered_not_retried_forever(
    database: Database, local_bus: EmbeddedBus
) -> None:
    good = to_message(_created(uuid.uuid4()), source="/crm/test")
    bad = Message(topic=good.topic, key=good.key, value=b'{"schema_version": "two"}', headers=good.headers)
    follower = to_message(_created(uuid.uuid4()), source="/crm/test")
    await local_bus.publish([bad, follower])
    handler = Recorder()
    runner = _runner(database, local_bus, handler)
    dead = await _run_until_dead_lettered_and_applied(runner, local_bus, database)
    assert dead.headers["crm_error_type"] == b"EventParseError"
    assert b"schema_version" in dead.headers["crm_error"]
    assert await _count(database, effects) == 1, "the consumer must move on past the bad record"
