"""Rebuild a consumer's view from the start of its topics.

The view's tables, positions and event ids are emptied in one transaction, then every record of the
consumer's topics is applied again through the same code path as live consumption. Run it while that
consumer is stopped (`CRM_<SERVICE>_RUN_CONSUMERS=false`, or the service down): a live member would
move the positions ahead of the rebuild.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from shared.consumer import ConsumerRunner

Progress = Callable[[int, int], None]


class ReplayStuck(RuntimeError):
    """The rebuild cannot reach the end of its topics (an event this build does not understand)."""


async def replay_consumer(
    runner: ConsumerRunner, *, on_progress: Progress | None = None, idle_limit_s: float = 60
) -> int:
    """Reset the view and apply every record up to the topics' current ends; returns how many."""
    names = runner.spec.topic_names
    await runner.bus.ensure_topics([config for topic in runner.spec.topics for config in topic.bus_topics()])
    ends = await runner.bus.end_offsets(names)
    total = sum(ends.values())
    # The dead letters so far stay settled: the rebuild meets their originals again, and whatever
    # still fails is dead-lettered anew, after these.
    dead_letter_ends = await runner.bus.end_offsets([topic.dead_letter for topic in runner.spec.topics])
    await runner.reset()
    await runner.set_positions({partition: end for partition, end in dead_letter_ends.items() if end})
    reached = dict.fromkeys(ends, 0)
    idle_s = 0.0
    # A group of its own that starts at the beginning; the live group's position is left alone.
    async with runner.bus.consumer(f"{runner.spec.name}.replay.{uuid.uuid4().hex[:8]}", names) as reader:
        while any(reached[partition] < end for partition, end in ends.items()):
            records = await reader.poll(timeout_s=1.0, max_records=500)
            done = await runner.handle(reader, records)
            if runner.waiting:
                raise ReplayStuck(f"{runner.spec.name}: an event needs a newer build; upgrade, then replay")
            if not records:
                idle_s += 1.0
                if idle_s >= idle_limit_s:
                    raise ReplayStuck(
                        f"{runner.spec.name}: no records for {idle_limit_s:.0f}s before the end"
                    )
                continue
            idle_s = 0.0
            for record in done:
                partition = (record.topic, record.partition)
                reached[partition] = max(reached.get(partition, 0), record.offset + 1)
            if on_progress is not None:
                on_progress(sum(min(reached[p], end) for p, end in ends.items()), total)
    return total
