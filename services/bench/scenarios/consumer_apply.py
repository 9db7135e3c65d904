"""How fast the journeys consumers apply pre-published contact events, against a bare drain of the
same records (poll and commit, nothing else)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.bench.events import CONTACTS_TOPIC, contact_messages, publish_in_batches
from services.bench.model import Figure, Target
from services.bench.scenarios.base import ModeContext, Scenario
from services.journeys.timeline.models import TimelineEntry
from services.registry import SERVICES
from shared.bus.base import EventBus
from shared.runtime import ServiceRuntime

NAME = "consumer_apply"
TARGET = Target("ratio_at_least", 0.25)
PUBLISH_BATCH = 500
STOP_TIMEOUT_S = 30.0
# As many records per poll as the consumer runner asks for.
POLL_MAX_RECORDS = 500


@dataclass(frozen=True)
class Timed:
    events: int
    seconds: float
    """From start (the consumer joining included) until the last event arrived; stopping not included."""


async def _drain(bus: EventBus, group: str, expected: int, timeout_s: float) -> Timed:
    started = time.perf_counter()
    consumer = bus.consumer(group, [CONTACTS_TOPIC])
    received = 0
    deadline = time.monotonic() + timeout_s
    await consumer.start()
    try:
        while received < expected and time.monotonic() < deadline:
            records = await consumer.poll(timeout_s=0.5, max_records=POLL_MAX_RECORDS)
            if records:
                await consumer.commit(records)
                received += len(records)
        return Timed(received, time.perf_counter() - started)
    finally:
        await consumer.stop()


async def _timeline_rows(engine: AsyncEngine) -> int:
    # The read-only engine: on SQLite the runtime's own engine begins every transaction IMMEDIATE, so
    # this count, polled while the consumers write, would take the write lock from under them and send
    # them into SQLite's busy handler (sleeps of up to 100 ms), slowing what is measured.
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(TimelineEntry)) or 0)


async def _apply(runtime: ServiceRuntime, expected: int, timeout_s: float) -> Timed:
    started = time.perf_counter()
    stop = asyncio.Event()
    workers = [asyncio.create_task(runner.run(stop)) for runner in runtime.consumer_runners()]
    deadline = time.monotonic() + timeout_s
    applied = 0
    try:
        while applied < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            applied = await _timeline_rows(runtime.database.read_engine)
        return Timed(applied, time.perf_counter() - started)
    finally:
        stop.set()
        _done, pending = await asyncio.wait(workers, timeout=STOP_TIMEOUT_S)
        for worker in pending:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


async def run(ctx: ModeContext) -> list[Figure]:
    count = ctx.settings.events
    timeout_s = ctx.settings.settle_timeout_s
    deployment = ctx.deployment
    definition = SERVICES["journeys"]
    bus = deployment.fresh_bus(NAME)
    settings = definition.settings_class(database_url=await deployment.fresh_database_url("journeys", NAME))
    runtime = ServiceRuntime(
        definition, platform=deployment.platform(deployment.fresh_dir(NAME)), settings=settings, bus=bus
    )
    drain_group = f"bench.drain.{uuid.uuid4().hex[:8]}"
    await bus.start()
    try:
        with ctx.steps.step(f"{NAME}: migrate a fresh journeys database, publish {count} events"):
            await runtime.migrate()
            await bus.ensure_topics([CONTACTS_TOPIC])
            for group in [drain_group, *(spec.name for spec in definition.consumers)]:
                await deployment.start_at_end(group, [CONTACTS_TOPIC])
            await publish_in_batches(bus, contact_messages(count), PUBLISH_BATCH)
        with ctx.steps.step(f"{NAME}: bare drain of {count} records"):
            drained = await _drain(bus, drain_group, count, timeout_s)
        with ctx.steps.step(f"{NAME}: journeys consumers apply {count} events"):
            applied = await _apply(runtime, count, timeout_s)
    finally:
        await runtime.database.dispose()
        await bus.stop()
    notes = []
    if drained.events < count:
        notes.append(f"bare drain got {drained.events} of {count} records")
    if applied.events < count:
        notes.append(f"consumers applied {applied.events} of {count} events within {timeout_s:g}s")
    return [
        Figure(
            NAME,
            "throughput",
            "events/s",
            applied.events / applied.seconds,
            drained.events / drained.seconds,
            TARGET,
            details={
                "events": count,
                "apply_s": round(applied.seconds, 3),
                "drain_s": round(drained.seconds, 3),
            },
            note="; ".join(notes),
        )
    ]


SCENARIO = Scenario(
    name=NAME,
    title="consumer apply throughput",
    measures=(
        "N contact events pre-published to `crm.contacts`; the journeys consumers (in process) run until "
        "the timeline has N rows, vs a bare drain (poll and commit) of the same records; target ratio ≥ 0.25."
    ),
    run=run,
)
