"""Rebuild a consumer's view from the start of its topics.

The view's tables, positions and event ids are emptied in one transaction, then every record of the
consumer's topics is applied again through the same code path as live consumption. Run it while that
consumer is stopped (`CRM_<SERVICE>_RUN_CONSUMERS=false`, or the service down): a live member would
move the positions ahead of the rebuild.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from shared.bus.reading import EndNotReached, read_to_end
from shared.consumer import ConsumerRunner

Progress = Callable[[int, int], None]


class ReplayStuck(RuntimeError):
    """The rebuild cannot reach the end of its topics (an event this build does not understand)."""


class ReplayRefused(RuntimeError):
    """The consumer's effects are not a view to empty and rebuild (`ConsumerSpec.replay_refused`)."""


async def replay_consumer(
    runner: ConsumerRunner, *, on_progress: Progress | None = None, idle_limit_s: float = 60
) -> int:
    """Reset the view and apply every record up to the topics' current ends; returns how many."""
    if runner.spec.replay_refused is not None:
        raise ReplayRefused(f"{runner.spec.name} cannot be replayed: {runner.spec.replay_refused}")
    await runner.bus.ensure_topics([config for topic in runner.spec.topics for config in topic.bus_topics()])
    ends = await runner.bus.end_offsets(runner.spec.topic_names)
    total = sum(ends.values())  # domain topics keep every record, so each partition starts at 0
    # The dead letters so far stay settled: the rebuild meets their originals again, and whatever
    # still fails is dead-lettered anew, after these.
    dead_letter_ends = await runner.bus.end_offsets([topic.dead_letter for topic in runner.spec.topics])
    await runner.reset()
    await runner.set_positions({partition: end for partition, end in dead_letter_ends.items() if end})
    applied = 0
    batches = read_to_end(
        runner.bus,
        runner.spec.topic_names,
        group_prefix=f"{runner.spec.name}.replay",
        ends=ends,
        idle_limit_s=idle_limit_s,
    )
    try:
        async with contextlib.aclosing(batches):  # stops the reader also when we stop early
            async for reader, records in batches:
                applied += len(await runner.handle(reader, records))
                if runner.waiting:
                    raise ReplayStuck(
                        f"{runner.spec.name}: an event needs a newer build; upgrade, then replay"
                    )
                if on_progress is not None:
                    on_progress(applied, total)
    except EndNotReached as exc:
        raise ReplayStuck(f"{runner.spec.name}: {exc}") from exc
    return total
