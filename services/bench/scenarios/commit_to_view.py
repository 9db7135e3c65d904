"""Latency from the contacts commit to the journeys timeline at a fixed rate, against a raw bus round trip
at the same rate on the same kind of bus."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from rich.markup import escape
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.bench.deployment import Product
from services.bench.events import CONTACTS_TOPIC, contact_messages, event_id
from services.bench.load.http import JsonPoster
from services.bench.load.open_loop import OpenLoopResult, run_open_loop
from services.bench.model import Figure, Target
from services.bench.scenarios.base import ModeContext, Scenario
from services.bench.scenarios.create_contact import MAX_RPS_FACT
from services.bench.servers import BENCH_AUTHORIZATION
from services.bench.stats import summary_ms
from services.bench.trace import published_at_ms
from services.journeys.timeline.models import TimelineEntry
from shared.bus.base import Consumer, EventBus, Message
from shared.bus.factory import create_bus

NAME = "commit_to_view"
P50_TARGET = Target("at_most", 20)
P99_TARGET = Target("at_most", 100)
# Used when create_contact did not run in this mode, so there is no measured maximum to halve.
FALLBACK_RATE = 50.0
ROUND_TRIP_TOPIC = "bench.round-trip"
FIRST_EVENT_TIMEOUT_S = 60.0
LOAD_FINISH_TIMEOUT_S = 30.0


def _rate(ctx: ModeContext) -> tuple[float, str]:
    max_rps = ctx.facts.get(MAX_RPS_FACT)
    if not max_rps:
        return FALLBACK_RATE, f"create_contact did not run: fixed {FALLBACK_RATE:g} req/s"
    return max_rps / 2, ""


async def _first_event_through(client: httpx.AsyncClient, product: Product) -> None:
    """One contact all the way to its timeline, so that start-up (a consumer joining its group, say)
    is over before the measured load begins."""
    created = await client.post(
        f"{product.contacts_url}/v1/contacts",
        json={"email": f"warmup-{uuid.uuid4().hex}@example.com", "source": "bench-warmup"},
    )
    created.raise_for_status()
    timeline = f"{product.journeys_url}/v1/contacts/{created.json()['id']}/timeline"
    deadline = time.monotonic() + FIRST_EVENT_TIMEOUT_S
    while time.monotonic() < deadline:
        if (await client.get(timeline)).json().get("items"):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"the first contact did not reach the timeline within {FIRST_EVENT_TIMEOUT_S:.0f}s")


@dataclass(frozen=True)
class Applied:
    """One event of the run as the journeys timeline recorded it."""

    event_id: str
    occurred_at: datetime
    recorded_at: datetime

    @property
    def latency_ms(self) -> float:
        return (self.recorded_at - self.occurred_at).total_seconds() * 1000


async def _applied_events(engine: AsyncEngine, tag: str, expected: int, timeout_s: float) -> list[Applied]:
    """The timeline entries this run created, once all of them have arrived (or `timeout_s` passed)."""
    deadline = time.monotonic() + timeout_s
    async with engine.connect() as connection:
        while time.monotonic() < deadline:
            # Everything in this fresh database is this run's, plus the one warm-up entry.
            count = await connection.scalar(select(func.count()).select_from(TimelineEntry))
            await connection.rollback()  # end the read so the next one sees new commits
            if (count or 0) >= expected + 1:
                break
            await asyncio.sleep(0.25)
        rows = (
            await connection.execute(
                select(
                    TimelineEntry.event_id,
                    TimelineEntry.occurred_at,
                    TimelineEntry.recorded_at,
                    TimelineEntry.properties,
                )
            )
        ).all()
    return [
        Applied(event_id, occurred_at, recorded_at)
        for event_id, occurred_at, recorded_at, properties in rows
        if properties.get("source") == tag
    ]


@dataclass(frozen=True)
class Measured:
    latencies_ms: list[float]
    load: OpenLoopResult
    http_ms: list[float] = field(default_factory=list)
    """Response times of the HTTP load, from each request's scheduled start."""
    legs_ms: dict[str, list[float]] = field(default_factory=dict)
    """The latency split into the relay's leg (staged → published) and the consumer's (published → view)."""


async def _split(product: Product, group: str, applied: list[Applied]) -> dict[str, list[float]]:
    bus = create_bus(product.platform, client_id="crm-bench")
    await bus.start()
    try:
        published = await published_at_ms(bus, group, CONTACTS_TOPIC, [event.event_id for event in applied])
    finally:
        await bus.stop()
    legs: dict[str, list[float]] = {"relay_leg": [], "consumer_leg": []}
    for event in applied:
        if (at_ms := published.get(event.event_id)) is not None:
            legs["relay_leg"].append(at_ms - event.occurred_at.timestamp() * 1000)
            legs["consumer_leg"].append(event.recorded_at.timestamp() * 1000 - at_ms)
    return legs


async def _measure_product(ctx: ModeContext, rate: float, count: int) -> Measured:
    product = await ctx.deployment.product(NAME)
    tag = f"bench-{uuid.uuid4().hex[:12]}"
    trace_group = f"bench.trace.{uuid.uuid4().hex[:8]}"
    http_ms: list[float] = []
    async with ctx.serving(NAME, product.servers):
        async with httpx.AsyncClient(timeout=30, headers=BENCH_AUTHORIZATION) as client:
            with ctx.steps.step(f"{NAME}: first contact through to the timeline"):
                await _first_event_through(client, product)
        await ctx.deployment.start_at_end(trace_group, [CONTACTS_TOPIC])
        poster = JsonPoster(f"{product.contacts_url}/v1/contacts")
        loop = asyncio.get_running_loop()

        async def send(index: int, due: float) -> bool:
            body = {"email": f"{tag}-{index}@example.com", "first_name": "Ada", "source": tag}
            status = await poster.post(json.dumps(body).encode())
            http_ms.append((loop.time() - due) * 1000)
            return status == 201

        try:
            with ctx.steps.step(f"{NAME}: {count} contacts at {rate:.0f}/s, open loop"):
                load = await run_open_loop(
                    send, rate=rate, count=count, finish_timeout_s=LOAD_FINISH_TIMEOUT_S
                )
        finally:
            await poster.close()
        engine = create_async_engine(product.journeys_database_url)
        try:
            with ctx.steps.step(f"{NAME}: wait for {load.succeeded} timeline entries"):
                applied = await _applied_events(engine, tag, load.succeeded, ctx.settings.settle_timeout_s)
        finally:
            await engine.dispose()
    try:
        with ctx.steps.step(f"{NAME}: read the published records back"):
            legs = await _split(product, trace_group, applied)
    except Exception as exc:  # only a diagnostic: the figures stand without it
        ctx.steps.say(f"{NAME}: latency not split: {escape(repr(exc))}")
        legs = {}
    return Measured([event.latency_ms for event in applied], load, http_ms, legs)


async def _receive(consumer: Consumer, received: dict[str, float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        records = await consumer.poll(timeout_s=0.5)
        now = time.perf_counter()
        for record in records:
            received[event_id(record.headers)] = now
        if records:
            await consumer.commit(records)


async def _wait_for(
    ids: list[str], received: dict[str, float], timeout_s: float, workers: Sequence[asyncio.Task[None]]
) -> None:
    """Return once every id in `ids` was received, or after `timeout_s`; raise what a worker raised."""
    deadline = time.monotonic() + timeout_s
    for key in ids:
        while key not in received and time.monotonic() < deadline:
            if failed := next((w for w in workers if w.done() and not w.cancelled()), None):
                failed.result()  # raises the worker's error
                raise RuntimeError("a bus worker stopped early")
            await asyncio.sleep(0.05)


async def _publish_as_handed_over(bus: EventBus, queue: asyncio.Queue[Message]) -> None:
    """Publish each message as soon as it is handed over; those handed over while a publish is in
    flight go out together in the next one, as the relay sends what it finds pending. Publishing
    strictly one call per message would measure the queue in front of the bus client's publish lock
    (one acknowledged call at a time), not the bus."""
    while True:
        batch = [await queue.get()]
        while not queue.empty():
            batch.append(queue.get_nowait())
        await bus.publish(batch)


async def measure_round_trip(ctx: ModeContext, rate: float, count: int, scenario: str = NAME) -> Measured:
    """The baseline of an event's way to a view: `count` messages published at `rate` a second, each
    timed until a consumer in another group receives it. `scenario` names the steps."""
    bus = ctx.deployment.fresh_bus("round-trip")
    group = f"bench.round-trip.{uuid.uuid4().hex[:8]}"
    warmup, *messages = contact_messages(count + 1, topic=ROUND_TRIP_TOPIC)
    sent: dict[str, float] = {}
    received: dict[str, float] = {}
    stop = asyncio.Event()
    await bus.start()
    consumer = bus.consumer(group, [ROUND_TRIP_TOPIC])
    queue: asyncio.Queue[Message] = asyncio.Queue()
    workers: list[asyncio.Task[None]] = []
    try:
        await bus.ensure_topics([ROUND_TRIP_TOPIC])
        await ctx.deployment.start_at_end(group, [ROUND_TRIP_TOPIC])
        await consumer.start()
        workers.append(asyncio.create_task(_receive(consumer, received, stop)))
        with ctx.steps.step(f"{scenario}: first message through the bus"):
            await bus.publish([warmup])
            await _wait_for([event_id(warmup.headers)], received, FIRST_EVENT_TIMEOUT_S, workers)
        workers.append(asyncio.create_task(_publish_as_handed_over(bus, queue)))

        async def send(index: int, _due: float) -> bool:
            message = messages[index]
            sent[event_id(message.headers)] = time.perf_counter()
            queue.put_nowait(message)
            return True

        with ctx.steps.step(f"{scenario}: {count} bus messages at {rate:.0f}/s, open loop"):
            load = await run_open_loop(send, rate=rate, count=count, finish_timeout_s=LOAD_FINISH_TIMEOUT_S)
            await _wait_for(list(sent), received, ctx.settings.settle_timeout_s, workers)
    finally:
        stop.set()
        for worker in workers[1:]:
            worker.cancel()  # the publisher waits for more messages for ever
        await asyncio.gather(*workers, return_exceptions=True)
        await consumer.stop()
        await bus.stop()
    latencies = [(received[key] - start) * 1000 for key, start in sent.items() if key in received]
    return Measured(latencies, load)


def _figures(subject: Measured, baseline: Measured, rate: float, note: str) -> list[Figure]:
    if not subject.latencies_ms or not baseline.latencies_ms:
        raise RuntimeError(
            f"no latencies measured (product: {len(subject.latencies_ms)}, bus: {len(baseline.latencies_ms)})"
        )
    ours, theirs = summary_ms(subject.latencies_ms), summary_ms(baseline.latencies_ms)
    notes = [note] if note else []
    if missing := subject.load.succeeded - len(subject.latencies_ms):
        notes.append(f"{missing} events never reached the timeline")
    if subject.load.failed:
        reasons = ", ".join(f"{kind} {n}" for kind, n in subject.load.errors.items())
        notes.append(f"{subject.load.failed} requests failed ({reasons})")
    if lost := baseline.load.scheduled - len(baseline.latencies_ms):
        notes.append(f"{lost} bus messages not received")
    details: dict[str, float | int | str] = {
        "rate_per_s": round(rate, 1),
        "requests": subject.load.scheduled,
        "events_measured": len(subject.latencies_ms),
        "late_starts": subject.load.late_starts + baseline.load.late_starts,
        **{f"http_{k}": v for k, v in summary_ms(subject.http_ms or [0.0]).items()},
        **{
            f"{leg}_{k}": v
            for leg, samples in subject.legs_ms.items()
            if samples
            for k, v in summary_ms(samples).items()
            if k != "max_ms"
        },
        **{f"baseline_{k}": v for k, v in theirs.items()},
    }
    note_text = "; ".join(notes)
    return [
        Figure(NAME, "p50", "ms", ours["p50_ms"], theirs["p50_ms"], P50_TARGET, details, note_text),
        Figure(NAME, "p99", "ms", ours["p99_ms"], theirs["p99_ms"], P99_TARGET),
        Figure(NAME, "max", "ms", ours["max_ms"], theirs["max_ms"]),
    ]


async def run(ctx: ModeContext) -> list[Figure]:
    rate, note = _rate(ctx)
    count = max(1, round(rate * ctx.settings.duration_s))
    subject = await _measure_product(ctx, rate, count)
    baseline = await measure_round_trip(ctx, rate, count)
    return _figures(subject, baseline, rate, note)


SCENARIO = Scenario(
    name=NAME,
    title="commit → consumer view latency",
    measures=(
        "contacts created at a fixed rate of half the create_contact maximum (open loop: each request "
        "sent at its time whether or not earlier ones answered); per event, journeys "
        "`timeline_entry.recorded_at` - `occurred_at` (when the event was staged in the outbox), also "
        "split at the record's publish time into the relay's and the consumer's leg; baseline: a raw bus "
        "round trip (publish → a consumer in another group receives) at the same rate; targets "
        "p50 ≤ 20 ms, p99 ≤ 100 ms."
    ),
    run=run,
)
