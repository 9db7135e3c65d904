"""Where an event's latency goes: from staging to the bus (the relay's leg), and from the bus to the
view (the consumer's leg).

Every record carries the time it was published (Kafka: the producer's create time; embedded: the
publish time), so reading the product's own records back after a run splits each event's
`recorded_at - occurred_at` in two. Millisecond resolution, like the record timestamps.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from shared.bus.base import EventBus

READ_TIMEOUT_S = 30.0


async def published_at_ms(
    bus: EventBus, group: str, topic: str, event_ids: Collection[str]
) -> dict[str, int]:
    """When each of `event_ids` was published to `topic`, read through a group of the caller's choosing
    (positioned beforehand so that it starts at or before the first of them)."""
    wanted = set(event_ids)
    found: dict[str, int] = {}
    consumer = bus.consumer(group, [topic])
    deadline = time.monotonic() + READ_TIMEOUT_S
    await consumer.start()
    try:
        while len(found) < len(wanted) and time.monotonic() < deadline:
            for record in await consumer.poll(timeout_s=0.5, max_records=500):
                event_id = record.headers.get("ce_id", b"").decode()
                if event_id in wanted:
                    found[event_id] = record.timestamp_ms
    finally:
        await consumer.stop()
    return found
