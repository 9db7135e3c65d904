"""Reads of an affiliate's own rows. Every query names the affiliate in its own WHERE clause: a row of
another affiliate is never read, so it can never be shown."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.clicks.models import Click
from services.referrals.commissions.models import Commission
from services.referrals.conversions.models import Conversion
from services.referrals.links.models import Link
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_page

LINKS_NEWEST_FIRST = Keyset(SortKey(Link.created_at, descending=True), SortKey(Link.id, descending=True))
CLICKS_NEWEST_FIRST = Keyset(SortKey(Click.clicked_at, descending=True), SortKey(Click.id, descending=True))
CONVERSIONS_NEWEST_FIRST = Keyset(
    SortKey(Conversion.occurred_at, descending=True), SortKey(Conversion.id, descending=True)
)

Owned = TypeVar("Owned", Link, Click, Conversion)


class MyRows:
    def __init__(self, session: AsyncSession, affiliate_id: uuid.UUID) -> None:
        self.session = session
        self.affiliate_id = affiliate_id

    async def one(self, model: type[Owned], row_id: Any) -> Owned | None:
        found: Owned | None = await self.session.scalar(
            select(model).where(model.id == row_id, model.affiliate_id == self.affiliate_id)
        )
        return found

    async def page(self, model: type[Owned], keyset: Keyset, page: PageRequest) -> Slice[Owned]:
        return await fetch_page(
            self.session, select(model).where(model.affiliate_id == self.affiliate_id), keyset, page
        )

    async def clicks_between(self, since: datetime, until: datetime) -> int:
        counted = await self.session.scalar(
            select(func.count()).where(
                Click.affiliate_id == self.affiliate_id,
                Click.is_bot.is_(False),
                Click.clicked_at >= since,
                Click.clicked_at < until,
            )
        )
        return int(counted or 0)

    async def conversions_between(self, since: datetime, until: datetime) -> int:
        counted = await self.session.scalar(
            select(func.count()).where(
                Conversion.affiliate_id == self.affiliate_id,
                Conversion.attributed.is_(True),
                Conversion.occurred_at >= since,
                Conversion.occurred_at < until,
                Conversion.status != "rejected",
                Conversion.review != "rejected",
            )
        )
        return int(counted or 0)

    async def earnings_between(self, since: datetime, until: datetime) -> Sequence[tuple[datetime, str, int]]:
        """(when the conversion occurred, currency, amount) of each commission or reward not reversed."""
        rows = await self.session.execute(
            select(Conversion.occurred_at, Commission.currency, Commission.amount)
            .join(Conversion, Conversion.id == Commission.conversion_id)
            .where(
                Commission.affiliate_id == self.affiliate_id,
                Commission.status != "reversed",
                Conversion.occurred_at >= since,
                Conversion.occurred_at < until,
            )
        )
        return [(occurred_at, currency, amount) for occurred_at, currency, amount in rows]
