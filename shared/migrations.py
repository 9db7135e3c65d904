"""Alembic plumbing shared by every service's migrations environment.

Each service keeps its own `migrations/` folder (env.py + versions/); these helpers build the Alembic
config in code, run upgrades from async code, and create a PostgreSQL database on first use.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import Database, UTCDateTime
from shared.outbox import slot_rows

# A fixed key so that replicas starting together run migrations one at a time.
_MIGRATION_LOCK_KEY = 7_114_251


def alembic_config(migrations_dir: Path, url: str, metadata: MetaData) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.set_main_option(
        "file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(hour).2d%%(minute).2d_%%(slug)s"
    )
    config.attributes["target_metadata"] = metadata
    return config


def run_env() -> None:
    """Body of every service's `migrations/env.py`."""
    config = context.config
    metadata: MetaData = config.attributes["target_metadata"]
    connection: Connection | None = config.attributes.get("connection")

    def run(sync_connection: Connection) -> None:
        context.configure(
            connection=sync_connection,
            target_metadata=metadata,
            render_as_batch=sync_connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    if connection is not None:
        run(connection)
        return

    async def run_async() -> None:
        url = config.get_main_option("sqlalchemy.url")
        assert url is not None
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as async_connection:
            await async_connection.run_sync(run)
        await engine.dispose()

    asyncio.run(run_async())


async def ensure_database_exists(url: str) -> None:
    """Create the PostgreSQL database named in `url` if it is missing (SQLite creates files itself)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        return
    admin = create_async_engine(
        parsed.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=pool.NullPool
    )
    try:
        async with admin.connect() as connection:
            exists = await connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": parsed.database}
            )
            if not exists:
                quoted = parsed.database.replace('"', '""')
                await connection.execute(text(f'CREATE DATABASE "{quoted}"'))
    finally:
        await admin.dispose()


async def upgrade_to_head(database: Database, migrations_dir: Path, metadata: MetaData) -> None:
    await ensure_database_exists(database.url)
    config = alembic_config(migrations_dir, database.url, metadata)

    def upgrade(sync_connection: Connection) -> None:
        config.attributes["connection"] = sync_connection
        command.upgrade(config, "head")

    async with database.engine.connect() as connection:
        if not database.is_sqlite:
            await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            await connection.commit()
        try:
            await connection.run_sync(upgrade)
            await connection.commit()
        finally:
            if not database.is_sqlite:
                await connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
                await connection.commit()


def create_infrastructure_tables_v1() -> None:
    """Outbox and processed-event tables as first released, for each service's initial migration.

    Frozen: a later change to these tables gets its own `..._v2` step, so history never moves.
    """
    op.create_table(
        "outbox_event",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("partition_key", sa.String(length=200), nullable=False),
        sa.Column("slot", sa.SmallInteger(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_event")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_event_id")),
    )
    op.create_index(op.f("ix_outbox_event_slot"), "outbox_event", ["slot"], unique=False)
    slots = op.create_table(
        "outbox_slot",
        sa.Column("slot", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("owner", sa.String(length=32), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("slot", name=op.f("pk_outbox_slot")),
    )
    op.bulk_insert(slots, slot_rows())
    op.create_table(
        "processed_event",
        sa.Column("consumer", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("processed_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_processed_event")),
    )


def drop_infrastructure_tables_v1() -> None:
    op.drop_table("processed_event")
    op.drop_table("outbox_slot")
    op.drop_index(op.f("ix_outbox_event_slot"), table_name="outbox_event")
    op.drop_table("outbox_event")


def create_infrastructure_tables_v2() -> None:
    """Consumer positions, a pruning index for processed-event ids, and refused outbox rows.

    Frozen like `..._v1`.
    """
    op.create_table(
        "consumer_position",
        sa.Column("consumer", sa.String(length=200), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "topic", "partition", name=op.f("pk_consumer_position")),
    )
    op.create_index(
        op.f("ix_processed_event_processed_at"), "processed_event", ["processed_at"], unique=False
    )
    op.create_table(
        "outbox_dead",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("partition_key", sa.String(length=200), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("refused_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_dead")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_dead_event_id")),
    )


def drop_infrastructure_tables_v2() -> None:
    op.drop_table("outbox_dead")
    op.drop_index(op.f("ix_processed_event_processed_at"), table_name="processed_event")
    op.drop_table("consumer_position")


def create_infrastructure_tables_v3() -> None:
    """API keys as this service knows them, and idempotency records. Frozen like `..._v1`."""
    op.create_table(
        "api_key",
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("affiliate_id", sa.String(length=100), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_key")),
    )
    op.create_table(
        "idempotency_record",
        sa.Column("principal", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("principal", "idempotency_key", name=op.f("pk_idempotency_record")),
    )
    op.create_index(
        op.f("ix_idempotency_record_expires_at"), "idempotency_record", ["expires_at"], unique=False
    )


def drop_infrastructure_tables_v3() -> None:
    op.drop_index(op.f("ix_idempotency_record_expires_at"), table_name="idempotency_record")
    op.drop_table("idempotency_record")
    op.drop_table("api_key")


def create_infrastructure_tables_v4() -> None:
    """Consumers' completeness watermarks. Frozen like `..._v1`."""
    op.create_table(
        "consumer_watermark",
        sa.Column("consumer", sa.String(length=200), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("complete_before", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "topic", "partition", name=op.f("pk_consumer_watermark")),
    )


def drop_infrastructure_tables_v4() -> None:
    op.drop_table("consumer_watermark")
