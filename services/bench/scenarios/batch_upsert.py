"""Throughput of `POST /v1/contacts/batch/upsert` with batches of 1,000 new contacts, against a bare
multi-row INSERT of the same rows into a plain table of the same shape in a fresh database of the same
kind (a SQLite file in embedded mode, a PostgreSQL database in distributed mode)."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import Column, MetaData, String, Table, Uuid, insert

from services.bench.deployment import Product
from services.bench.memory import RssSampler
from services.bench.model import Figure
from services.bench.scenarios.base import ModeContext, Scenario
from services.bench.servers import BENCH_AUTHORIZATION, ServerProcess, start_all, stop_all
from services.bench.stats import percentile
from services.contacts.contacts.models import JSONDocument
from shared.db import Database, UTCDateTime
from shared.migrations import ensure_database_exists

NAME = "batch_upsert"
BATCH = 1000
CLIENTS = 4
REQUEST_TIMEOUT_S = 300.0
MB = 1_000_000
# How a Python exception's last line starts in a server log: `sqlite3.OperationalError: …`.
_ERROR_LINE = ("sqlite3.", "asyncpg.", "sqlalchemy.", "RuntimeError")

# The custom properties every record carries, defined through `POST /v1/properties` first.
PLANS = ("free", "starter", "pro", "enterprise")
PROPERTIES: tuple[dict[str, Any], ...] = (
    {
        "object_type": "contact",
        "key": "plan",
        "label": "Plan",
        "type": "enum",
        "options": list(PLANS),
        "personal_data": False,
    },
    {"object_type": "contact", "key": "score", "label": "Score", "type": "number", "personal_data": False},
)
FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Linus")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton")
COMPANIES = ("Acme GmbH", "Globex Ltd", "Initech SA", "Umbrella BV", "Hooli Inc", "Stark AB")
COUNTRIES = ("DE", "FR", "GB", "NL", "SE", "US", "ES", "IT")
STAGES = ("subscriber", "lead", "marketing_qualified_lead", "customer")


def contact_record(email: str, rng: random.Random) -> dict[str, Any]:
    """One upsert record: a few standard fields and the two custom properties."""
    return {
        "email": email,
        "first_name": rng.choice(FIRST_NAMES),
        "last_name": rng.choice(LAST_NAMES),
        "company_name": rng.choice(COMPANIES),
        "country": rng.choice(COUNTRIES),
        "lifecycle_stage": rng.choice(STAGES),
        "source": "bench",
        "properties": {"plan": rng.choice(PLANS), "score": rng.randint(0, 1000)},
    }


@dataclass
class _Batches:
    """Unique emails across every batch of one load phase."""

    prefix: str
    seed: int
    _numbers: itertools.count[int] = field(default_factory=itertools.count)

    def next(self) -> list[dict[str, Any]]:
        number = next(self._numbers)
        rng = random.Random(self.seed + number)
        return [contact_record(f"{self.prefix}-{number}-{i}@example.com", rng) for i in range(BATCH)]


@dataclass
class _Load:
    records: int = 0
    failed: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    def details(self, prefix: str) -> dict[str, float | int | str]:
        found: dict[str, float | int | str] = {
            f"{prefix}_records": self.records,
            f"{prefix}_batches": len(self.latencies_ms),
            f"{prefix}_s": round(self.seconds, 2),
        }
        if self.latencies_ms:
            found[f"{prefix}_batch_p50_ms"] = round(percentile(self.latencies_ms, 50), 1)
            found[f"{prefix}_batch_p99_ms"] = round(percentile(self.latencies_ms, 99), 1)
        return found


SendBatch = Callable[[list[dict[str, Any]]], Awaitable[tuple[int, int]]]
"""Writes one batch; returns (records written, records refused)."""


async def _closed_loop(send: SendBatch, batches: _Batches, seconds: float, clients: int) -> _Load:
    """`clients` loops, each sending its next batch when the previous one is answered, for `seconds`
    (every client sends at least one). The time runs until the last batch started is answered."""
    load = _Load()
    started = time.perf_counter()
    deadline = started + seconds

    async def client() -> None:
        first = True
        while first or time.perf_counter() < deadline:
            first = False
            records = batches.next()
            sent = time.perf_counter()
            written, failed = await send(records)
            load.latencies_ms.append((time.perf_counter() - sent) * 1000)
            load.records += written
            load.failed += failed

    await asyncio.gather(*(client() for _ in range(clients)))
    load.seconds = time.perf_counter() - started
    return load


async def _measure(ctx: ModeContext, who: str, send: SendBatch) -> _Load:
    settings = ctx.settings
    prefix = uuid.uuid4().hex[:12]
    if settings.warmup_s > 0:
        with ctx.steps.step(f"{NAME}: warm-up {who} ({settings.warmup_s:g}s, {CLIENTS} clients)"):
            await _closed_loop(send, _Batches(f"{prefix}-warmup", 1), settings.warmup_s, CLIENTS)
    with ctx.steps.step(f"{NAME}: {who}, batches of {BATCH} ({settings.duration_s:g}s, {CLIENTS} clients)"):
        return await _closed_loop(send, _Batches(prefix, 2), settings.duration_s, CLIENTS)


@asynccontextmanager
async def serving_apart(
    ctx: ModeContext, scenario: str, servers: Sequence[ServerProcess]
) -> AsyncIterator[RssSampler]:
    """Run `servers` with a memory sampler of their own: the mode's sampler (and with it the `memory`
    figure) covers the servers of create_contact and commit_to_view only. Stopped on the way out."""
    with RssSampler() as memory:
        try:
            with ctx.steps.step(f"{scenario}: start {', '.join(server.label for server in servers)}"):
                await start_all(servers)
            for server in servers:
                memory.watch(server.label, server.pid)
            yield memory
        finally:
            for server in servers:
                memory.unwatch(server.label)
            await stop_all(servers)


def peak_rss_details(memory: RssSampler) -> dict[str, float | int | str]:
    return {f"peak_rss_mb {label}": round(rss / MB, 1) for label, rss in sorted(memory.peaks().items())}


async def define_properties(client: httpx.AsyncClient, contacts_url: str) -> None:
    for definition in PROPERTIES:
        answer = await client.post(
            f"{contacts_url}/v1/properties", json=definition, headers=BENCH_AUTHORIZATION
        )
        if answer.status_code not in (201, 409):
            raise RuntimeError(f"POST /v1/properties answered {answer.status_code}: {answer.text[:300]}")


def _why(product: Product) -> str:
    """The last error a server logged, to say why a batch failed."""
    for server in product.servers:
        errors = [line for line in server.tail(400).splitlines() if line.startswith(_ERROR_LINE)]
        if errors:
            return f"; {server.label} logged: {errors[-1][:300]}"
    return ""


async def _product(ctx: ModeContext) -> tuple[_Load, dict[str, float | int | str]]:
    product = await ctx.deployment.product(NAME)
    url = f"{product.contacts_url}/v1/contacts/batch/upsert"
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with (
        serving_apart(ctx, NAME, product.servers) as memory,
        httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=limits) as client,
    ):
        await define_properties(client, product.contacts_url)

        async def send(records: list[dict[str, Any]]) -> tuple[int, int]:
            try:
                answer = await client.post(url, json={"records": records}, headers=BENCH_AUTHORIZATION)
            except httpx.HTTPError as exc:
                raise RuntimeError(
                    f"a batch of {len(records)} got {type(exc).__name__}{_why(product)}"
                ) from exc
            if answer.status_code != 200:
                raise RuntimeError(
                    f"a batch of {len(records)} answered {answer.status_code} {answer.text[:120]!r}"
                    f"{_why(product)}"
                )
            results = answer.json()["results"]
            created = sum(1 for result in results if result["status"] == "created")
            return created, len(records) - created

        load = await _measure(ctx, "POST /v1/contacts/batch/upsert", send)
    return load, peak_rss_details(memory)


def _plain_table() -> Table:
    """The columns a record fills in `contact`, with the same types; a primary key and nothing else."""
    return Table(
        "bench_plain_contact",
        MetaData(),
        Column("id", Uuid, primary_key=True),
        Column("email", String(320)),
        Column("first_name", String(200)),
        Column("last_name", String(200)),
        Column("company_name", String(200)),
        Column("country", String(2)),
        Column("lifecycle_stage", String(40), nullable=False),
        Column("source", String(200)),
        Column("properties", JSONDocument, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("updated_at", UTCDateTime(), nullable=False),
    )


async def _bare_insert(ctx: ModeContext) -> _Load:
    url = await ctx.deployment.fresh_database_url("contacts", f"{NAME}-plain-insert")
    await ensure_database_exists(url)
    # The product's engine settings (on SQLite: WAL, busy timeout, a write lock per transaction).
    database = Database(url)
    table = _plain_table()
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(table.metadata.create_all)

        async def send(records: list[dict[str, Any]]) -> tuple[int, int]:
            now = datetime.now(UTC)
            rows = [
                {**record, "id": uuid.uuid4(), "created_at": now, "updated_at": now} for record in records
            ]
            async with database.engine.begin() as connection:
                await connection.execute(insert(table), rows)
            return len(rows), 0

        return await _measure(ctx, "bare INSERT", send)
    finally:
        await database.dispose()


async def run(ctx: ModeContext) -> list[Figure]:
    baseline = await _bare_insert(ctx)
    subject, memory = await _product(ctx)
    note = f"{subject.failed} records not created" if subject.failed else ""
    details = {**subject.details("upsert"), **baseline.details("insert"), "clients": CLIENTS, **memory}
    return [
        Figure(
            NAME,
            "throughput",
            "records/s",
            subject.per_s,
            baseline.per_s,
            None,
            details=details,
            note=note,
        ),
        Figure(
            NAME,
            "batch p50 latency",
            "ms",
            percentile(subject.latencies_ms, 50),
            percentile(baseline.latencies_ms, 50),
        ),
        Figure(
            NAME,
            "batch p99 latency",
            "ms",
            percentile(subject.latencies_ms, 99),
            percentile(baseline.latencies_ms, 99),
        ),
    ]


SCENARIO = Scenario(
    name=NAME,
    title="batch upsert throughput",
    measures=(
        f"records/s of `POST /v1/contacts/batch/upsert`, {BATCH} new contacts per batch (email, names, "
        f"company, country, stage, source and two custom properties, `plan` and `score`), {CLIENTS} clients "
        f"each sending its next batch when the last is answered; vs a bare INSERT of the same rows "
        f"(one executemany and one transaction per {BATCH}, same {CLIENTS} clients) into a plain table of "
        "the same columns with only a primary key, in a fresh database of the same kind; no target."
    ),
    run=run,
)
