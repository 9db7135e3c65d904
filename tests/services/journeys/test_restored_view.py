"""A view's database restored to an earlier state (a backup) while its consumer group's offsets on the
bus went on: the consumer reads again from the positions the database keeps, so nothing the restore
lost stays lost. On the embedded bus and on Kafka, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

from services.journeys.timeline.handlers import TIMELINE_CONSUMER
from shared.bus.base import EventBus, PartitionOffsets, Record
from shared.consumer import ConsumerRunner
from shared.events import topics
from shared.events.catalog import ContactCreated
from shared.events.envelope import to_message
from shared.testing.consumers import wait_until_caught_up
from tests.services.journeys.support import journeys_api

TOPICS = [topics.CONTACTS.name, topics.TOUCHPOINTS.name]


async def _group_reads_to(bus: EventBus, group: str, ends: PartitionOffsets) -> None:
    """What a member of `group` did before the database was restored: it read up to `ends` and
    committed. (Committed directly: what it read does not matter, only where the group stands.)"""
    async with bus.consumer(group, TOPICS) as member:
        await member.poll(timeout_s=2.0, max_records=1)  # joins the group: a commit needs its partitions
        await member.commit(
            [
                Record(
                    topic=topic,
                    partition=partition,
                    offset=end - 1,
                    key=None,
                    value=b"",
                    headers={},
                    timestamp_ms=0,
                )
                for (topic, partition), end in ends.items()
                if end
            ]
        )


async def test_a_view_restored_behind_its_group_reads_again_what_it_lost(
    database_url: str, bus: EventBus, tmp_path: Path
) -> None:
    people = [uuid.uuid4() for _ in range(6)]
    async with journeys_api(database_url, bus, tmp_path, consumers=False) as (client, runtime):
        runner: ConsumerRunner = next(
            r for r in runtime.consumer_runners() if r.spec.name == TIMELINE_CONSUMER.name
        )
        await bus.ensure_topics([config for topic in runner.spec.topics for config in topic.bus_topics()])
        # The restored database: positions where these events begin (the topics may hold older ones).
        await runner.set_positions(await bus.end_offsets(TOPICS))
        created = [
            ContactCreated(contact_id=person, lifecycle_stage="lead", created_at=datetime.now(UTC))
            for person in people
        ]
        await bus.publish([to_message(event, source="/crm/contacts") for event in created])
        # Before the restore the group had read and committed them all.
        await _group_reads_to(bus, runner.spec.name, await bus.end_offsets(TOPICS))

        stop = asyncio.Event()
        worker = asyncio.create_task(runner.run(stop, poll_timeout_s=0.1))
        try:
            await wait_until_caught_up(
                runtime.database, runtime.definition.consumer_tables, runner.spec.name, bus, TOPICS
            )
        finally:
            stop.set()
            await worker
        timelines = [
            (await client.get(f"/v1/contacts/{person}/timeline")).json()["items"] for person in people
        ]

    assert [[item["event_type"] for item in items] for items in timelines] == [["crm.contact.created"]] * 6
