"""Fixtures for real infrastructure.

Kafka and PostgreSQL are started once per test session by the project's own `deploy/` scripts (the
first run downloads the Kafka jars from Maven Central and, if missing, installs PostgreSQL). To use
servers you already run, set CRM_TEST_KAFKA_BOOTSTRAP and/or CRM_TEST_POSTGRES_URL.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from shared.bus.base import EventBus
from shared.bus.embedded import EmbeddedBus
from shared.bus.kafka import KafkaBus
from shared.testing import templates
from shared.testing.infra import REPOSITORY, KafkaBroker, PostgresServer
from shared.testing.processes import CrmProcess, free_port

INFRA = REPOSITORY / ".infra"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    if existing := os.environ.get("CRM_TEST_KAFKA_BOOTSTRAP"):
        yield existing
        return
    broker = KafkaBroker(
        port=int(os.environ.get("CRM_TEST_KAFKA_PORT", "19092")), data_dir=INFRA / "test-kafka"
    )
    broker.reset()  # a fresh log per session: topics and groups from earlier runs would leak in
    yield broker.start()
    broker.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if existing := os.environ.get("CRM_TEST_POSTGRES_URL"):
        yield existing
        return
    server = PostgresServer(
        port=int(os.environ.get("CRM_TEST_POSTGRES_PORT", "55432")), data_dir=INFRA / "test-postgres"
    )
    yield server.start()
    server.stop()


async def _admin(sql: str, server_url: str) -> None:
    engine = create_async_engine(
        make_url(server_url).set(drivername="postgresql+asyncpg", database="postgres"),
        isolation_level="AUTOCOMMIT",
        poolclass=pool.NullPool,
    )
    try:
        async with engine.connect() as connection:
            await connection.execute(text(sql))
    finally:
        await engine.dispose()


@pytest.fixture
async def postgres_database(postgres_url: str) -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    name, url = await create_database(postgres_url)
    yield url
    await drop_database(name, postgres_url)


async def create_database(server_url: str) -> tuple[str, str]:
    """A fresh, empty PostgreSQL database on the server: its name and URL (drop it with
    `drop_database`)."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"', server_url)
    url = make_url(server_url).set(drivername="postgresql+asyncpg", database=name)
    return name, url.render_as_string(hide_password=False)


async def drop_database(name: str, server_url: str) -> None:
    # FORCE may not terminate an autovacuum worker that happens to be on the database (it is not ours
    # to signal); that worker finishes within moments, so try again.
    for attempt in range(50):
        try:
            await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', server_url)
            return
        except DBAPIError as exc:
            if "pg_signal_backend" not in str(exc) or attempt == 49:
                raise
            await asyncio.sleep(0.1)


@pytest.fixture(scope="session", autouse=True)
def migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[templates.MigratedTemplates]:
    """Each service's migrations run once a session on SQLite, into a file its tests' databases are
    copied from (`shared/testing/templates.py`)."""
    made = templates.active = templates.MigratedTemplates(tmp_path_factory.mktemp("templates"))
    yield made
    templates.active = None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on SQLite (embedded mode) and on PostgreSQL (distributed mode)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'service.sqlite'}"
    return str(request.getfixturevalue("postgres_database"))


@pytest.fixture
async def local_bus(tmp_path: Path) -> AsyncIterator[EmbeddedBus]:
    """An embedded bus of the test's own, for suites whose subject is not the bus."""
    bus = EmbeddedBus(tmp_path / "events.sqlite", poll_interval_s=0.05)
    await bus.start()
    yield bus
    await bus.stop()


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventBus]:
    """The same test against both bus implementations."""
    implementation: EventBus
    if request.param == "embedded":
        implementation = EmbeddedBus(tmp_path / "events.sqlite", poll_interval_s=0.05)
    else:
        implementation = KafkaBus(request.getfixturevalue("kafka_bootstrap"), client_id="crm-test")
    await implementation.start()
    yield implementation
    await implementation.stop()


@pytest.fixture
def topic() -> str:
    """A topic no other test uses."""
    return f"test.{uuid.uuid4().hex[:10]}"


Launcher = Callable[..., dict[str, str]]


@contextmanager
def launching(folder: Path) -> Iterator[Launcher]:
    """Start `crm serve <service>` processes with the given env; returns each one's base URL.

    Every process is stopped on leaving; each one's output is in `<folder>/<service>.log`.
    """
    started: list[CrmProcess] = []

    def start(env: dict[str, str], *services: str) -> dict[str, str]:
        urls = {}
        for service in services:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            process = CrmProcess(
                ["serve", service, "--port", str(port)],
                env=env,
                log_path=folder / f"{service}.log",
                health_url=f"{base}/healthz",
            )
            started.append(process)
            process.start(timeout_s=90)
            urls[service] = base
        return urls

    try:
        yield start
    finally:
        for process in reversed(started):
            process.stop()


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launcher]:
    """`launching` for one test, its logs in the test's `tmp_path`."""
    with launching(tmp_path) as start:
        yield start
