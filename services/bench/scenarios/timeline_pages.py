"""Latency of the last page of a long journeys timeline against its first page.

One contact gets 100,000 touchpoint entries in a fresh journeys database, seeded straight into
`timeline_entry` in bulk (COPY on PostgreSQL, executemany in one transaction on SQLite) as the journeys
consumer writes them from `crm.touchpoint.recorded`. Only the view is seeded: the endpoint reads
nothing else, and recording 100,000 touchpoints through the API and the bus would take far longer than
measuring. The cursors are then followed to the end once; the last page's request is timed against the
first page's, in turn, so that whatever else the machine does weighs on both alike. A page half-way
through is timed with them, as a detail: a last page as fast as the first may still hide pages in
between whose cost grows with their place (a planner can pick a plan for the end of a range that it
does not pick for its middle).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert

from services.bench.deployment import Product
from services.bench.model import Figure, Target
from services.bench.progress import SeedProgress
from services.bench.scenarios.base import ModeContext, Scenario
from services.bench.scenarios.batch_upsert import peak_rss_details, serving_apart
from services.bench.scenarios.contact_search import analyze
from services.bench.servers import BENCH_AUTHORIZATION
from services.bench.stats import percentile, summary_ms
from services.journeys.timeline.models import TIMELINE_ENTRY
from services.registry import SERVICES
from shared.db import Database
from shared.events.touchpoints import TouchpointRecorded
from shared.migrations import upgrade_to_head
from shared.web.pagination import DEFAULT_LIMIT, MAX_LIMIT

NAME = "timeline_pages"
ENTRIES = 100_000
TARGET = Target("ratio_at_most", 1.5)
LIMIT = DEFAULT_LIMIT
"""The measured pages' size: the endpoint's default."""
WALK_LIMIT = MAX_LIMIT
"""Page size of the walk to the end: the largest, for the fewest requests."""
CHUNK = 20_000
"""Entries per COPY / executemany round."""
WARMUP_READS = 10
READS = 200
MIN_READS = 20
"""Reads of each page stop after `--duration` seconds once this many are measured, or at `READS`."""
HISTORY = timedelta(days=730)
"""The entries happened evenly over this span, the newest just now."""
REQUEST_TIMEOUT_S = 60.0
JOURNEYS_SOURCE = "/crm/journeys"
CHANNELS = ("web", "email", "social_ad", "search", "webinar", "event", "meeting", "purchase")
TYPES = ("page_view", "email_opened", "ad_clicked", "search_click", "webinar_attended", "demo_booked")
STAGES = ("awareness", "consideration", "decision", "purchase", "retention")

COLUMNS = (
    "id",
    "contact_id",
    "event_id",
    "event_type",
    "source",
    "occurred_at",
    "team",
    "channel",
    "kind",
    "properties",
    "recorded_at",
)


def _chunks(contact_id: uuid.UUID, size: int) -> Iterator[list[dict[str, Any]]]:
    """`size` entries of one contact as `timeline_entry` rows, `CHUNK` at a time, oldest first; the
    properties are those the consumer copies from a `crm.touchpoint.recorded` event."""
    rng = random.Random(size)
    newest = datetime.now(UTC)
    step = HISTORY / size
    chunk: list[dict[str, Any]] = []
    for number in range(size):
        occurred = newest - HISTORY + step * (number + 1)
        channel = rng.choice(CHANNELS)
        kind = rng.choice(TYPES)
        chunk.append(
            {
                "id": uuid.UUID(int=rng.getrandbits(128), version=4),
                "contact_id": contact_id,
                "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "event_type": TouchpointRecorded.event_type(),
                "source": JOURNEYS_SOURCE,
                "occurred_at": occurred,
                # The filter columns, as the consumer fills them from the event.
                "team": "marketing",
                "channel": channel,
                "kind": kind,
                "properties": {
                    "channel": channel,
                    "type": kind,
                    "stage": rng.choice(STAGES),
                    "team": "marketing",
                    "campaign": f"campaign-{number % 40}",
                    "content_id": f"/content/{number % 500}",
                    "revenue": 12900 if channel == "purchase" else None,
                    "currency": "EUR" if channel == "purchase" else None,
                    "order_id": str(number) if channel == "purchase" else None,
                    "score": None,
                },
                "recorded_at": occurred + timedelta(milliseconds=20),
            }
        )
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _seed_postgres(ctx: ModeContext, database: Database, contact_id: uuid.UUID, size: int) -> None:
    """COPY (asyncpg's binary COPY) in one transaction."""
    progress = SeedProgress(ctx.steps, NAME, size, "timeline entries")
    async with database.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection  # asyncpg's own connection, for COPY
        async with driver.transaction():
            for chunk in _chunks(contact_id, size):
                records = [
                    tuple(json.dumps(row[c]) if c == "properties" else row[c] for c in COLUMNS)
                    for row in chunk
                ]
                await driver.copy_records_to_table(TIMELINE_ENTRY.name, records=records, columns=COLUMNS)
                progress.add(len(chunk))


async def _seed_sqlite(ctx: ModeContext, database: Database, contact_id: uuid.UUID, size: int) -> None:
    """executemany through the service's own table (so values are stored exactly as the consumer stores
    them), in one transaction."""
    progress = SeedProgress(ctx.steps, NAME, size, "timeline entries")
    async with database.engine.begin() as connection:
        for chunk in _chunks(contact_id, size):
            await connection.execute(insert(TIMELINE_ENTRY), chunk)
            progress.add(len(chunk))


@dataclass(frozen=True)
class Seeded:
    contact_id: uuid.UUID
    entries: int
    seed_s: float
    analyze_s: float


async def _seed(ctx: ModeContext, product: Product, size: int) -> Seeded:
    definition = SERVICES["journeys"]
    database = Database(product.journeys_database_url)
    contact_id = uuid.uuid4()
    try:
        with ctx.steps.step(f"{NAME}: migrate a fresh journeys database"):
            await upgrade_to_head(database, definition.migrations_dir, definition.metadata)
        with ctx.steps.step(f"{NAME}: seed {size:,} timeline entries of one contact"):
            started = time.perf_counter()
            seed = _seed_sqlite if database.is_sqlite else _seed_postgres
            await seed(ctx, database, contact_id, size)
            seed_s = time.perf_counter() - started
        analyze_s = await analyze(ctx, NAME, database)
    finally:
        await database.dispose()
    return Seeded(contact_id, size, seed_s, analyze_s)


async def _page(client: httpx.AsyncClient, url: str, limit: int, cursor: str | None) -> dict[str, Any]:
    params: dict[str, str | int] = {"limit": limit}
    if cursor is not None:
        params["cursor"] = cursor
    answer = await client.get(url, params=params)
    if answer.status_code != 200:
        raise RuntimeError(f"GET timeline answered {answer.status_code}: {answer.text[:300]}")
    page: dict[str, Any] = answer.json()
    return page


async def _timed(
    client: httpx.AsyncClient, url: str, limit: int, cursor: str | None, into: list[float]
) -> dict[str, Any]:
    sent = time.perf_counter()
    page = await _page(client, url, limit, cursor)
    into.append((time.perf_counter() - sent) * 1000)
    return page


@dataclass(frozen=True)
class Walk:
    last_cursor: str
    """The cursor that asks for the last page of `LIMIT` entries."""
    middle_cursor: str | None
    """A cursor half-way through (None when the first big page reaches past the middle)."""
    requests_ms: list[float]
    """Each walk request's time: the pages between the first and the last cost what their place costs."""
    walk_s: float


async def _walk_to_the_end(client: httpx.AsyncClient, url: str, seeded: Seeded) -> Walk:
    """Follow the cursors through the whole timeline: `WALK_LIMIT` entries a page to the last such page,
    then `LIMIT` a page from where that one began (a cursor is a position, whatever the page size), so
    the cursor found asks for exactly the last page the measured requests read. Checks that the walk
    met every seeded entry."""
    started = time.perf_counter()
    requests_ms: list[float] = []
    seen = 0
    cursor: str | None = None
    middle: str | None = None
    while True:
        page = await _timed(client, url, WALK_LIMIT, cursor, requests_ms)
        seen += len(page["items"])
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
        if middle is None and seen >= seeded.entries // 2:
            middle = cursor
    if seen != seeded.entries:
        raise RuntimeError(
            f"the walk through the timeline met {seen:,} entries; {seeded.entries:,} were seeded"
        )
    last: str | None = None
    while True:  # from where the last big page began
        page = await _timed(client, url, LIMIT, cursor, requests_ms)
        if page["next_cursor"] is None:
            last = cursor
            break
        cursor = page["next_cursor"]
    if last is None:
        raise RuntimeError(f"the timeline has a single page of {LIMIT}; nothing to compare the first with")
    return Walk(last, middle, requests_ms, time.perf_counter() - started)


@dataclass
class Timings:
    first_ms: list[float]
    last_ms: list[float]
    middle_ms: list[float]
    """Not compared: for telling a cost that grows with the position from one peculiar to the end."""


async def _measure(
    ctx: ModeContext, client: httpx.AsyncClient, url: str, walk: Walk, entries: int
) -> Timings:
    """The first, the last and a middle page in turn: `WARMUP_READS` of each, then the measured reads."""
    first = await _page(client, url, LIMIT, None)
    last = await _page(client, url, LIMIT, walk.last_cursor)
    expected_last = (entries - 1) % LIMIT + 1
    if len(first["items"]) != LIMIT or len(last["items"]) != expected_last or last["next_cursor"] is not None:
        raise RuntimeError(
            f"the first page has {len(first['items'])} entries and the last {len(last['items'])} "
            f"(next_cursor {last['next_cursor']!r}); {LIMIT} and {expected_last} were expected"
        )
    timings = Timings([], [], [])
    reads = f"{WARMUP_READS} warm-up + up to {READS} reads of each"
    with ctx.steps.step(f"{NAME}: first, last and middle page of {entries:,} entries in turn: {reads}"):
        for _ in range(WARMUP_READS):
            await _timed(client, url, LIMIT, None, [])
            await _timed(client, url, LIMIT, walk.last_cursor, [])
            if walk.middle_cursor is not None:
                await _timed(client, url, LIMIT, walk.middle_cursor, [])
        started = time.perf_counter()
        while len(timings.first_ms) < READS and (
            len(timings.first_ms) < MIN_READS or time.perf_counter() - started < ctx.settings.duration_s
        ):
            await _timed(client, url, LIMIT, None, timings.first_ms)
            await _timed(client, url, LIMIT, walk.last_cursor, timings.last_ms)
            if walk.middle_cursor is not None:
                await _timed(client, url, LIMIT, walk.middle_cursor, timings.middle_ms)
    return timings


def _figures(
    seeded: Seeded, walk: Walk, timings: Timings, memory: dict[str, float | int | str]
) -> list[Figure]:
    first = {q: percentile(timings.first_ms, q) for q in (50, 99)}
    last = {q: percentile(timings.last_ms, q) for q in (50, 99)}
    details: dict[str, float | int | str] = {
        "entries": seeded.entries,
        "limit": LIMIT,
        "reads_each": len(timings.first_ms),
        "first_p50_ms": round(first[50], 2),
        "first_p99_ms": round(first[99], 2),
        "last_p50_ms": round(last[50], 2),
        "last_p99_ms": round(last[99], 2),
        **({f"middle_{k}": v for k, v in summary_ms(timings.middle_ms).items()} if timings.middle_ms else {}),
        "walk_requests": len(walk.requests_ms),
        **{f"walk_request_{k}": v for k, v in summary_ms(walk.requests_ms).items()},
        "walk_s": round(walk.walk_s, 1),
        "seed_s": round(seeded.seed_s, 1),
        "analyze_s": round(seeded.analyze_s, 1),
        **memory,
    }
    page = f"last page of {seeded.entries:,} entries vs the first"
    return [
        Figure(NAME, f"p50 latency, {page}", "ms", last[50], first[50], TARGET, details),
        Figure(NAME, f"p99 latency, {page}", "ms", last[99], first[99]),
    ]


async def run(ctx: ModeContext) -> list[Figure]:
    return await run_entries(ENTRIES, ctx)


async def run_entries(entries: int, ctx: ModeContext) -> list[Figure]:
    """The scenario with `entries` on the timeline (more than `LIMIT`, so that there are two pages)."""
    product = await ctx.deployment.product(NAME)
    seeded = await _seed(ctx, product, entries)
    url = f"{product.journeys_url}/v1/contacts/{seeded.contact_id}/timeline"
    async with (
        serving_apart(ctx, NAME, product.servers_for("journeys")) as memory,
        httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, headers=BENCH_AUTHORIZATION) as client,
    ):
        with ctx.steps.step(f"{NAME}: follow the cursors to the last page"):
            walk = await _walk_to_the_end(client, url, seeded)
        timings = await _measure(ctx, client, url, walk, entries)
    return _figures(seeded, walk, timings, peak_rss_details(memory))


SCENARIO = Scenario(
    name=NAME,
    title="journeys timeline: last page vs first",
    measures=(
        f"`GET /v1/contacts/{{id}}/timeline` (limit {LIMIT}) of one contact with {ENTRIES:,} touchpoint "
        "entries, seeded straight into the journeys view `timeline_entry` (COPY on PostgreSQL), then "
        "ANALYZE; the cursors are followed to the end once, then the last page's request, the first "
        f"page's and a middle page's (a detail) are timed in turn ({READS} each at most, after "
        f"{WARMUP_READS} warm-up); baseline: the first page; target p50 ratio ≤ {TARGET.threshold:g}."
    ),
    run=run,
)
