"""Dead letters are listed and driven again once their cause is fixed, idempotently (`crm dlq`)."""

from __future__ import annotations

import uuid

from shared.bus.embedded import EmbeddedBus
from shared.consumer import ConsumerRunner, ConsumerSpec
from shared.db import Database
from shared.dlq import RedriveReport, list_dead_letters, redrive_consumer
from shared.events import topics
from shared.events.catalog import ContactCreated
from shared.replay import replay_consumer
from tests.shared.support import CONSUMER, Recorder, count, effects, message, read, runner_for, tables


async def test_a_dead_letter_is_listed_and_redriven_once_its_cause_is_fixed(
    database: Database, local_bus: EmbeddedBus
) -> None:
    bad, later = uuid.uuid4(), uuid.uuid4()
    await local_bus.publish([message(bad), message(later)])
    handler = Recorder(fail_for={bad})
    runner = runner_for(database, local_bus, handler, max_attempts=2)
    consumer, records = await read(local_bus, 2)
    await runner.process_batch(consumer, records)
    await consumer.stop()
    assert await count(database, effects) == 1

    [letter] = await list_dead_letters(database, tables.outbox_tables, [runner])
    assert (letter.kind, letter.consumer, letter.pending) == ("consumer", runner.spec.name, True)
    assert letter.event_id == records[0].headers["ce_id"].decode()
    assert "ValueError" in letter.error

    still_broken = RedriveReport()
    await redrive_consumer(runner, still_broken)
    assert still_broken.stopped_at is not None
    assert still_broken.applied == 0
    assert (await list_dead_letters(database, tables.outbox_tables, [runner]))[0].pending

    handler.fail_for.clear()  # the cause is fixed (a new build, say)
    first, second = RedriveReport(), RedriveReport()
    await redrive_consumer(runner, first)
    await redrive_consumer(runner, second)
    assert (first.applied, second.applied, second.skipped) == (1, 0, 0)
    assert await count(database, effects) == 2
    [done] = await list_dead_letters(database, tables.outbox_tables, [runner])
    assert not done.pending


async def test_a_replay_leaves_redriven_dead_letters_settled(
    database: Database, local_bus: EmbeddedBus
) -> None:
    bad = uuid.uuid4()
    await local_bus.publish([message(bad), message()])
    handler = Recorder(fail_for={bad})
    spec = ConsumerSpec(
        name=CONSUMER, topics=[topics.CONTACTS], handlers={ContactCreated: handler}, owns=[effects]
    )
    runner = ConsumerRunner(
        spec, database, tables.consumer_tables, local_bus, base_backoff_s=0.01, max_attempts=1
    )
    consumer, records = await read(local_bus, 2)
    await runner.process_batch(consumer, records)
    await consumer.stop()
    handler.fail_for.clear()
    await redrive_consumer(runner, RedriveReport())

    assert await replay_consumer(runner) == 2  # the view is rebuilt from the originals
    assert await count(database, effects) == 2
    [letter] = await list_dead_letters(database, tables.outbox_tables, [runner])
    assert not letter.pending, "a replay must not make an old dead letter pending again"
    again = RedriveReport()
    await redrive_consumer(runner, again)
    assert (again.applied, again.skipped) == (0, 0)
    assert await count(database, effects) == 2
