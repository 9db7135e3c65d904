"""Readiness depends on the database only; a bus outage shows as `degraded`, not as not-ready."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from services.contacts.app import DEFINITION
from services.contacts.db import tables
from shared.bus.base import EventBus
from shared.bus.embedded import EmbeddedBus
from shared.bus.kafka import KafkaBus
from shared.observability import BUS_UP
from shared.runtime import ServiceRuntime
from shared.settings import PlatformSettings
from shared.testing.apps import service_client
from shared.web.app import create_service_app


def _bus_up() -> float | None:
    return REGISTRY.get_sample_value("crm_bus_up", {"service": "contacts"})


def _bus_up_served(exposition: str) -> float | None:
    """`crm_bus_up` for contacts as `/metrics` serves it, read by the Prometheus text parser."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "crm_bus_up" and sample.labels == {"service": "contacts"}:
                return sample.value
    return None


def _forget_bus_up() -> None:
    """Label children outlive a test: set a value no probe sets, so a stale one cannot pass for ours."""
    BUS_UP.labels("contacts").set(-1)


async def _outbox_rows(runtime: ServiceRuntime) -> int:
    async with runtime.database.sessionmaker() as session:
        count = await session.scalar(select(func.count()).select_from(tables.outbox_tables.events))
    return int(count or 0)


async def test_with_database_and_bus_up_the_service_is_ready(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    """200 `ready` with both checks `ok`, and `crm_bus_up` 1."""
    _forget_bus_up()
    async with service_client(DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path) as (
        client,
        _runtime,
    ):
        response = await client.get("/readyz")
        metrics = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "service": "contacts",
        "checks": {"database": "ok", "bus": "ok"},
    }
    assert metrics.status_code == 200
    assert _bus_up() == 1.0
    assert _bus_up_served(metrics.text) == 1.0


@asynccontextmanager
async def _service_without_bus(
    how: str, database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, ServiceRuntime]]:
    """The contacts service (relay running) with its bus gone, in the way `how` names."""
    bus: EventBus = local_bus
    if how == "embedded-stopped-before-start":
        await local_bus.stop()
    elif how == "kafka-unreachable":
        bus = KafkaBus("127.0.0.1:1", request_timeout_ms=1000)
    try:
        async with service_client(DEFINITION, database_url=database_url, bus=bus, data_dir=tmp_path) as (
            client,
            runtime,
        ):
            if how == "embedded-stopped-after-start":
                assert runtime.bus_up, "the bus was up at start"
                await local_bus.stop()
                await runtime._probe_bus()  # what the background probe does every few seconds
            yield client, runtime
    finally:
        if bus is not local_bus:
            await bus.stop()


@pytest.mark.parametrize(
    "how", ["embedded-stopped-before-start", "embedded-stopped-after-start", "kafka-unreachable"]
)
async def test_with_the_bus_gone_the_service_is_degraded_and_keeps_taking_writes(
    how: str, database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    """200 `degraded` with `checks.bus` unreachable, `crm_bus_up` 0, and a create lands in the outbox."""
    _forget_bus_up()
    async with _service_without_bus(how, database_url, local_bus, tmp_path) as (client, runtime):
        response = await client.get("/readyz")
        bus_up = _bus_up()
        served = _bus_up_served((await client.get("/metrics")).text)
        created = await client.post("/v1/contacts", json={"email": "grace@example.com"})
        kept = await _outbox_rows(runtime)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"] == {"database": "ok", "bus": "unreachable"}
    assert (bus_up, served) == (0.0, 0.0)
    assert created.status_code == 201, created.text
    assert kept == 1


@asynccontextmanager
async def _unreachable_database(how: str) -> AsyncIterator[str]:
    """A PostgreSQL URL on which no database answers: the port refuses, or accepts and stays silent."""
    if how == "refused":
        yield "postgresql+asyncpg://crm:crm@127.0.0.1:1/nothing"
        return
    accepted: list[asyncio.StreamWriter] = []

    async def hold_open(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(hold_open, "127.0.0.1", 0)
    try:
        yield f"postgresql+asyncpg://crm:crm@127.0.0.1:{server.sockets[0].getsockname()[1]}/nothing"
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("how", ["refused", "silent"])
async def test_with_the_database_unreachable_the_service_is_not_ready(
    how: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    """503 problem+json of type `not-ready` within a few seconds, while the bus is fine; and the service
    starts within a few seconds too, to answer that."""
    async with _unreachable_database(how) as database_url:
        settings = DEFINITION.settings_class(
            database_url=database_url, migrate_on_start=False, run_relay=False, run_consumers=False
        )
        runtime = ServiceRuntime(
            DEFINITION, platform=PlatformSettings(data_dir=tmp_path), settings=settings, bus=local_bus
        )
        app = create_service_app(DEFINITION, runtime)
        starting = time.monotonic()
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client,
        ):
            start_up = time.monotonic() - starting
            started = time.monotonic()
            response = await client.get("/readyz")
            elapsed = time.monotonic() - started
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("not-ready")
    assert problem["status"] == 503
    assert elapsed < 5
    assert start_up < 10, f"start-up waited {start_up:.0f}s for the database"


# Set while the test itself sends requests; the background probe task was started before, so it
# runs without it and its pings are not counted.
_SERVING_TEST_REQUESTS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "serving_test_requests", default=False
)


class PingCountingBus(EmbeddedBus):
    """An embedded bus that counts the pings made on behalf of the test's own requests."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.pings_for_requests = 0

    async def ping(self) -> bool:
        if _SERVING_TEST_REQUESTS.get():
            self.pings_for_requests += 1
        return await super().ping()


async def test_readiness_does_not_touch_the_bus_per_request(database_url: str, tmp_path: Path) -> None:
    """Twenty `/readyz` calls cause no bus ping: readiness reads the last background probe."""
    bus = PingCountingBus(tmp_path / "events.sqlite")
    await bus.start()
    try:
        async with service_client(
            DEFINITION, database_url=database_url, bus=bus, data_dir=tmp_path, relay=False
        ) as (client, runtime):
            token = _SERVING_TEST_REQUESTS.set(True)
            try:
                answers = [(await client.get("/readyz")).status_code for _ in range(20)]
                pings_for_readyz = bus.pings_for_requests
                await runtime._probe_bus()  # the counter does see a ping made from here
                pings_after_probe = bus.pings_for_requests
            finally:
                _SERVING_TEST_REQUESTS.reset(token)
    finally:
        await bus.stop()
    assert answers == [200] * 20
    assert pings_for_readyz == 0
    assert pings_after_probe == 1
