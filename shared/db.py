"""Database helpers: naming convention, engine per service, and the one place that commits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Dialect, MetaData, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """`timestamptz` on PostgreSQL; on SQLite, which keeps no zone, values are stored and read as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_metadata() -> MetaData:
    """Each service owns one MetaData so its migrations see only its own tables."""
    return MetaData(naming_convention=NAMING_CONVENTION)


# Execution option that marks a session as read-only (see `read_scope`).
_READ_ONLY = "crm_read_only"
# Session flag: its scope ends in a rollback, not a commit (see `roll_back_at_end`).
_ROLL_BACK_AT_END = "crm_roll_back_at_end"


def _prepare_sqlite(engine: AsyncEngine, url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see the "begin" hook).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(_READ_ONLY):
            # A reader takes no lock up front: in WAL mode it reads a snapshot beside the writer.
            connection.exec_driver_sql("BEGIN")
            return
        # A writer takes the write lock up front: a deferred transaction that later writes can fail
        # with SQLITE_BUSY without waiting when another connection wrote in between.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """An async engine and session factory for one service's database."""

    def __init__(
        self, url: str, *, echo: bool = False, session_info: Mapping[str, Any] | None = None
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        options: dict[str, Any] = {"echo": echo}
        if not self.is_sqlite:
            options.update(pool_pre_ping=True, pool_size=10, max_overflow=10)
        self.engine = create_async_engine(url, **options)
        if self.is_sqlite:
            _prepare_sqlite(self.engine, url)
        # `session_info` is what every session finds in `session.info` (each gets its own copy).
        info = dict(session_info or {})
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, info=info)
        # SQLite has one writer at a time. Writers of this process queue here, in order, instead of
        # racing for the database lock and backing off in SQLite's busy handler (sleeps of up to 100 ms).
        self.write_gate = asyncio.Lock()
        # Same pool; on SQLite its transactions begin without the write lock, so reads never queue
        # behind writers.
        self.read_engine = self.engine.execution_options(**{_READ_ONLY: True})
        self.read_sessionmaker = async_sessionmaker(self.read_engine, expire_on_commit=False, info=info)

    async def ping(self, timeout_s: float = 5.0) -> bool:
        async def select_one() -> None:
            # Read-only: on SQLite a probe must not take the write lock, nor wait behind writers.
            async with self.read_engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

        try:
            await asyncio.wait_for(select_one(), timeout_s)
        except Exception:
            return False
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()


def roll_back_at_end(session: AsyncSession) -> None:
    """End the session's scope with a rollback even when its block succeeds: a dry run runs every
    statement a write would, so it sees what the write would do, and keeps none of it."""
    session.info[_ROLL_BACK_AT_END] = True


@asynccontextmanager
async def session_scope(database: Database) -> AsyncIterator[AsyncSession]:
    """The single place that commits: commit when the block succeeds, roll back when it raises (or
    when the block asked for it with `roll_back_at_end`).

    On SQLite the block holds the process's write gate, so do not open a second scope inside one.
    """
    async with contextlib.AsyncExitStack() as stack:
        if database.is_sqlite:
            await stack.enter_async_context(database.write_gate)
        session = await stack.enter_async_context(database.sessionmaker())
        try:
            yield session
            if session.info.get(_ROLL_BACK_AT_END):
                await session.rollback()
            else:
                await session.commit()
        except BaseException:
            await session.rollback()
            raise


@asynccontextmanager
async def read_scope(database: Database) -> AsyncIterator[AsyncSession]:
    """A session for reading only: it never commits, and on SQLite it does not wait for writers."""
    async with database.read_sessionmaker() as session:
        try:
            yield session
        finally:
            await session.rollback()
