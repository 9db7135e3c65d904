"""The tests' own service-shaped database, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import insert

from shared.db import Database
from shared.outbox import slot_rows
from tests.shared.support import metadata, tables


async def _prepared(url: str) -> Database:
    db = Database(url)
    async with db.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
        await connection.execute(insert(tables.outbox_tables.slots), slot_rows())
    return db


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = await _prepared(database_url)
    yield db
    await db.dispose()


@pytest.fixture
async def pg_database(postgres_database: str) -> AsyncIterator[Database]:
    """The same, on PostgreSQL only: for what only PostgreSQL's concurrency can show."""
    db = await _prepared(postgres_database)
    yield db
    await db.dispose()
