"""Read topics from the start up to their ends as they are now: for rebuilding views and listing dead
letters, which must see everything published so far and then stop."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Sequence

from shared.bus.base import Consumer, EventBus, PartitionOffsets, Record


class EndNotReached(RuntimeError):
    """Nothing arrived for too long before the topics' ends (the bus stalls, or a partition is held)."""


async def read_to_end(
    bus: EventBus,
    topics: Sequence[str],
    *,
    group_prefix: str,
    ends: PartitionOffsets | None = None,
    idle_limit_s: float = 60,
) -> AsyncGenerator[tuple[Consumer, list[Record]]]:
    """Yield batches of records below `ends` (default: the current end offsets), with the reader.

    The reader is a consumer group of its own (`<group_prefix>.<random>`), so no live group's position
    moves. Raises `EndNotReached` after `idle_limit_s` without a record while some are still missing.
    """
    ends = await bus.end_offsets(topics) if ends is None else ends
    reached = dict.fromkeys(ends, 0)
    idle_s = 0.0
    async with bus.consumer(f"{group_prefix}.{uuid.uuid4().hex[:8]}", topics) as reader:
        while any(reached[partition] < end for partition, end in ends.items()):
            batch = await reader.poll(timeout_s=1.0, max_records=500)
            if not batch:
                idle_s += 1.0
                if idle_s >= idle_limit_s:
                    raise EndNotReached(
                        f"{', '.join(topics)}: no records for {idle_limit_s:.0f}s before the end"
                    )
                continue
            idle_s = 0.0
            for record in batch:
                partition = (record.topic, record.partition)
                reached[partition] = max(reached.get(partition, 0), record.offset + 1)
            yield reader, [r for r in batch if r.offset < ends.get((r.topic, r.partition), 0)]
