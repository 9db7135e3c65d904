"""Outbox and relay, each test on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import insert, select, text, update

from shared.bus.base import BusUnavailable, Record
from shared.bus.embedded import EmbeddedBus
from shared.db import Database, session_scope
from shared.dlq import RedriveReport, requeue_refused
from shared.events import topics
from shared.events.catalog import ContactCreated
from shared.events.envelope import from_record
from shared.outbox import OutboxRelay
from shared.testing.bus import drain
from tests.shared.support import aggregates, count, created, effects, stage, tables

OUTBOX = tables.outbox_tables


async def _drain_outbox(relay: OutboxRelay) -> int:
    settled = 0
    for _ in range(1000):  # bounded: a row that never settles fails the test instead of hanging it
        if not (batch := await relay.publish_batch()):
            return settled
        settled += batch
    raise AssertionError("the outbox never emptied")


def _per_key_sources(records: list[Record]) -> dict[str, list[str]]:
    by_key: dict[str, list[str]] = defaultdict(list)
    for record in records:
        event = from_record(record).event
        assert isinstance(event, ContactCreated)
        by_key[str(event.contact_id)].append(str(event.source))
    return by_key


async def test_the_event_row_commits_with_the_state_change_or_not_at_all(database: Database) -> None:
    async with session_scope(database) as session:
        await session.execute(insert(effects).values(event_id="kept", note="state"))
        await tables.outbox.add(session, created(uuid.uuid4()))

    with pytest.raises(RuntimeError, match="business rule failed"):
        async with session_scope(database) as session:
            await session.execute(insert(effects).values(event_id="dropped", note="state"))
            await tables.outbox.add(session, created(uuid.uuid4()))
            raise RuntimeError("business rule failed")

    assert await count(database, effects) == 1
    assert await count(database, OUTBOX.events) == 1


async def test_relay_publishes_cloudevents_in_order_per_key(
    database: Database, local_bus: EmbeddedBus
) -> None:
    contacts = [uuid.uuid4() for _ in range(3)]
    for n in range(20):
        for contact in contacts:
            await stage(database, created(contact, source=f"step-{n:02d}"))

    relay = OutboxRelay(database, OUTBOX, local_bus, batch_size=7)
    assert await _drain_outbox(relay) == 60
    assert await count(database, OUTBOX.events) == 0

    async with local_bus.consumer("reader", [topics.CONTACTS.name]) as consumer:
        records = await drain(consumer, count=60)
    by_key = _per_key_sources(records)
    assert all(by_key[str(c)] == [f"step-{n:02d}" for n in range(20)] for c in contacts)
    first = records[0]
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
            await stage(database, created(contact, source=f"step-{n:02d}"))

    stop = asyncio.Event()
    relays = [OutboxRelay(database, OUTBOX, local_bus, batch_size=10, slots_per_batch=3) for _ in range(2)]
    workers = [asyncio.create_task(relay.run(stop)) for relay in relays]
    async with local_bus.consumer("reader", [topics.CONTACTS.name]) as consumer:
        records = await drain(consumer, count=300)
        stop.set()
        await asyncio.gather(*workers)
        assert await count(database, OUTBOX.events) == 0  # every row settled: nothing more can come
        records += await consumer.poll(timeout_s=0)

    ids = [record.headers["ce_id"] for record in records]
    assert len(ids) == 300
    assert len(set(ids)) == 300, "an event was published twice"
    by_key = _per_key_sources(records)
    assert all(by_key[str(c)] == [f"step-{n:02d}" for n in range(15)] for c in contacts)


async def test_a_failed_publish_keeps_every_row(database: Database, tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path / "events.sqlite")
    await bus.start()
    relay = OutboxRelay(database, OUTBOX, bus)
    assert await relay.publish_batch() == 0  # topics exist; the next failure is the publish itself
    await bus.stop()
    await stage(database, created(uuid.uuid4()))

    with pytest.raises(BusUnavailable):
        await relay.publish_batch()
    assert await count(database, OUTBOX.events) == 1, "a row was dropped although the bus never took it"

    await bus.start()
    assert await relay.publish_batch() == 1
    assert await count(database, OUTBOX.events) == 0
    async with bus.consumer("reader", [topics.CONTACTS.name]) as consumer:
        assert len(await drain(consumer, count=1)) == 1
    await bus.stop()


async def test_the_relay_waits_out_a_bus_outage_and_then_publishes(
    database: Database, tmp_path: Path
) -> None:
    bus = EmbeddedBus(tmp_path / "later.sqlite")  # not started: every call fails as unavailable
    await stage(database, created(uuid.uuid4()))
    stop = asyncio.Event()
    worker = asyncio.create_task(OutboxRelay(database, OUTBOX, bus).run(stop))
    await bus.start()
    async with bus.consumer("reader", [topics.CONTACTS.name]) as consumer:
        assert len(await drain(consumer, count=1, timeout_s=15)) == 1
    stop.set()
    await worker
    assert await count(database, OUTBOX.events) == 0
    await bus.stop()


async def test_a_refused_event_is_moved_aside_and_the_slot_keeps_flowing(
    database: Database, tmp_path: Path
) -> None:
    bus = EmbeddedBus(tmp_path / "events.sqlite", max_message_bytes=4_000)
    await bus.start()
    contact = uuid.uuid4()
    await stage(database, created(contact, source="a1"))
    await stage(database, created(contact, source="a2" + "x" * 5_000))  # larger than the bus takes
    await stage(database, created(contact, source="a3"))
    refused_before = REGISTRY.get_sample_value("crm_outbox_refused_total", {"service": "test"}) or 0

    assert await _drain_outbox(OutboxRelay(database, OUTBOX, bus, service="test")) == 3
    assert await count(database, OUTBOX.events) == 0
    async with session_scope(database) as session:
        [dead] = (await session.execute(select(OUTBOX.dead))).all()
    assert "exceeds" in dead.error
    assert REGISTRY.get_sample_value("crm_outbox_refused_total", {"service": "test"}) == refused_before + 1

    async with bus.consumer("reader", [topics.CONTACTS.name]) as consumer:
        records = await drain(consumer, count=2)
        assert _per_key_sources(records)[str(contact)] == ["a1", "a3"]

        # Once the cause is fixed, the refused event is requeued (once, however often this runs).
        bus.max_message_bytes = 1_000_000
        first, second = RedriveReport(), RedriveReport()
        await requeue_refused(database, OUTBOX, first)
        await requeue_refused(database, OUTBOX, second)
        assert (first.requeued, second.requeued) == (1, 0)
        assert await _drain_outbox(OutboxRelay(database, OUTBOX, bus)) == 1
        [late] = await drain(consumer, count=1)
    assert _per_key_sources([late])[str(contact)][0].startswith("a2")
    assert await count(database, OUTBOX.dead) == 0
    await bus.stop()


async def test_an_in_process_commit_wakes_the_relay(database: Database, local_bus: EmbeddedBus) -> None:
    stop = asyncio.Event()
    # Idle polling so slow that only the wake-up on commit can deliver within the drain's timeout.
    relay = OutboxRelay(database, OUTBOX, local_bus, idle_interval_s=60)
    worker = asyncio.create_task(relay.run(stop))
    async with local_bus.consumer("reader", [topics.CONTACTS.name]) as consumer:
        for _ in range(1000):  # until the relay found nothing to do and went to sleep
            if relay.idle_waits:
                break
            await asyncio.sleep(0.01)
        assert relay.idle_waits, "the relay never went idle"
        await stage(database, created(uuid.uuid4()))
        assert len(await drain(consumer, count=1, timeout_s=10)) == 1
    stop.set()
    await worker


# --- order per key under concurrent transactions (PostgreSQL; SQLite serializes every writer) ----------


async def _lock_waiters(database: Database) -> int:
    async with database.sessionmaker() as session:
        waiting = await session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return int(waiting or 0)


@pytest.mark.postgres
async def test_one_keys_events_reach_the_topic_in_commit_order(
    pg_database: Database, local_bus: EmbeddedBus
) -> None:
    database = pg_database
    contact = uuid.uuid4()
    async with database.sessionmaker() as first:
        await tables.outbox.add(first, created(contact, source="first"))  # staged, not committed
        second = asyncio.create_task(stage(database, created(contact, source="second")))
        # The second writer either commits at once (nothing orders it) or waits for the first.
        for _ in range(500):
            if second.done() or await _lock_waiters(database):
                break
            await asyncio.sleep(0.02)
        commit_order = ["second", "first"] if second.done() else ["first", "second"]
        await first.commit()
    await second

    await _drain_outbox(OutboxRelay(database, OUTBOX, local_bus))
    async with local_bus.consumer("reader", [topics.CONTACTS.name]) as consumer:
        records = await drain(consumer, count=2)
    assert _per_key_sources(records)[str(contact)] == commit_order == ["first", "second"]


@pytest.mark.postgres
async def test_concurrent_updates_of_one_aggregate_announce_its_final_state_last(
    pg_database: Database, local_bus: EmbeddedBus
) -> None:
    database = pg_database
    contact = uuid.uuid4()
    async with session_scope(database) as session:
        await session.execute(insert(aggregates).values(id=str(contact), value="initial"))

    async def update_and_announce(value: str) -> None:
        # Announce first, update after: the order that inverts commit and insert order when nothing
        # but the aggregate's row lock orders the writers.
        async with session_scope(database) as session:
            await tables.outbox.add(session, created(contact, source=value))
            await asyncio.sleep(0)
            await session.execute(
                update(aggregates).where(aggregates.c.id == str(contact)).values(value=value)
            )

    await asyncio.gather(*(update_and_announce(f"v{n:02d}") for n in range(30)))
    await _drain_outbox(OutboxRelay(database, OUTBOX, local_bus))
    async with local_bus.consumer("reader", [topics.CONTACTS.name]) as consumer:
        records = await drain(consumer, count=30)
    async with database.sessionmaker() as session:
        final = await session.scalar(select(aggregates.c.value))
    assert _per_key_sources(records)[str(contact)][-1] == final
