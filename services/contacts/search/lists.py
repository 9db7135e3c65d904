"""`in` lists bound as one parameter, however long they are.

`column IN (:v1, :v2, …)` binds a parameter per value, and `a = :v1 OR a = :v2 …` nests an expression a
level per value: a filter of 100 lists of 500 values would bind 50,000 parameters (asyncpg and SQLite
take at most 32,767) or nest deeper than SQLite parses (1,000 levels). `one_of(column, values)` binds
the whole list as one parameter instead, which also leaves the SQL text the same whatever the length:

- PostgreSQL: `column = ANY(:values)`, an array, which an index on the column serves like an `IN`;
- SQLite: `column IN (SELECT value FROM json_each(:values))`, a JSON array, which SQLite reads once
  into a temporary index and an index on the column serves too.

`utc_day(column)` is a timestamp's day in UTC, for a list of whole days (`created_at in ["2026-03-01",
…]`): one list of dates instead of a range per day.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Date, Dialect, String, TypeDecorator, any_, bindparam
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import Grouping
from sqlalchemy.sql.operators import OperatorType
from sqlalchemy.sql.visitors import InternalTraversal, _TraverseInternalsType
from sqlalchemy.types import TypeEngine


class _ValueList(TypeDecorator[list[Any]]):
    """A list of values of `item_type`: an array on PostgreSQL, a JSON array elsewhere, each value
    converted as a value of the column would be (a date as SQLite stores dates, and so on)."""

    impl = String
    cache_ok = True

    def __init__(self, item_type: TypeEngine[Any]) -> None:
        super().__init__()
        self.item_type = item_type

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.ARRAY(self.item_type))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: list[Any] | None, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value  # the array type converts each value
        convert = self.item_type.dialect_impl(dialect).bind_processor(dialect)
        return json.dumps([convert(item) for item in value] if convert else value)


class OneOf(ColumnElement[bool]):
    """`column` equals one of `values`; see the module."""

    type = Boolean()
    # A comparison, so used as a condition it is written as it is: not `(…) = 1`, which SQLite could
    # not serve from an index.
    _is_implicitly_boolean = True
    inherit_cache = True
    # What the cache key is made of (SQLAlchemy's own attribute, declared by its base as it is here):
    # the list is a bound value, not part of the statement, so one cached statement serves every list.
    _traverse_internals: _TraverseInternalsType = [  # noqa: RUF012
        ("column", InternalTraversal.dp_clauseelement),
        ("values", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnElement[Any], values: Sequence[Any], item_type: TypeEngine[Any]) -> None:
        self.column = column
        self.values = bindparam(None, list(values), type_=_ValueList(item_type))

    def self_group(self, against: OperatorType | None = None) -> ColumnElement[Any]:
        # In parentheses inside any other operator (`NOT (…)`), whatever the dialect renders.
        return Grouping(self) if against is not None else self


def one_of(
    column: ColumnElement[Any] | InstrumentedAttribute[Any], values: Sequence[Any]
) -> ColumnElement[bool]:
    expression = column.expression
    return OneOf(expression, values, expression.type)


@compiles(OneOf)
def _one_of_in_json(element: OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"{column} IN (SELECT value FROM json_each({compiler.process(element.values, **kw)}))"


@compiles(OneOf, "postgresql")
def _one_of_any_array(element: OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column == any_(element.values), **kw)


class UtcDay(ColumnElement[Any]):
    """The day of a timestamp, in UTC."""

    type = Date()
    inherit_cache = True
    _traverse_internals: _TraverseInternalsType = [("column", InternalTraversal.dp_clauseelement)]  # noqa: RUF012

    def __init__(self, column: ColumnElement[Any]) -> None:
        self.column = column


def utc_day(column: ColumnElement[Any] | InstrumentedAttribute[Any]) -> ColumnElement[Any]:
    return UtcDay(column.expression)


@compiles(UtcDay)
def _utc_day_sqlite(element: UtcDay, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps timestamps as UTC text (see `shared.db.UTCDateTime`): date() reads its day.
    return f"date({compiler.process(element.column, **kw)})"


@compiles(UtcDay, "postgresql")
def _utc_day_postgres(element: UtcDay, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(timezone('UTC', {compiler.process(element.column, **kw)}) AS DATE)"
