"""Latency of `POST /v1/contacts/search` with a custom-property filter at 10^4 and 10^6 contacts.

Each size gets a fresh product whose contacts database is migrated and then seeded directly, in bulk
(COPY on PostgreSQL, executemany in big transactions on SQLite): one row per contact in `contact` (with
its `properties` JSON), one email in `contact_identity`, and two rows in `custom_value`, as the
service writes them. Seeding a million contacts through the API would take far longer than measuring.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert, text

from services.bench.deployment import Product
from services.bench.model import Figure, Target
from services.bench.progress import SeedProgress
from services.bench.scenarios.base import ModeContext, Scenario
from services.bench.scenarios.batch_upsert import (
    COMPANIES,
    COUNTRIES,
    FIRST_NAMES,
    LAST_NAMES,
    PLANS,
    STAGES,
    define_properties,
    peak_rss_details,
    serving_apart,
)
from services.bench.servers import BENCH_AUTHORIZATION
from services.bench.stats import percentile
from services.contacts.contacts.models import Contact, ContactIdentity
from services.contacts.properties.models import CustomValue
from services.registry import SERVICES
from shared.db import Database
from shared.migrations import upgrade_to_head

NAME = "contact_search"
DEFAULT_SIZES = (10_000, 1_000_000)
TARGET = Target("ratio_at_most", 3.0)
CHUNK = 50_000
"""Contacts per COPY / executemany round."""
TRANSACTION = 200_000
"""Contacts per transaction while seeding."""
WARMUP_SEARCHES = 10
SEARCHES = 100
MIN_SEARCHES = 20
"""Searches stop after `--duration` seconds once this many are measured, or at `SEARCHES`."""
LIMIT = 50
HISTORY = timedelta(days=730)
"""Contacts were created evenly over this span, the newest just now."""
REQUEST_TIMEOUT_S = 120.0

# Selective but not tiny: 1/4 of the plans, 51/1001 of the scores ≈ 1.3 % of the contacts.
SEARCH_PLAN = "enterprise"
SCORE_LOW, SCORE_HIGH = 900, 950
FILTER: dict[str, Any] = {
    "and": [
        {"field": "properties.plan", "op": "eq", "value": SEARCH_PLAN},
        {"field": "properties.score", "op": "between", "value": [SCORE_LOW, SCORE_HIGH]},
    ]
}


@dataclass(frozen=True)
class Query:
    label: str
    body: dict[str, Any]


QUERIES = (
    Query("newest first", {"filter": FILTER, "limit": LIMIT}),
    Query(
        "by properties.score desc",
        {"filter": FILTER, "sort": {"field": "properties.score", "direction": "desc"}, "limit": LIMIT},
    ),
)


@dataclass
class Seeded:
    contacts: int
    matches: int
    """How many contacts the measured filter matches."""
    seed_s: float
    analyze_s: float


@dataclass
class _Chunk:
    contacts: list[dict[str, Any]] = field(default_factory=list)
    identities: list[dict[str, Any]] = field(default_factory=list)
    values: list[dict[str, Any]] = field(default_factory=list)
    matches: int = 0


def _chunks(size: int, seed: int) -> Iterator[_Chunk]:
    """`size` contacts in rows of the service's tables, `CHUNK` at a time, oldest first."""
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:8]
    newest = datetime.now(UTC)
    step = HISTORY / size
    chunk = _Chunk()
    for number in range(size):
        contact_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        created = newest - HISTORY + step * number
        email = f"c{number}-{run}@example.com"
        plan = rng.choice(PLANS)
        score = rng.randint(0, 1000)
        chunk.contacts.append(
            {
                "id": contact_id,
                "email": email,
                "first_name": rng.choice(FIRST_NAMES),
                "last_name": rng.choice(LAST_NAMES),
                "company_name": rng.choice(COMPANIES),
                "country": rng.choice(COUNTRIES),
                "lifecycle_stage": rng.choice(STAGES),
                "source": "bench",
                "properties": {"plan": plan, "score": score},
                "created_at": created,
                "updated_at": created,
            }
        )
        chunk.identities.append(
            {"namespace": "email", "value": email, "contact_id": contact_id, "created_at": created}
        )
        for key, text_value, number_value in (("plan", plan, None), ("score", None, float(score))):
            chunk.values.append(
                {
                    "object_type": "contact",
                    "object_id": contact_id,
                    "property_key": key,
                    "ordinal": 0,
                    "value_text": text_value,
                    "value_number": number_value,
                    "value_date": None,
                }
            )
        chunk.matches += plan == SEARCH_PLAN and SCORE_LOW <= score <= SCORE_HIGH
        if len(chunk.contacts) == CHUNK:
            yield chunk
            chunk = _Chunk()
    if chunk.contacts:
        yield chunk


def _tuples(rows: list[dict[str, Any]], columns: Sequence[str]) -> list[tuple[Any, ...]]:
    return [tuple(row[column] for column in columns) for row in rows]


CONTACT_COLUMNS = (
    "id",
    "email",
    "first_name",
    "last_name",
    "company_name",
    "country",
    "lifecycle_stage",
    "source",
    "properties",
    "created_at",
    "updated_at",
)
IDENTITY_COLUMNS = ("namespace", "value", "contact_id", "created_at")
VALUE_COLUMNS = (
    "object_type",
    "object_id",
    "property_key",
    "ordinal",
    "value_text",
    "value_number",
    "value_date",
)


async def _seed_postgres(ctx: ModeContext, database: Database, size: int) -> int:
    """COPY into the three tables (asyncpg's binary COPY); a transaction per `TRANSACTION` contacts."""
    progress = SeedProgress(ctx.steps, NAME, size, "contacts")
    matches = 0
    async with database.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection  # asyncpg's own connection, for COPY
        transaction = driver.transaction()
        await transaction.start()
        try:
            in_transaction = 0
            for chunk in _chunks(size, seed=size):
                for row in chunk.contacts:
                    row["properties"] = json.dumps(row["properties"])
                for table, rows, columns in (
                    ("contact", chunk.contacts, CONTACT_COLUMNS),
                    ("contact_identity", chunk.identities, IDENTITY_COLUMNS),
                    ("custom_value", chunk.values, VALUE_COLUMNS),
                ):
                    await driver.copy_records_to_table(table, records=_tuples(rows, columns), columns=columns)
                matches += chunk.matches
                in_transaction += len(chunk.contacts)
                if in_transaction >= TRANSACTION:
                    await transaction.commit()
                    transaction = driver.transaction()
                    await transaction.start()
                    in_transaction = 0
                progress.add(len(chunk.contacts))
            await transaction.commit()
        except BaseException:
            await transaction.rollback()
            raise
    return matches


async def _seed_sqlite(ctx: ModeContext, database: Database, size: int) -> int:
    """executemany through the service's own table definitions (so values are stored exactly as the
    service stores them); a transaction per `TRANSACTION` contacts."""
    progress = SeedProgress(ctx.steps, NAME, size, "contacts")
    matches = 0
    chunks = _chunks(size, seed=size)
    exhausted = False
    while not exhausted:
        async with database.engine.begin() as connection:
            # Only this connection, only while seeding: a bigger page cache for the index inserts.
            await connection.execute(text("PRAGMA cache_size=-262144"))
            in_transaction = 0
            while in_transaction < TRANSACTION:
                chunk = next(chunks, None)
                if chunk is None:
                    exhausted = True
                    break
                await connection.execute(insert(Contact), chunk.contacts)
                await connection.execute(insert(ContactIdentity), chunk.identities)
                await connection.execute(insert(CustomValue), chunk.values)
                matches += chunk.matches
                in_transaction += len(chunk.contacts)
                progress.add(len(chunk.contacts))
    return matches


def contacts_database_url(product: Product) -> str:
    """Where the product's contacts service keeps its data: the URL its servers are given, else (embedded
    mode) the SQLite file in its data folder."""
    for server in product.servers:
        if url := server.env.get("CRM_CONTACTS_DATABASE_URL"):
            return url
    return f"sqlite+aiosqlite:///{(product.platform.data_dir / 'contacts.sqlite').resolve()}"


async def analyze(ctx: ModeContext, scenario: str, database: Database) -> float:
    """Statistics for the planner (and, on PostgreSQL, a visibility map for index-only scans), as a
    database that grew to its size would have them. Returns the seconds it took."""
    statement = "ANALYZE" if database.is_sqlite else "VACUUM (ANALYZE)"
    with ctx.steps.step(f"{scenario}: {statement} after seeding"):
        started = time.perf_counter()
        async with database.engine.connect() as connection:
            if not database.is_sqlite:
                connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(statement))
            await connection.commit()
        return time.perf_counter() - started


async def _seed(ctx: ModeContext, url: str, size: int) -> Seeded:
    definition = SERVICES["contacts"]
    database = Database(url)
    try:
        with ctx.steps.step(f"{NAME}: migrate a fresh contacts database"):
            await upgrade_to_head(database, definition.migrations_dir, definition.metadata)
        with ctx.steps.step(f"{NAME}: seed {size:,} contacts"):
            started = time.perf_counter()
            seed = _seed_sqlite if database.is_sqlite else _seed_postgres
            matches = await seed(ctx, database, size)
            seed_s = time.perf_counter() - started
        analyze_s = await analyze(ctx, NAME, database)
    finally:
        await database.dispose()
    return Seeded(size, matches, seed_s, analyze_s)


@dataclass
class Timings:
    samples_ms: list[float]

    @property
    def p50(self) -> float:
        return percentile(self.samples_ms, 50)

    @property
    def p99(self) -> float:
        return percentile(self.samples_ms, 99)


async def _search(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = await client.post(url, json=body, headers=BENCH_AUTHORIZATION)
    if answer.status_code != 200:
        raise RuntimeError(f"search answered {answer.status_code}: {answer.text[:300]}")
    found: dict[str, Any] = answer.json()
    return found


async def _measure(
    ctx: ModeContext, client: httpx.AsyncClient, url: str, seeded: Seeded
) -> dict[str, Timings]:
    timings: dict[str, Timings] = {}
    for query in QUERIES:
        # The seeded rows are what the service finds: same count, a full first page.
        checked = await _search(client, url, {**query.body, "with_total": True})
        expected_items = min(LIMIT, seeded.matches)
        if checked["total"] != seeded.matches or len(checked["items"]) != expected_items:
            raise RuntimeError(
                f"search ({query.label}) found {checked['total']} contacts and returned "
                f"{len(checked['items'])}; {seeded.matches} and {expected_items} were seeded"
            )
        searches = f"{WARMUP_SEARCHES} warm-up + up to {SEARCHES} searches"
        with ctx.steps.step(f"{NAME}: {seeded.contacts:,} contacts, {query.label}: {searches}"):
            for _ in range(WARMUP_SEARCHES):
                await _search(client, url, query.body)
            samples: list[float] = []
            started = time.perf_counter()
            while len(samples) < SEARCHES and (
                len(samples) < MIN_SEARCHES or time.perf_counter() - started < ctx.settings.duration_s
            ):
                sent = time.perf_counter()
                await _search(client, url, query.body)
                samples.append((time.perf_counter() - sent) * 1000)
        timings[query.label] = Timings(samples)
    return timings


@dataclass
class SizeResult:
    seeded: Seeded
    timings: dict[str, Timings]
    memory: dict[str, float | int | str]


async def _one_size(ctx: ModeContext, size: int) -> SizeResult:
    product = await ctx.deployment.product(f"{NAME}-{size}")
    seeded = await _seed(ctx, contacts_database_url(product), size)
    async with (
        serving_apart(ctx, NAME, product.servers) as memory,
        httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as client,
    ):
        await define_properties(client, product.contacts_url)
        timings = await _measure(ctx, client, f"{product.contacts_url}/v1/contacts/search", seeded)
    return SizeResult(seeded, timings, peak_rss_details(memory))


def _figures(results: dict[int, SizeResult]) -> list[Figure]:
    sizes = sorted(results)
    small, large = sizes[0], sizes[-1]
    compared = len(sizes) > 1
    seeding: dict[str, float | int | str] = {}
    for size in sizes:
        seeded = results[size].seeded
        seeding[f"seed_s@{size}"] = round(seeded.seed_s, 1)
        seeding[f"analyze_s@{size}"] = round(seeded.analyze_s, 1)
        seeding[f"matches@{size}"] = seeded.matches
        seeding.update({f"{key}@{size}": value for key, value in results[size].memory.items()})
    figures = []
    for position, query in enumerate(QUERIES):
        latencies: dict[str, float | int | str] = {}
        for size in sizes:
            timing = results[size].timings[query.label]
            latencies[f"p50_ms@{size}"] = round(timing.p50, 2)
            latencies[f"p99_ms@{size}"] = round(timing.p99, 2)
            latencies[f"searches@{size}"] = len(timing.samples_ms)
        versus = f"{large:,} vs {small:,} contacts" if compared else f"{large:,} contacts"
        for stat, target in (("p50", TARGET), ("p99", None)):
            value = getattr(results[large].timings[query.label], stat)
            baseline = getattr(results[small].timings[query.label], stat) if compared else None
            details = {**latencies, **(seeding if position == 0 else {})} if stat == "p50" else {}
            figures.append(
                Figure(
                    NAME,
                    f"{stat} latency, {query.label} ({versus})",
                    "ms",
                    value,
                    baseline,
                    target if compared else None,
                    details=details,
                    note="" if compared else "one size only: nothing to compare",
                )
            )
    return figures


async def run_sizes(sizes: Sequence[int], ctx: ModeContext) -> list[Figure]:
    results = {size: await _one_size(ctx, size) for size in sorted(set(sizes))}
    return _figures(results)


def _measures(sizes: Sequence[int]) -> str:
    ordered = sorted(set(sizes))
    return (
        f"`POST /v1/contacts/search` latency at {' and '.join(f'{size:,}' for size in ordered)} contacts "
        f"(each a fresh product, seeded directly in its database, then ANALYZE on SQLite and VACUUM "
        f"(ANALYZE) on PostgreSQL), filter `properties.plan eq {SEARCH_PLAN} AND properties.score between "
        f"{SCORE_LOW} and {SCORE_HIGH}` (≈1.3 % of contacts), limit {LIMIT}, newest first and by the score; "
        f"{SEARCHES} sequential searches after {WARMUP_SEARCHES} warm-up; baseline: the same figure at the "
        f"smallest size; target p50 ratio ≤ {TARGET.threshold:g}."
    )


def scenario(sizes: Sequence[int]) -> Scenario:
    """This scenario at other sizes than the default."""

    async def run(ctx: ModeContext) -> list[Figure]:
        return await run_sizes(sizes, ctx)

    return dataclasses.replace(SCENARIO, measures=_measures(sizes), run=run)


async def run(ctx: ModeContext) -> list[Figure]:
    return await run_sizes(DEFAULT_SIZES, ctx)


SCENARIO = Scenario(
    name=NAME, title="contact search latency by size", measures=_measures(DEFAULT_SIZES), run=run
)
