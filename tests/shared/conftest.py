"""A service-shaped database of the tests' own: outbox, consumer tables and an append-only effect log."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Column, Integer, String, Table, func, insert, select

from shared.db import Database, new_metadata, session_scope
from shared.events.catalog import ContactCreated
from shared.outbox import slot_rows
from shared.service_tables import define_service_tables

metadata = new_metadata()
tables = define_service_tables(metadata, service="test")
# Append-only on purpose: a unique key here would hide an event applied twice.
effects = Table(
    "effect",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("note", String(50)),
)
# One aggregate that concurrent transactions update, each announcing its new value.
aggregates = Table(
    "aggregate", metadata, Column("id", String(36), primary_key=True), Column("value", String(50))
)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    async with db.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
        await connection.execute(insert(tables.outbox_tables.slots), slot_rows())
    yield db
    await db.dispose()


def created(contact_id: uuid.UUID, source: str = "test") -> ContactCreated:
    return ContactCreated(
        contact_id=contact_id, lifecycle_stage="lead", source=source, created_at=datetime.now(UTC)
    )


async def count(database: Database, table: Table) -> int:
    async with database.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def stage(database: Database, event: ContactCreated) -> None:
    async with session_scope(database) as session:
        await tables.outbox.add(session, event)
