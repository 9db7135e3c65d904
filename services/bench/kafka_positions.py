"""Fresh consumer positions on a Kafka broker that already holds records.

Topic names are fixed, so a broker used before still has earlier records on them, and a group that
never committed would start from the earliest. Committing a group's positions at the current end makes
it see only what is published from now on, as on a fresh bus; committing them at the start makes it
read everything, as a group that never ran would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer

JOIN_TIMEOUT_S = 60.0


async def commit_at_end(bootstrap: str, group: str, topics: Sequence[str]) -> None:
    """Move `group` to the end of `topics` (those that exist). No member of the group may be running."""
    await _commit(bootstrap, group, topics, at_end=True)


async def commit_at_start(bootstrap: str, group: str, topics: Sequence[str]) -> None:
    """Move `group` to the start of `topics` (those that exist), as if it had never read them: a new
    deployment's group reads every record. No member of the group may be running."""
    await _commit(bootstrap, group, topics, at_end=False)


async def _commit(bootstrap: str, group: str, topics: Sequence[str], *, at_end: bool) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        existing = [topic for topic in topics if topic in await consumer.topics()]
        if not existing:
            return
        # Joining as a member is what makes the commit count for the group.
        consumer.subscribe(existing)
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while not consumer.assignment():
            if time.monotonic() > deadline:
                raise TimeoutError(f"group {group} was not assigned {existing} within {JOIN_TIMEOUT_S:.0f}s")
            await consumer.getmany(timeout_ms=100)
        partitions = list(consumer.assignment())
        offsets = await (consumer.end_offsets if at_end else consumer.beginning_offsets)(partitions)
        await consumer.commit(offsets)
    finally:
        await asyncio.shield(consumer.stop())
