"""Latency from `POST /v1/touchpoints` to the touchpoint's entry on the contact's journeys timeline, at a
fixed rate, against a raw bus round trip at the same rate on the same kind of bus.

Each touchpoint names a new contact id, so it resolves at once (a given contact id is taken as it is)
and each timeline holds exactly the entry to wait for. Its way: the request, the touchpoint's
transaction with its `crm.touchpoint.recorded` in the outbox, the relay to `crm.touchpoints`, the
journeys consumer, `timeline_entry`.

Latency is taken from the databases, not by polling the timeline: per touchpoint, the entry's
`recorded_at` minus the wall-clock time the request was sent. Polling every pending timeline every few
milliseconds would add GETs by the hundred a second to the machine under test and round each latency up
to the polling interval. `recorded_at` is stamped as the consumer applies the event, a few milliseconds
before its batch commits and the entry can be read, so the figure is that much early; one entry is read
back through the API at the end to show the entries are there.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from rich.markup import escape
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.bench.deployment import Product
from services.bench.load.http import JsonPoster
from services.bench.load.open_loop import OpenLoopResult, run_open_loop
from services.bench.model import Figure
from services.bench.scenarios.base import ModeContext, Scenario
from services.bench.scenarios.batch_upsert import peak_rss_details, serving_apart
from services.bench.scenarios.commit_to_view import Measured, measure_round_trip
from services.bench.servers import BENCH_AUTHORIZATION
from services.bench.stats import summary_ms
from services.bench.trace import published_at_ms
from services.journeys.timeline.models import TimelineEntry
from services.journeys.touchpoints.models import Touchpoint
from shared.bus.factory import create_bus
from shared.events.touchpoints import TouchpointRecorded

NAME = "touchpoint_to_timeline"
RATE = 50.0
"""Touchpoints a second: moderate, well below what one process records, as commit_to_view's fallback."""
TOUCHPOINTS_TOPIC: str = TouchpointRecorded.topic
FIRST_EVENT_TIMEOUT_S = 60.0
LOAD_FINISH_TIMEOUT_S = 30.0


def _body(contact_id: uuid.UUID, tag: str) -> bytes:
    return json.dumps(
        {
            "contact_id": str(contact_id),
            "occurred_at": datetime.now(UTC).isoformat(),
            "channel": "web",
            "type": "page_view",
            "stage": "awareness",
            "campaign": tag,
            "content_id": "/pricing",
        }
    ).encode()


async def _first_touchpoint_through(client: httpx.AsyncClient, product: Product) -> None:
    """One touchpoint all the way to its timeline, so that start-up (the consumer joining its group, the
    topic being created) is over before the measured load begins."""
    contact_id = uuid.uuid4()
    created = await client.post(
        f"{product.journeys_url}/v1/touchpoints",
        content=_body(contact_id, "bench-warmup"),
        headers={"Content-Type": "application/json"},
    )
    if created.status_code != 201:
        raise RuntimeError(f"POST /v1/touchpoints answered {created.status_code}: {created.text[:300]}")
    timeline = f"{product.journeys_url}/v1/contacts/{contact_id}/timeline"
    deadline = time.monotonic() + FIRST_EVENT_TIMEOUT_S
    while time.monotonic() < deadline:
        if (await client.get(timeline)).json().get("items"):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"the first touchpoint did not reach the timeline within {FIRST_EVENT_TIMEOUT_S:.0f}s")


@dataclass(frozen=True)
class Applied:
    """One touchpoint of the run: when it was sent, received, and put on the timeline."""

    contact_id: uuid.UUID
    event_id: str
    sent_at: datetime
    received_at: datetime
    recorded_at: datetime

    @property
    def latency_ms(self) -> float:
        return (self.recorded_at - self.sent_at).total_seconds() * 1000


async def _applied(
    engine: AsyncEngine, sent: dict[uuid.UUID, datetime], expected: int, timeout_s: float
) -> list[Applied]:
    """The run's touchpoints that reached the timeline, once all of them have (or `timeout_s` passed)."""
    deadline = time.monotonic() + timeout_s
    async with engine.connect() as connection:
        while time.monotonic() < deadline:
            # Everything in this fresh database is this run's, plus the one warm-up entry.
            count = await connection.scalar(select(func.count()).select_from(TimelineEntry))
            await connection.rollback()  # end the read so the next one sees new commits
            if (count or 0) >= expected + 1:
                break
            await asyncio.sleep(0.25)
        entries = (
            await connection.execute(
                select(TimelineEntry.contact_id, TimelineEntry.event_id, TimelineEntry.recorded_at)
            )
        ).all()
        received = dict(
            (await connection.execute(select(Touchpoint.contact_id, Touchpoint.received_at))).tuples().all()
        )
    return [
        Applied(contact_id, event_id, sent[contact_id], received[contact_id], recorded_at)
        for contact_id, event_id, recorded_at in entries
        if contact_id in sent and contact_id in received
    ]


@dataclass(frozen=True)
class Run:
    applied: list[Applied]
    load: OpenLoopResult
    http_ms: list[float]
    """Response times of the POSTs, from each request's scheduled start."""
    legs_ms: dict[str, list[float]]
    memory: dict[str, float | int | str]


async def _legs(product: Product, group: str, applied: list[Applied]) -> dict[str, list[float]]:
    """Each latency split at the service's receipt and at the record's publish time."""
    bus = create_bus(product.platform, client_id="crm-bench")
    await bus.start()
    try:
        published = await published_at_ms(
            bus, group, TOUCHPOINTS_TOPIC, [entry.event_id for entry in applied]
        )
    finally:
        await bus.stop()
    legs: dict[str, list[float]] = {"request_leg": [], "relay_leg": [], "consumer_leg": []}
    for entry in applied:
        legs["request_leg"].append((entry.received_at - entry.sent_at).total_seconds() * 1000)
        if (at_ms := published.get(entry.event_id)) is not None:
            legs["relay_leg"].append(at_ms - entry.received_at.timestamp() * 1000)
            legs["consumer_leg"].append(entry.recorded_at.timestamp() * 1000 - at_ms)
    return legs


async def _visible(client: httpx.AsyncClient, product: Product, entry: Applied) -> None:
    """The entry as the API shows it: there, and the touchpoint's."""
    timeline = f"{product.journeys_url}/v1/contacts/{entry.contact_id}/timeline"
    answer = await client.get(timeline)
    items = answer.json().get("items") if answer.status_code == 200 else None
    if not items or items[0].get("event_type") != TouchpointRecorded.event_type():
        raise RuntimeError(
            f"the timeline of {entry.contact_id} does not show its touchpoint: {answer.text[:300]}"
        )


async def _measure_product(ctx: ModeContext, rate: float, count: int) -> Run:
    product = await ctx.deployment.product(NAME)
    tag = f"bench-{uuid.uuid4().hex[:12]}"
    trace_group = f"bench.trace.{uuid.uuid4().hex[:8]}"
    sent: dict[uuid.UUID, datetime] = {}
    http_ms: list[float] = []
    async with (
        serving_apart(ctx, NAME, product.servers_for("journeys")) as memory,
        httpx.AsyncClient(timeout=30, headers=BENCH_AUTHORIZATION) as client,
    ):
        with ctx.steps.step(f"{NAME}: first touchpoint through to the timeline"):
            await _first_touchpoint_through(client, product)
        await ctx.deployment.start_at_end(trace_group, [TOUCHPOINTS_TOPIC])
        poster = JsonPoster(f"{product.journeys_url}/v1/touchpoints")
        loop = asyncio.get_running_loop()

        async def send(_index: int, due: float) -> bool:
            contact_id = uuid.uuid4()
            body = _body(contact_id, tag)
            sent[contact_id] = datetime.now(UTC)
            status = await poster.post(body)
            http_ms.append((loop.time() - due) * 1000)
            return status == 201

        try:
            with ctx.steps.step(f"{NAME}: {count} touchpoints at {rate:.0f}/s, open loop"):
                load = await run_open_loop(
                    send, rate=rate, count=count, finish_timeout_s=LOAD_FINISH_TIMEOUT_S
                )
        finally:
            await poster.close()
        engine = create_async_engine(product.journeys_database_url)
        try:
            with ctx.steps.step(f"{NAME}: wait for {load.succeeded} timeline entries"):
                applied = await _applied(engine, sent, load.succeeded, ctx.settings.settle_timeout_s)
        finally:
            await engine.dispose()
        if applied:
            await _visible(client, product, max(applied, key=lambda entry: entry.recorded_at))
    try:
        with ctx.steps.step(f"{NAME}: read the published records back"):
            legs = await _legs(product, trace_group, applied)
    except Exception as exc:  # only a diagnostic: the figures stand without it
        ctx.steps.say(f"{NAME}: latency not split: {escape(repr(exc))}")
        legs = {}
    return Run(applied, load, http_ms, legs, peak_rss_details(memory))


def _figures(run: Run, baseline: Measured, rate: float) -> list[Figure]:
    latencies = [entry.latency_ms for entry in run.applied]
    if not latencies or not baseline.latencies_ms:
        raise RuntimeError(
            f"no latencies measured (product: {len(latencies)}, bus: {len(baseline.latencies_ms)})"
        )
    ours, theirs = summary_ms(latencies), summary_ms(baseline.latencies_ms)
    notes = []
    if missing := run.load.succeeded - len(latencies):
        notes.append(f"{missing} touchpoints never reached the timeline")
    if run.load.failed:
        reasons = ", ".join(f"{kind} {n}" for kind, n in run.load.errors.items())
        notes.append(f"{run.load.failed} requests failed ({reasons})")
    if lost := baseline.load.scheduled - len(baseline.latencies_ms):
        notes.append(f"{lost} bus messages not received")
    details: dict[str, float | int | str] = {
        "rate_per_s": round(rate, 1),
        "requests": run.load.scheduled,
        "events_measured": len(latencies),
        "late_starts": run.load.late_starts + baseline.load.late_starts,
        **{f"http_{k}": v for k, v in summary_ms(run.http_ms or [0.0]).items()},
        **{
            f"{leg}_{k}": v
            for leg, samples in run.legs_ms.items()
            if samples
            for k, v in summary_ms(samples).items()
            if k != "max_ms"
        },
        **{f"baseline_{k}": v for k, v in theirs.items()},
        **run.memory,
    }
    return [
        Figure(NAME, "p50", "ms", ours["p50_ms"], theirs["p50_ms"], None, details, "; ".join(notes)),
        Figure(NAME, "p99", "ms", ours["p99_ms"], theirs["p99_ms"]),
        Figure(NAME, "max", "ms", ours["max_ms"], theirs["max_ms"]),
    ]


async def run(ctx: ModeContext) -> list[Figure]:
    count = max(1, round(RATE * ctx.settings.duration_s))
    subject = await _measure_product(ctx, RATE, count)
    baseline = await measure_round_trip(ctx, RATE, count, NAME)
    return _figures(subject, baseline, RATE)


SCENARIO = Scenario(
    name=NAME,
    title="touchpoint → timeline latency",
    measures=(
        f"touchpoints recorded at a fixed {RATE:g}/s (open loop), each for a new contact id so it resolves "
        "at once; per touchpoint, journeys `timeline_entry.recorded_at` - the wall-clock time its "
        "`POST /v1/touchpoints` was sent (read from the database, not by polling), also split at the "
        "touchpoint's `received_at` and the record's publish time into the request's, the relay's and "
        "the consumer's leg; baseline: a raw bus round trip at the same rate; no target (reported)."
    ),
    run=run,
)
