"""The affiliate's own figures: stats over a period. Reads only."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.affiliates.models import Affiliate
from services.referrals.me.repository import MyRows
from shared.errors import NotFound


async def me(session: AsyncSession, affiliate_id: uuid.UUID) -> Affiliate:
    affiliate = await session.get(Affiliate, affiliate_id)
    if affiliate is None:
        raise NotFound("Affiliate", affiliate_id)
    return affiliate


@dataclass(frozen=True)
class Figures:
    clicks: int
    conversions: int
    earnings: dict[str, int]
    """Per currency, sorted by currency."""
    per_day: list[tuple[date, str, int]]
    """(UTC day, currency, amount), oldest first."""

    @property
    def conversion_rate(self) -> float | None:
        return round(self.conversions / self.clicks, 4) if self.clicks else None

    def epc(self, currency: str) -> float | None:
        if not self.clicks:
            return None
        per_click = Decimal(self.earnings[currency]) / Decimal(self.clicks)
        return float(per_click.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


async def stats(session: AsyncSession, affiliate_id: uuid.UUID, since: datetime, until: datetime) -> Figures:
    """Clicks (bots left out), conversions (rejected ones left out) and earnings (commissions and rewards
    not reversed, by their conversion's time) of the affiliate in [since, until)."""
    rows = MyRows(session, affiliate_id)
    earnings: dict[str, int] = defaultdict(int)
    per_day: dict[tuple[date, str], int] = defaultdict(int)
    for occurred_at, currency, amount in await rows.earnings_between(since, until):
        earnings[currency] += amount
        per_day[(occurred_at.date(), currency)] += amount
    return Figures(
        clicks=await rows.clicks_between(since, until),
        conversions=await rows.conversions_between(since, until),
        earnings=dict(sorted(earnings.items())),
        per_day=[(day, currency, amount) for (day, currency), amount in sorted(per_day.items())],
    )
