"""Each service's migrations build exactly the schema its models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection, make_url

from services.registry import SERVICES
from shared.db import Database
from shared.migrations import alembic_config, upgrade_to_head
from shared.outbox import SLOT_COUNT
from tests.conftest import drop_database


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_migrations_match_the_models_and_run_both_ways(service: str, database_url: str) -> None:
    definition = SERVICES[service]
    database = Database(database_url)
    try:
        await upgrade_to_head(database, definition.migrations_dir, definition.metadata)
        await upgrade_to_head(database, definition.migrations_dir, definition.metadata)  # idempotent

        def drift(connection: Connection) -> list[object]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, definition.metadata))

        async with database.engine.connect() as connection:
            assert await connection.run_sync(drift) == []
            slots = definition.outbox.slots
            assert await connection.scalar(select(func.count()).select_from(slots)) == SLOT_COUNT

        config = alembic_config(definition.migrations_dir, database_url, definition.metadata)

        head = ScriptDirectory.from_config(config).get_current_head()

        def down_and_up(connection: Connection) -> None:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
            command.upgrade(config, "head")

        async with database.engine.begin() as connection:
            await connection.run_sync(down_and_up)
            version = await connection.scalar(text("SELECT version_num FROM alembic_version"))
        assert version == head
    finally:
        await database.dispose()


async def test_migrate_creates_a_missing_postgres_database(postgres_url: str) -> None:
    name = f"created_{uuid.uuid4().hex[:8]}"
    url = make_url(postgres_url).set(drivername="postgresql+asyncpg", database=name)
    database = Database(url.render_as_string(hide_password=False))
    definition = SERVICES["contacts"]
    try:
        await upgrade_to_head(database, definition.migrations_dir, definition.metadata)
        assert await database.ping()
    finally:
        await database.dispose()
        await drop_database(name, postgres_url)
