"""The idempotent consumer, each test on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import uuid
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.bus.base import EventBus, Message
from shared.bus.embedded import EmbeddedBus
from shared.consumer import ConsumerRunner, ConsumerSpec, HandlerError, classify
from shared.db import Database
from shared.events import topics
from shared.events.catalog import ContactCreated
from shared.events.envelope import from_record, to_message
from shared.testing.bus import drain
from shared.testing.consumers import wait_until_caught_up
from tests.shared.support import (
    CONSUMER,
    Recorder,
    consumed,
    count,
    created,
    dead_letters,
    effects,
    message,
    read,
    runner_for,
    tables,
)


async def test_an_event_published_twice_takes_effect_once(database: Database, local_bus: EmbeddedBus) -> None:
    twice = message()
    await local_bus.publish([twice, twice])  # the same CloudEvent at two offsets, as after a relay retry
    runner = runner_for(database, local_bus, Recorder())
    duplicates_before = consumed("duplicate")
    consumer, records = await read(local_bus, 2)
    for record in records:  # one batch each, so the second is checked against the committed first
        await runner.handle(consumer, [record])
    await consumer.stop()
    assert await count(database, effects) == 1
    assert await count(database, tables.consumer_tables.processed) == 1
    assert consumed("duplicate") == duplicates_before + 1


async def test_a_redelivered_record_is_skipped_by_position_after_its_id_is_forgotten(
    database: Database, local_bus: EmbeddedBus
) -> None:
    await local_bus.publish([message()])
    runner = runner_for(database, local_bus, Recorder())
    runner.dedup_window = runner.dedup_window * 0  # forget event ids at once
    consumer, [record] = await read(local_bus, 1)
    await runner.handle(consumer, [record])
    assert await runner.prune() == 1
    await runner.handle(consumer, [record])  # delivered again, e.g. after a crash before the bus commit
    await consumer.stop()
    assert await count(database, effects) == 1
    positions = tables.consumer_tables.positions
    async with database.sessionmaker() as session:
        stored = (await session.execute(select(positions.c.topic, positions.c.next_offset))).all()
    assert [tuple(row) for row in stored] == [(topics.CONTACTS.name, record.offset + 1)]


async def test_a_batch_is_applied_in_one_go_and_a_failed_attempt_leaves_nothing(
    database: Database, local_bus: EmbeddedBus
) -> None:
    flaky = uuid.uuid4()
    await local_bus.publish([message(), message(flaky), message()])
    handler = Recorder(fail_for={flaky}, fail_times=2)
    runner = runner_for(database, local_bus, handler)
    consumer, records = await read(local_bus, 3)
    await runner.process_batch(consumer, records)
    await consumer.stop()
    flaky_calls = [
        calls for event_id, calls in handler.calls.items() if event_id == records[1].headers["ce_id"].decode()
    ]
    assert flaky_calls == [3]  # failed with the batch, failed alone, then applied
    assert await count(database, effects) == 3


async def test_a_poison_event_goes_to_the_dlq_and_the_consumer_moves_on(
    database: Database, local_bus: EmbeddedBus
) -> None:
    bad, good = uuid.uuid4(), uuid.uuid4()
    await local_bus.publish([message(bad), message(good)])
    handler = Recorder(fail_for={bad})
    runner = runner_for(database, local_bus, handler, max_attempts=3)
    consumer, records = await read(local_bus, 2)
    await runner.process_batch(consumer, records)
    await consumer.stop()

    async with local_bus.consumer("dlq-reader", [topics.CONTACTS.dead_letter]) as dlq:
        [dead] = await drain(dlq, count=1)
    assert from_record(dead).event.key == str(bad)
    assert dead.headers["crm_error_type"] == b"ValueError"
    assert str(bad).encode() in dead.headers["crm_error"]
    assert dead.headers["crm_attempts"] == b"3"
    assert dead.headers["crm_consumer"] == CONSUMER.encode()
    assert dead.headers["crm_original_topic"] == topics.CONTACTS.name.encode()
    assert await count(database, effects) == 1  # the good event was applied; the bad one left nothing


async def test_an_unreadable_record_goes_to_the_dlq_at_once(
    database: Database, local_bus: EmbeddedBus
) -> None:
    garbage = Message(
        topic=topics.CONTACTS.name, key="k", value=b"not json", headers={"ce_type": b"crm.contact.created"}
    )
    good = message()
    bad_version = Message(
        topic=good.topic, key=good.key, value=b'{"schema_version": "two"}', headers=good.headers
    )
    await local_bus.publish([garbage, bad_version, message()])
    handler = Recorder()
    runner = runner_for(database, local_bus, handler)
    consumer, records = await read(local_bus, 3)
    await runner.process_batch(consumer, records)
    await consumer.stop()
    async with local_bus.consumer("dlq-reader", [topics.CONTACTS.dead_letter]) as dlq:
        dead = await drain(dlq, count=2)
    assert [record.headers["crm_error_type"] for record in dead] == [b"EventParseError"] * 2
    assert dead[0].value == b"not json"
    assert b"schema_version" in dead[1].headers["crm_error"]
    assert sum(handler.calls.values()) == 1  # the consumer moved on past both


def _newer(kind: str) -> Message:
    base = message()
    if kind == "version":
        payload = {**json.loads(base.value), "schema_version": ContactCreated.current_version() + 1}
        return Message(
            topic=base.topic, key=base.key, value=json.dumps(payload).encode(), headers=base.headers
        )
    return Message(
        topic=base.topic,
        key=base.key,
        value=base.value,
        headers={**base.headers, "ce_type": b"crm.contact.teleported"},
    )


@pytest.mark.parametrize("kind", ["version", "type"])
async def test_an_event_newer_than_this_build_is_held_not_acknowledged(
    database: Database, local_bus: EmbeddedBus, kind: str
) -> None:
    before, after = message(), message()
    newer = _newer(kind)
    await local_bus.publish([before, newer, after])
    runner = runner_for(database, local_bus, Recorder())
    consumer, records = await read(local_bus, 3)
    await runner.process_batch(consumer, records)
    gauge = {"consumer": CONSUMER, "topic": topics.CONTACTS.name, "partition": "0"}
    assert REGISTRY.get_sample_value("crm_consumer_waiting_for_upgrade", gauge) == 1
    assert runner.waiting
    await consumer.stop()

    assert await count(database, effects) == 1, "only the event before the newer one may be applied"
    assert await dead_letters(local_bus) == 0, "a newer event must never be dead-lettered"
    # Not acknowledged: the next member of the group starts at the held record.
    successor, [first, *_] = await read(local_bus, 2)
    await successor.stop()
    assert first.headers["ce_id"] == newer.headers["ce_id"]


async def test_a_known_type_without_a_handler_is_skipped_and_acknowledged(
    database: Database, local_bus: EmbeddedBus
) -> None:
    await local_bus.publish([message()])
    runner = runner_for(database, local_bus, None)
    skipped_before = consumed("skipped")
    consumer, records = await read(local_bus, 1)
    await runner.process_batch(consumer, records)
    await consumer.stop()
    assert consumed("skipped") == skipped_before + 1
    positions = tables.consumer_tables.positions
    async with database.sessionmaker() as session:
        assert await session.scalar(select(positions.c.next_offset)) == records[0].offset + 1


class SerializationFailure(Exception):
    sqlstate = "40001"


async def test_a_transient_conflict_is_retried_beyond_the_attempt_limit(
    database: Database, local_bus: EmbeddedBus
) -> None:
    contact = uuid.uuid4()
    await local_bus.publish([message(contact)])
    conflict = DBAPIError("UPDATE ...", {}, SerializationFailure("could not serialize access"))
    handler = Recorder(fail_for={contact}, fail_times=6, error=conflict)
    runner = runner_for(database, local_bus, handler, max_attempts=2)
    consumer, records = await read(local_bus, 1)
    await runner.process_batch(consumer, records)
    await consumer.stop()
    assert list(handler.calls.values()) == [7]
    assert await count(database, effects) == 1
    assert await dead_letters(local_bus) == 0


async def test_a_timeout_in_the_handlers_own_work_is_bounded_not_an_outage(
    database: Database, local_bus: EmbeddedBus
) -> None:
    contact = uuid.uuid4()
    await local_bus.publish([message(contact)])
    handler = Recorder(fail_for={contact}, error=TimeoutError("the CRM's mail server did not answer"))
    runner = runner_for(database, local_bus, handler, max_attempts=2)
    consumer, records = await asyncio.wait_for(read(local_bus, 1), 10)
    await asyncio.wait_for(runner.process_batch(consumer, records), 30)
    await consumer.stop()
    assert await dead_letters(local_bus) == 1


def _raised_by_handler(error: BaseException) -> HandlerError:
    wrapped = HandlerError(str(error))
    wrapped.__cause__ = error
    return wrapped


def test_errors_are_classified_by_what_they_mean_for_the_event() -> None:
    def sql_error(sqlstate: str) -> DBAPIError:
        orig = type("PgError", (Exception,), {"sqlstate": sqlstate})("x")
        return DBAPIError("SELECT 1", {}, orig)

    for sqlstate in ("40001", "40P01", "55P03"):
        assert classify(sql_error(sqlstate)) == "transient"
        assert classify(_raised_by_handler(sql_error(sqlstate))) == "transient"
    for sqlstate in ("08006", "57P01", "53300"):
        assert classify(sql_error(sqlstate)) == "outage"
    assert classify(OperationalError("BEGIN", {}, Exception("database is locked"))) == "outage"
    assert classify(ConnectionRefusedError()) == "outage"  # the runner's own connection
    assert classify(TimeoutError()) == "outage"
    assert classify(_raised_by_handler(TimeoutError())) == "failure"  # the handler's own call
    assert classify(_raised_by_handler(ConnectionError())) == "failure"
    assert classify(_raised_by_handler(ValueError())) == "failure"
    assert classify(sql_error("23505")) == "failure"
    assert classify(PoolTimeout("QueuePool limit reached")) == "outage"

    def sqlite_error(name: str, text: str) -> OperationalError:
        orig = sqlite3.OperationalError(text)
        orig.sqlite_errorname = name
        return OperationalError("INSERT ...", {}, orig)

    assert classify(sqlite_error("SQLITE_BUSY", "database is locked")) == "outage"
    assert classify(_raised_by_handler(sqlite_error("SQLITE_ERROR", "no such table: view"))) == "failure"


async def test_a_dead_letter_too_large_with_its_error_goes_without_the_error_text(
    database: Database, tmp_path: Path
) -> None:
    bus = EmbeddedBus(tmp_path / "small.sqlite", max_message_bytes=4_000)
    await bus.start()
    contact = uuid.uuid4()
    await bus.publish([to_message(created(contact, source="s" * 2_500), source="/crm/test")])
    handler = Recorder(fail_for={contact}, error=ValueError("e" * 1_900))
    runner = runner_for(database, bus, handler, max_attempts=1)
    consumer, records = await read(bus, 1)
    await runner.process_batch(consumer, records)
    await consumer.stop()
    async with bus.consumer("dlq-reader", [topics.CONTACTS.dead_letter]) as dlq:
        [dead] = await drain(dlq, count=1)
    await bus.stop()
    assert dead.value == records[0].value
    assert dead.headers["crm_consumer"] == CONSUMER.encode()
    assert "crm_error" not in dead.headers


async def test_a_running_consumer_commits_its_bus_position_by_the_time_it_stops(
    database: Database, local_bus: EmbeddedBus
) -> None:
    await local_bus.publish([message() for _ in range(5)])
    runner = runner_for(database, local_bus, Recorder())
    runner.commit_every_s = 3600  # only the idle and the final commit can move it
    stop = asyncio.Event()
    worker = asyncio.create_task(runner.run(stop, poll_timeout_s=0.05))
    await wait_until_caught_up(database, tables.consumer_tables, CONSUMER, local_bus, [topics.CONTACTS.name])
    stop.set()
    await worker
    latest = message()
    await local_bus.publish([latest])
    successor, [first] = await read(local_bus, 1)
    await successor.stop()
    assert first.headers["ce_id"] == latest.headers["ce_id"], "the group restarted behind its last commit"


async def test_stopping_ends_a_waiting_poll_without_waiting_out_its_timeout(
    database: Database, bus: EventBus, topic: str
) -> None:
    """A service stops at once, however long its idle consumers would poll: a stop that waited for the
    poll to time out held up every shutdown (and every test's app) by up to the poll timeout."""
    definition = dataclasses.replace(topics.CONTACTS, name=topic)  # a topic and group of its own
    group = f"test.stopping.{uuid.uuid4().hex[:8]}"
    spec = ConsumerSpec(name=group, topics=[definition], handlers={ContactCreated: Recorder()})
    runner = ConsumerRunner(spec, database, tables.consumer_tables, bus)
    await bus.ensure_topics(definition.bus_topics())
    await bus.publish([dataclasses.replace(message(), topic=topic)])
    stop = asyncio.Event()
    worker = asyncio.create_task(runner.run(stop, poll_timeout_s=300))
    await wait_until_caught_up(database, tables.consumer_tables, group, bus, [topic])
    stop.set()  # the runner is now in a poll that would wait five minutes for a record
    await asyncio.wait_for(worker, timeout=15)
