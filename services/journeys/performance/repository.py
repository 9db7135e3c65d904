"""The performance queries, in SQL on SQLite and PostgreSQL: one for the headline figures of each
subject (a content id or a campaign), one for their breakdowns by channel and by currency.

Both are built from the same two row sets:
- `drawn`: the touchpoints of the subjects that occurred in the period;
- `converted`: the purchases (channel `purchase`, or any touchpoint with a revenue) of each resolved
  contact among them, at or after the contact's first drawn touchpoint of that subject and at most
  `window_days` days of 24 hours after it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CTE,
    BigInteger,
    Column,
    ColumnElement,
    Integer,
    MetaData,
    Row,
    Select,
    String,
    Table,
    and_,
    bindparam,
    cast,
    distinct,
    func,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from services.journeys.touchpoints.models import Touchpoint
from shared.db import UTCDateTime
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_row_page

PURCHASE_CHANNEL = "purchase"

# The shape of the ranked rows, one per subject, declared as a table so the cursor helper knows that
# `subject` is unique in it (SQL cannot tell it so of a GROUP BY). The query names its CTE `ranked`.
RANKED = Table(
    "ranked",
    MetaData(),
    Column("subject", String(200), primary_key=True),
    Column("touchpoints", Integer, nullable=False),
    Column("contacts", Integer, nullable=False),
    Column("unresolved", Integer, nullable=False),
    Column("converted", Integer, nullable=False),
    Column("orders", Integer, nullable=False),
)
BY_TOUCHPOINTS = Keyset(
    SortKey(RANKED.c.touchpoints, descending=True),
    SortKey(RANKED.c.converted, descending=True),
    SortKey(RANKED.c.subject),
)
BY_CONVERSIONS = Keyset(
    SortKey(RANKED.c.converted, descending=True),
    SortKey(RANKED.c.touchpoints, descending=True),
    SortKey(RANKED.c.subject),
)

CHANNEL = "channel"
REVENUE = "revenue"


class days_after(FunctionElement[datetime]):  # noqa: N801 (an SQL function, named as one)
    """`days_after(moment, days)`: the moment `days` times 24 hours later, to the microsecond."""

    type = UTCDateTime()
    inherit_cache = True


@compiles(days_after, "postgresql")
def _days_after_postgresql(element: days_after, compiler: SQLCompiler, **kw: Any) -> str:
    moment, days = (compiler.process(clause, **kw) for clause in element.clauses)
    # Hours, not days: a day added to a timestamptz follows the session's zone across a DST change.
    return f"({moment} + make_interval(hours => 24 * {days}))"


@compiles(days_after, "sqlite")
def _days_after_sqlite(element: days_after, compiler: SQLCompiler, **kw: Any) -> str:
    moment, days = (compiler.process(clause, **kw) for clause in element.clauses)
    # SQLite keeps these times as UTC text, `YYYY-MM-DD HH:MM:SS.ffffff`; strftime would round the
    # fraction to milliseconds, so the seconds are shifted and the moment's own fraction put back.
    return f"(strftime('%Y-%m-%d %H:%M:%S', {moment}, '+' || {days} || ' days') || substr({moment}, 20))"


@dataclass(frozen=True)
class Period:
    since: datetime | None
    """Touchpoints that occurred at or after it; None: from the first."""
    until: datetime | None
    """Touchpoints that occurred before it; None: up to now."""
    window_days: int


@dataclass(frozen=True)
class _RowSets:
    drawn: CTE
    converted: CTE


def _row_sets(
    subject: InstrumentedAttribute[str | None], period: Period, subjects: Collection[str] | None
) -> _RowSets:
    conditions: list[ColumnElement[bool]] = [subject.is_not(None)]
    if subjects is not None:
        conditions.append(subject.in_(subjects))
    if period.since is not None:
        conditions.append(Touchpoint.occurred_at >= period.since)
    if period.until is not None:
        conditions.append(Touchpoint.occurred_at < period.until)
    # Served by ix_touchpoint_content_id_occurred_at / ix_touchpoint_campaign_occurred_at.
    drawn = (
        select(
            subject.label("subject"),
            Touchpoint.contact_id,
            Touchpoint.channel,
            Touchpoint.occurred_at,
        )
        .where(*conditions)
        .cte("drawn")
    )
    first = (
        select(drawn.c.subject, drawn.c.contact_id, func.min(drawn.c.occurred_at).label("first_at"))
        .where(drawn.c.contact_id.is_not(None))
        .group_by(drawn.c.subject, drawn.c.contact_id)
        .cte("first_touch")
    )
    # Served by ix_touchpoint_contact_id_occurred_at_id. A purchase that itself carries the subject is
    # its own first touch, and counts.
    converted = (
        select(first.c.subject, Touchpoint.contact_id, Touchpoint.revenue, Touchpoint.currency)
        .join_from(
            first,
            Touchpoint,
            and_(
                Touchpoint.contact_id == first.c.contact_id,
                Touchpoint.occurred_at >= first.c.first_at,
                Touchpoint.occurred_at
                <= days_after(first.c.first_at, bindparam("window_days", period.window_days, Integer)),
                or_(Touchpoint.channel == PURCHASE_CHANNEL, Touchpoint.revenue.is_not(None)),
            ),
        )
        .cte("converted")
    )
    return _RowSets(drawn=drawn, converted=converted)


def _ranked(sets: _RowSets) -> Select[Any]:
    drawn, converted = sets.drawn, sets.converted
    reach = (
        select(
            drawn.c.subject,
            func.count().label("touchpoints"),
            func.count(distinct(drawn.c.contact_id)).label("contacts"),
            (func.count() - func.count(drawn.c.contact_id)).label("unresolved"),
        )
        .group_by(drawn.c.subject)
        .cte("reach")
    )
    conversions = (
        select(
            converted.c.subject,
            func.count(distinct(converted.c.contact_id)).label("converted"),
            func.count().label("orders"),
        )
        .group_by(converted.c.subject)
        .cte("conversions")
    )
    ranked = (
        select(
            reach.c.subject,
            reach.c.touchpoints,
            reach.c.contacts,
            reach.c.unresolved,
            func.coalesce(conversions.c.converted, 0).label("converted"),
            func.coalesce(conversions.c.orders, 0).label("orders"),
        )
        .outerjoin(conversions, conversions.c.subject == reach.c.subject)
        .cte(RANKED.name)
    )
    return select(RANKED).add_cte(ranked)


@dataclass(frozen=True)
class Breakdown:
    by_channel: dict[str, int]
    revenue: dict[str, int]


class PerformanceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def one(
        self, subject: InstrumentedAttribute[str | None], value: str, period: Period
    ) -> Row[Any] | None:
        """The headline figures of one subject; None when it drew no touchpoint in the period."""
        statement = _ranked(_row_sets(subject, period, [value]))
        row: Row[Any] | None = (await self.session.execute(statement)).first()
        return row

    async def ranking(
        self, subject: InstrumentedAttribute[str | None], period: Period, keyset: Keyset, page: PageRequest
    ) -> Slice[Row[Any]]:
        statement = _ranked(_row_sets(subject, period, None))
        return await fetch_row_page(self.session, statement, keyset, page)

    async def breakdowns(
        self, subject: InstrumentedAttribute[str | None], values: Collection[str], period: Period
    ) -> dict[str, Breakdown]:
        """Touchpoints by channel and revenue by currency (never converted), for each of `values`."""
        found = {value: Breakdown(by_channel={}, revenue={}) for value in values}
        if not values:
            return found
        sets = _row_sets(subject, period, values)
        drawn, converted = sets.drawn, sets.converted
        by_channel = select(
            drawn.c.subject,
            literal_column(f"'{CHANNEL}'").label("kind"),
            drawn.c.channel.label("name"),
            cast(func.count(), BigInteger).label("amount"),
        ).group_by(drawn.c.subject, drawn.c.channel)
        revenue = (
            select(
                converted.c.subject,
                literal_column(f"'{REVENUE}'").label("kind"),
                converted.c.currency.label("name"),
                cast(func.sum(converted.c.revenue), BigInteger).label("amount"),
            )
            .where(converted.c.revenue.is_not(None))
            .group_by(converted.c.subject, converted.c.currency)
        )
        for value, kind, name, amount in await self.session.execute(union_all(by_channel, revenue)):
            figures = found[value]
            (figures.by_channel if kind == CHANNEL else figures.revenue)[name] = int(amount)
        return found
