"""Dead letters are listed and driven again once their cause is fixed, idempotently (`crm dlq`)."""

from __future__ import annotations

import uuid

from shared.bus.embedded import EmbeddedBus
from shared.db import Database
from shared.dlq import RedriveReport, list_dead_letters, redrive_consumer
from tests.shared.support import Recorder, count, effects, message, read, runner_for, tables


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
