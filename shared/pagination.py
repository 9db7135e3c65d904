"""Keyset (cursor) pagination for repositories: a total order, a position in it, the page after it.

A `Keyset` names the sort of a list: its columns, each ascending or descending, the last one unique (the
row id), so that no two rows share a position and a page boundary never falls inside a tie. A page is
the `limit` rows after a position, read with `WHERE <after the position> ORDER BY <the sort>`, never
with OFFSET: rows inserted or deleted before the position do not shift what comes after it, so a walk
through the pages neither repeats nor skips a row that existed when it started.

The position travels to the client as an opaque cursor: base64url of a small JSON naming the sort it
belongs to and the last row's sort-key values, each tagged with its type so it decodes to the same
value it was read as (a datetime stays a datetime, a UUID a UUID). A cursor is not signed: it only holds
a position, and a forged one reaches no row the list would not show anyway. One that does not decode,
belongs to another sort, or holds values of the wrong types is an `InvalidCursor`.

No web code here: repositories and services use this; `shared.web.pagination` adds the query
parameters, the `Page` body and the `Link` header.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Column, ColumnElement, Label, Row, Select, and_, false, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.types import TypeDecorator

from shared.errors import InvalidValue

T = TypeVar("T")

CURSOR_FIELD = "cursor"


class InvalidCursor(InvalidValue):
    """A cursor that this list did not hand out (malformed, altered, or from another sort)."""

    def __init__(self, reason: str) -> None:
        super().__init__(CURSOR_FIELD, f"Invalid cursor: {reason}. Use `next_cursor` from the previous page.")


# Each type a sort key may have: its tag in the cursor, how to write it to JSON, how to read it back.
# bool is left out on purpose: it is an int to Python, and a sort on it needs no cursor of its own.
_CODECS: dict[type, tuple[str, Callable[[Any], Any], Callable[[Any], Any]]] = {
    datetime: ("dt", datetime.isoformat, datetime.fromisoformat),
    date: ("date", date.isoformat, date.fromisoformat),
    float: ("float", float, float),
    uuid.UUID: ("uuid", str, uuid.UUID),
    str: ("str", str, str),
    int: ("int", int, int),
}


def _decode_value(expected: type, encoded: Any, *, nullable: bool = False) -> Any:
    if nullable and encoded == [_NULL, None]:
        return None
    tag, _write, read = _CODECS[expected]
    if not (isinstance(encoded, list) and len(encoded) == 2 and encoded[0] == tag):
        raise InvalidCursor("a value is not of its sort key's type")
    raw = encoded[1]
    if expected is int and not (isinstance(raw, int) and not isinstance(raw, bool)):
        raise InvalidCursor("a value is not of its sort key's type")
    if expected is float and not (isinstance(raw, int | float) and not isinstance(raw, bool)):
        raise InvalidCursor("a value is not of its sort key's type")
    if expected not in (int, float) and not isinstance(raw, str):
        raise InvalidCursor("a value is not of its sort key's type")
    try:
        value = read(raw)
    except ValueError as exc:
        raise InvalidCursor("a value does not parse") from exc
    if isinstance(value, datetime) and value.tzinfo is None:
        raise InvalidCursor("a time has no zone")
    return value


_NULL = "null"


@dataclass(frozen=True)
class SortKey:
    """One column of a sort. A NOT NULL column, unless `nullable` says it may hold NULLs: then they
    come last in either direction, and the comparison spells out where they stand."""

    column: InstrumentedAttribute[Any] | Column[Any] | Label[Any]
    """A mapped attribute, a Core table's column, or a labelled expression selected beside the row
    (the last two read with `fetch_row_page`, which hands back rows with the label as an attribute)."""
    descending: bool = False
    nullable: bool = False

    @property
    def name(self) -> str:
        return ("-" if self.descending else "") + self.column.key

    @property
    def python_type(self) -> type:
        column_type = self.column.expression.type
        # A TypeDecorator (UTCDateTime) does not pass on its stored type's Python type.
        if isinstance(column_type, TypeDecorator):
            column_type = column_type.impl_instance
        return column_type.python_type

    def after(self, value: Any) -> ColumnElement[bool]:
        if value is None:  # nothing comes after NULL, which sorts last
            return false()
        comparison: ColumnElement[bool] = self.column < value if self.descending else self.column > value
        return or_(comparison, self.column.is_(None)) if self.nullable else comparison

    def at_or_after(self, value: Any) -> ColumnElement[bool] | None:
        """`after` loosened to include ties, as an index can seek on; None where NULLs complicate it."""
        if self.nullable or value is None:
            return None
        bound: ColumnElement[bool] = self.column <= value if self.descending else self.column >= value
        return bound

    def tie(self, value: Any) -> ColumnElement[bool]:
        return self.column.is_(None) if value is None else self.column == value

    def ordering(self) -> ColumnElement[Any]:
        ordered = self.column.desc() if self.descending else self.column.asc()
        return ordered.nulls_last() if self.nullable else ordered


class Keyset:
    """A total order over a list: sort keys, the last of them unique (the tiebreaker)."""

    def __init__(self, *keys: SortKey) -> None:
        if not keys:
            raise ValueError("a keyset needs at least one sort key")
        for key in keys:
            column = key.column.expression
            # A labelled expression has no column to ask, so its `nullable` is taken at its word (a
            # value joined by an inner join is never NULL, the same value outer-joined may be).
            if not key.nullable and not isinstance(column, Label) and getattr(column, "nullable", True):
                raise ValueError(f"sort key {key.name} must be a NOT NULL column, or marked nullable")
            if key.python_type not in _CODECS:
                raise ValueError(f"sort key {key.name} has a type cursors cannot carry: {key.python_type}")
        last = keys[-1].column.expression
        if keys[-1].nullable or not (getattr(last, "primary_key", False) or getattr(last, "unique", False)):
            raise ValueError(f"the last sort key ({keys[-1].name}) must be unique, so the order is total")
        self.keys = keys
        self.name = ",".join(key.name for key in keys)
        """How the sort is written in its cursors, e.g. `-created_at,-id`."""

    def order_by(self) -> list[ColumnElement[Any]]:
        return [key.ordering() for key in self.keys]

    def after(self, position: Sequence[Any]) -> ColumnElement[bool]:
        """Rows strictly after `position` in this order.

        Spelled `a > x OR (a = x AND b > y) ...` rather than as a row-value comparison `(a, b) > (x, y)`,
        which SQLAlchemy does not render on every backend and which cannot mix ascending and
        descending keys anyway. Neither SQLite nor PostgreSQL turns that OR into a range on an index, so
        a page deep in a long list would read every row before it; the redundant `a >= x` in front is
        what they seek on, and keeps the last page as fast as the first.
        """
        alternatives = []
        for index, key in enumerate(self.keys):
            ties = [earlier.tie(value) for earlier, value in zip(self.keys[:index], position, strict=False)]
            alternatives.append(and_(*ties, key.after(position[index])))
        strictly_after = or_(*alternatives)
        bound = self.keys[0].at_or_after(position[0])
        return strictly_after if bound is None else and_(bound, strictly_after)

    def position_of(self, row: object) -> tuple[Any, ...]:
        return tuple(getattr(row, key.column.key) for key in self.keys)

    def encode(self, position: Sequence[Any]) -> str:
        values = []
        for key, value in zip(self.keys, position, strict=True):
            if value is None:
                values.append([_NULL, None])
                continue
            tag, write, _read = _CODECS[key.python_type]
            values.append([tag, write(value)])
        document = json.dumps({"sort": self.name, "after": values}, separators=(",", ":"))
        return base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")

    def decode(self, cursor: str) -> tuple[Any, ...]:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            document = json.loads(raw)
        except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise InvalidCursor("it does not decode") from exc
        if not isinstance(document, dict) or set(document) != {"sort", "after"}:
            raise InvalidCursor("it does not decode")
        if document["sort"] != self.name:
            raise InvalidCursor(f"it belongs to another sort than {self.name}")
        values = document["after"]
        if not isinstance(values, list) or len(values) != len(self.keys):
            raise InvalidCursor("it does not hold one value per sort key")
        return tuple(
            _decode_value(key.python_type, value, nullable=key.nullable)
            for key, value in zip(self.keys, values, strict=True)
        )


@dataclass(frozen=True)
class PageRequest:
    """Which page to read: at most `limit` rows after `after` (a decoded cursor), or from the start."""

    limit: int
    after: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class Slice(Generic[T]):
    """One page of rows, and the cursor of the next page (None on the last one)."""

    items: list[T]
    next_cursor: str | None


async def fetch_page(
    session: AsyncSession, statement: Select[T], keyset: Keyset, page: PageRequest
) -> Slice[T]:
    """Read the page `page` asks for from `statement` (a select of ORM rows with its own filters)."""
    rows = list(await session.scalars(_ordered(statement, keyset, page)))
    return _slice(rows, keyset, page)


async def fetch_row_page(
    session: AsyncSession, statement: Select[Any], keyset: Keyset, page: PageRequest
) -> Slice[Row[Any]]:
    """`fetch_page` for a select of a Core table: the page holds rows, not ORM objects."""
    return _slice(list(await session.execute(_ordered(statement, keyset, page))), keyset, page)


def _ordered(statement: Select[Any], keyset: Keyset, page: PageRequest) -> Select[Any]:
    if page.after is not None:
        statement = statement.where(keyset.after(page.after))
    # One row more than asked for: whether it exists says whether there is a next page.
    return statement.order_by(*keyset.order_by()).limit(page.limit + 1)


def _slice(rows: list[T], keyset: Keyset, page: PageRequest) -> Slice[T]:
    items = rows[: page.limit]
    more = len(rows) > page.limit
    return Slice(items, keyset.encode(keyset.position_of(items[-1])) if more and items else None)
