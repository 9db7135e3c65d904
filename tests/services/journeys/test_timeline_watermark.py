"""How complete a timeline is: the watermark covers every event once the consumer has caught up, never
an event it has not applied, on either bus and either database; a replay starts it afresh."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from services.journeys.timeline.handlers import TIMELINE_CONSUMER
from shared.bus.base import EventBus, PartitionOffsets, Record
from shared.bus.embedded import EmbeddedBus
from shared.bus.reading import read_to_end
from shared.consumer import ConsumerRunner
from shared.db import utc_now
from shared.events import topics
from shared.events.catalog import ContactCreated
from shared.events.envelope import to_message
from shared.runtime import ServiceRuntime
from tests.services.journeys.support import journeys_api

TOPICS = TIMELINE_CONSUMER.topic_names


def _timeline_runner(runtime: ServiceRuntime) -> ConsumerRunner:
    return next(r for r in runtime.consumer_runners() if r.spec.name == TIMELINE_CONSUMER.name)


async def _settled_so_far(runner: ConsumerRunner, bus: EventBus) -> None:
    """This test's database takes over at the topics' current ends: on a broker shared with other runs
    the topics already hold records, which this view has not seen and will not be asked about. On a
    fresh broker the topics are made first, as the product makes them."""
    await bus.ensure_topics([config for topic in runner.spec.topics for config in topic.bus_topics()])
    await runner.set_positions(await runner.bus.end_offsets(TOPICS))


async def _answer(client: httpx.AsyncClient, contact_id: uuid.UUID) -> dict[str, Any]:
    response = await client.get(f"/v1/contacts/{contact_id}/timeline")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _contacts_watermark(body: dict[str, Any]) -> datetime:
    instant = _instant(body["complete_before_by_topic"][topics.CONTACTS.name])
    assert instant is not None, body
    return instant


async def _apply_up_to(runner: ConsumerRunner, bus: EventBus, ends: PartitionOffsets) -> list[Record]:
    """Apply the consumer's records below `ends` through its runner, as a live member would."""
    applied: list[Record] = []
    async for reader, records in read_to_end(bus, TOPICS, group_prefix="test.timeline", ends=ends):
        applied += await runner.handle(reader, records)
    return applied


def _created(contact_id: uuid.UUID) -> Any:
    event = ContactCreated(contact_id=contact_id, lifecycle_stage="lead", created_at=datetime.now(UTC))
    return to_message(event, source="/crm/contacts")


async def test_the_watermark_passes_the_last_event_once_the_running_consumer_caught_up(
    database_url: str, bus: EventBus, tmp_path: Path
) -> None:
    ada = uuid.uuid4()
    async with journeys_api(database_url, bus, tmp_path, consumers=False) as (client, runtime):
        runner = _timeline_runner(runtime)
        runner.watermark_every_s = 0.1
        await _settled_so_far(runner, bus)
        await bus.publish([_created(ada)])
        published = utc_now()  # the bus accepted the event before this
        stop = asyncio.Event()
        worker = asyncio.create_task(runner.run(stop, poll_timeout_s=0.1))
        try:
            deadline = time.monotonic() + 60
            while True:
                body = await _answer(client, ada)
                if (instant := _instant(body["complete_before"])) is not None and instant > published:
                    break
                assert time.monotonic() < deadline, f"the watermark did not pass the event: {body}"
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await worker

    assert [item["event_type"] for item in body["items"]] == ["crm.contact.created"]
    by_topic = {name: _instant(value) for name, value in body["complete_before_by_topic"].items()}
    assert set(by_topic) == {
        topics.CONTACTS.name,
        topics.TOUCHPOINTS.name,
        topics.DEALS.name,
        topics.REFERRALS.name,
    }
    assert all(instant is not None and instant > published for instant in by_topic.values())
    assert _instant(body["complete_before"]) == min(i for i in by_topic.values() if i is not None)


async def test_the_watermark_never_covers_an_event_the_consumer_has_not_applied(
    database_url: str, bus: EventBus, tmp_path: Path
) -> None:
    ada, bea = uuid.uuid4(), uuid.uuid4()
    # No consumer running: the test applies records and runs the caught-up check itself, when it chooses.
    async with journeys_api(database_url, bus, tmp_path, consumers=False) as (client, runtime):
        runner = _timeline_runner(runtime)
        fresh = await _answer(client, ada)
        await _settled_so_far(runner, bus)
        await runner.record_watermarks()
        start = _contacts_watermark(await _answer(client, ada))

        await bus.publish([_created(ada)])
        first_ends = await bus.end_offsets(TOPICS)
        before_second = utc_now()
        await bus.publish([_created(bea)])  # published, not applied: a stopped or lagging consumer
        applied = await _apply_up_to(runner, bus, first_ends)
        await runner.record_watermarks()  # the consumer checks while the second event waits
        await runner.record_watermarks()
        behind_ada, behind_bea = await _answer(client, ada), await _answer(client, bea)

        await _apply_up_to(runner, bus, await bus.end_offsets(TOPICS))
        after_second = utc_now()
        await runner.record_watermarks()
        caught_up = await _answer(client, bea)

        await runner.reset()  # as `crm replay` does before it rebuilds the view
        replayed = await _answer(client, bea)

    assert (fresh["complete_before"], fresh["complete_before_by_topic"]) == (
        None,
        dict.fromkeys(TOPICS),
    )
    assert [item["event_type"] for item in behind_ada["items"]] == ["crm.contact.created"]
    assert behind_bea["items"] == []
    behind = _contacts_watermark(behind_ada)
    assert start <= behind <= before_second, "it claims an event it has not applied"
    assert _instant(behind_ada["complete_before"]) == behind  # the earliest over the topics
    # Domain topics are created with LogAppendTime, so each record says its time is its append time.
    assert applied
    assert all(record.log_append_time for record in applied)
    if isinstance(bus, EmbeddedBus):
        # Behind, it moves to the append time of the last record it applied (embedded: one partition).
        [first] = [record for record in applied if record.topic == topics.CONTACTS.name]
        assert behind == datetime.fromtimestamp(first.timestamp_ms / 1000, UTC)
    assert [item["event_type"] for item in caught_up["items"]] == ["crm.contact.created"]
    assert _contacts_watermark(caught_up) >= after_second
    assert replayed["complete_before_by_topic"] == dict.fromkeys(TOPICS)


async def test_a_partition_the_consumer_never_caught_up_with_leaves_its_topic_unknown(
    database_url: str, bus: EventBus, tmp_path: Path
) -> None:
    ada = uuid.uuid4()
    async with journeys_api(database_url, bus, tmp_path, consumers=False) as (client, runtime):
        runner = _timeline_runner(runtime)
        await _settled_so_far(runner, bus)
        await bus.publish([_created(ada)])
        await runner.record_watermarks()  # the first check: the event's partition is behind
        body = await _answer(client, ada)

    assert body["items"] == []
    # On Kafka the topic's other partitions are caught up; one partition unknown makes the topic unknown.
    assert body["complete_before_by_topic"][topics.CONTACTS.name] is None
    assert body["complete_before_by_topic"][topics.TOUCHPOINTS.name] is not None
    assert body["complete_before"] is None
