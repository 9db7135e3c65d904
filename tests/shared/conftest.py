"""The tests' own service-shaped database, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import insert

from shared.db import Database
from shared.outbox import slot_rows
from tests.shared.support import metadata, tables


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    async with db.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
        await connection.execute(insert(tables.outbox_tables.slots), slot_rows())
    yield db
    await db.dispose()
