"""Wait for a consumer to have settled everything on its topics: positive evidence, not a sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from shared.bus.base import EventBus
from shared.consumer import ConsumerTables, stored_positions
from shared.db import Database, read_scope


async def wait_until_caught_up(
    database: Database,
    tables: ConsumerTables,
    consumer: str,
    bus: EventBus,
    topics: Sequence[str],
    *,
    timeout_s: float = 60,
) -> None:
    """Return once the consumer's stored positions reach the current end of every partition of `topics`:
    every record published so far has been applied, skipped as a duplicate, or dead-lettered."""
    ends = await bus.end_offsets(topics)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with read_scope(database) as session:
            reached = await stored_positions(session, tables, consumer)
        if all(reached.get(partition, 0) >= end for partition, end in ends.items()):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{consumer} did not reach {ends} within {timeout_s}s (at {reached})")
