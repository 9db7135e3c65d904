"""Performance of content and campaigns. Reads only.

What counts (the README's "Content and campaign performance" says the same to users):
- the touchpoints a subject drew: those naming it (`content_id`, or `campaign`) that occurred in the
  period, resolved or not;
- a conversion: a purchase (a touchpoint of channel `purchase`, or any touchpoint with a revenue) by a
  contact the subject reached, at or after that contact's first touchpoint of the subject in the period
  and at most `window_days` days after it; it may fall after the period's end;
- attribution is any-touch: every subject a contact touched in its window gets the whole purchase, so
  figures of different subjects overlap and are not to be added up.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.journeys.performance.repository import (
    BY_CONVERSIONS,
    BY_TOUCHPOINTS,
    Breakdown,
    PerformanceRepository,
    Period,
)
from services.journeys.touchpoints.models import Touchpoint
from shared.pagination import Keyset, PageRequest, Slice

__all__ = ["Dimension", "Figures", "Order", "Period", "performance", "ranking"]


class Dimension(StrEnum):
    CONTENT = "content"
    CAMPAIGN = "campaign"


class Order(StrEnum):
    TOUCHPOINTS = "touchpoints"
    CONVERSIONS = "conversions"


_COLUMNS: dict[Dimension, InstrumentedAttribute[str | None]] = {
    Dimension.CONTENT: Touchpoint.content_id,
    Dimension.CAMPAIGN: Touchpoint.campaign,
}
KEYSETS: dict[Order, Keyset] = {Order.TOUCHPOINTS: BY_TOUCHPOINTS, Order.CONVERSIONS: BY_CONVERSIONS}


@dataclass(frozen=True)
class Figures:
    subject: str
    touchpoints: int
    contacts: int
    unresolved: int
    by_channel: dict[str, int]
    converted: int
    """Contacts reached who bought within the window."""
    orders: int
    revenue: dict[str, int]
    """Minor units per currency."""

    @property
    def conversion_rate(self) -> float | None:
        """Converted contacts of the contacts reached; None when no resolved contact was reached."""
        return self.converted / self.contacts if self.contacts else None


def _figures(row: Row[Any], breakdown: Breakdown) -> Figures:
    return Figures(
        subject=row.subject,
        touchpoints=row.touchpoints,
        contacts=row.contacts,
        unresolved=row.unresolved,
        by_channel=breakdown.by_channel,
        converted=row.converted,
        orders=row.orders,
        revenue=breakdown.revenue,
    )


async def performance(session: AsyncSession, dimension: Dimension, value: str, period: Period) -> Figures:
    """One subject's figures; all zero when it drew nothing in the period (a content id or a campaign
    is only a name on touchpoints: there is nothing to be not found)."""
    repository = PerformanceRepository(session)
    column = _COLUMNS[dimension]
    row = await repository.one(column, value, period)
    if row is None:
        return Figures(value, 0, 0, 0, {}, 0, 0, {})
    breakdowns = await repository.breakdowns(column, [value], period)
    return _figures(row, breakdowns[value])


async def ranking(
    session: AsyncSession, dimension: Dimension, period: Period, order: Order, page: PageRequest
) -> Slice[Figures]:
    """The subjects that drew touchpoints in the period, best first by `order` (ties: the other figure,
    then the name)."""
    repository = PerformanceRepository(session)
    column = _COLUMNS[dimension]
    found = await repository.ranking(column, period, KEYSETS[order], page)
    breakdowns = await repository.breakdowns(column, [row.subject for row in found.items], period)
    return Slice([_figures(row, breakdowns[row.subject]) for row in found.items], found.next_cursor)
