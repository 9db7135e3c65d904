"""The keyset helper on SQLite and PostgreSQL: every sort direction and key type, and its cursors."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Index, Integer, String, Uuid, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import Database, UTCDateTime, new_metadata
from shared.pagination import InvalidCursor, Keyset, PageRequest, SortKey, fetch_page


class _Base(DeclarativeBase):
    metadata = new_metadata()


class Row(_Base):
    __tablename__ = "paged_row"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    code: Mapped[int] = mapped_column(Integer, unique=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    name: Mapped[str] = mapped_column(String(20))
    rank: Mapped[int] = mapped_column(Integer)
    maybe: Mapped[str | None] = mapped_column(String(20))


T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    async with database.engine.begin() as connection:
        await connection.run_sync(_Base.metadata.create_all)
        # Few distinct values per column, so most positions are ties broken by the last key.
        await connection.execute(
            insert(Row),
            [
                {
                    "id": uuid.uuid4(),
                    "code": n,
                    "at": T0 + timedelta(microseconds=n % 3),
                    "name": "abc"[n % 3] * (1 + n % 2),
                    "rank": n % 4 - 2,
                }
                for n in range(40)
            ],
        )
    yield database
    await database.dispose()


KEYSETS = [
    Keyset(SortKey(Row.at), SortKey(Row.id)),
    Keyset(SortKey(Row.at, descending=True), SortKey(Row.id, descending=True)),
    Keyset(SortKey(Row.name), SortKey(Row.rank, descending=True), SortKey(Row.id)),
    Keyset(SortKey(Row.rank, descending=True), SortKey(Row.at), SortKey(Row.name), SortKey(Row.code)),
    Keyset(SortKey(Row.code, descending=True)),
]


def _python_order(rows: list[Row], keyset: Keyset) -> list[uuid.UUID]:
    def key(row: Row) -> tuple[Any, ...]:
        values = []
        for sort_key in keyset.keys:
            value = getattr(row, sort_key.column.key)
            # Reverse a descending key: negate numbers and times; bytes of strings and UUIDs inverted.
            if sort_key.descending:
                if isinstance(value, datetime):
                    value = -(value - T0).total_seconds()
                elif isinstance(value, int):
                    value = -value
                else:
                    raw = value.bytes if isinstance(value, uuid.UUID) else value.encode()
                    value = bytes(255 - b for b in raw) + b"\xff"
            values.append(value)
        return tuple(values)

    return [row.id for row in sorted(rows, key=key)]


@pytest.mark.parametrize("keyset", KEYSETS, ids=[k.name for k in KEYSETS])
@pytest.mark.parametrize("limit", [1, 7, 40])
async def test_walking_a_keyset_visits_every_row_once_in_its_order(
    database: Database, keyset: Keyset, limit: int
) -> None:
    seen: list[uuid.UUID] = []
    cursor: str | None = None
    pages = 0
    async with database.sessionmaker() as session:
        everything = list(await session.scalars(select(Row)))
        while True:
            pages += 1
            page = PageRequest(limit=limit, after=keyset.decode(cursor) if cursor else None)
            found = await fetch_page(session, select(Row), keyset, page)
            assert len(found.items) <= limit
            seen += [row.id for row in found.items]
            cursor = found.next_cursor
            if cursor is None:
                break
    assert seen == _python_order(everything, keyset)
    assert pages == -(-40 // limit)  # no empty last page when the rows fill the pages exactly


def test_a_cursor_round_trips_its_types() -> None:
    keyset = Keyset(SortKey(Row.at, descending=True), SortKey(Row.name), SortKey(Row.rank), SortKey(Row.id))
    position = (T0 + timedelta(microseconds=7), "b", -2, uuid.uuid4())
    decoded = keyset.decode(keyset.encode(position))
    assert decoded == position
    assert [type(value) for value in decoded] == [datetime, str, int, uuid.UUID]


def test_a_cursor_of_another_sort_is_refused() -> None:
    ascending = Keyset(SortKey(Row.at), SortKey(Row.id))
    descending = Keyset(SortKey(Row.at, descending=True), SortKey(Row.id, descending=True))
    with pytest.raises(InvalidCursor) as refused:
        descending.decode(ascending.encode((T0, uuid.uuid4())))
    assert refused.value.field == "cursor"


def test_a_keyset_needs_a_unique_last_key_and_no_nullable_keys() -> None:
    with pytest.raises(ValueError, match="unique"):
        Keyset(SortKey(Row.at))
    with pytest.raises(ValueError, match="NOT NULL"):
        Keyset(SortKey(Row.maybe), SortKey(Row.id))


class Entry(_Base):
    """A long list per group, as a timeline is per contact."""

    __tablename__ = "paged_entry"
    __table_args__ = (Index("ix_paged_entry_group_seq_id", "group_id", "seq", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    group_id: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)


async def test_a_page_after_a_cursor_seeks_the_index_instead_of_reading_the_rows_before_it() -> None:
    """The plan, not a timing: SQLite says which columns of the index it searches on. With parameters,
    as the query runs (given literal values, SQLite finds the range in the OR by itself)."""
    database = Database("sqlite+aiosqlite:///:memory:")
    keyset = Keyset(SortKey(Entry.seq), SortKey(Entry.id))
    page = select(Entry).where(Entry.group_id == 1, keyset.after((500, 500))).order_by(*keyset.order_by())
    compiled = page.compile(database.engine)
    parameters = tuple(compiled.params[name] for name in compiled.positiontup or ())
    async with database.engine.begin() as connection:
        await connection.run_sync(_Base.metadata.create_all)
        rows = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", parameters)
        plan = " ".join(str(row[-1]) for row in rows)
    await database.dispose()

    assert "ix_paged_entry_group_seq_id (group_id=? AND seq>?)" in plan, plan
