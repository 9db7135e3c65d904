"""Reading helpers for bus tests."""

from __future__ import annotations

import time

from shared.bus.base import Consumer, Record


async def drain(consumer: Consumer, *, count: int, timeout_s: float = 30) -> list[Record]:
    """Poll until `count` records arrived (or the timeout passed); returns what arrived."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count and time.monotonic() < deadline:
        records.extend(await consumer.poll(timeout_s=0.5, max_records=count - len(records)))
    return records


async def poll_quietly(consumer: Consumer, *, seconds: float) -> list[Record]:
    """Everything that arrives within `seconds`: for asserting that nothing (more) comes."""
    records: list[Record] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        records.extend(await consumer.poll(timeout_s=0.3))
    return records
