"""Queries of commissions, their ledger and payouts, and the few reads of conversions they depend on."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.referrals.commissions.models import Commission, CommissionLedgerEntry, Payout
from services.referrals.conversions.models import Conversion
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_page

NEWEST_FIRST = Keyset(
    SortKey(Commission.created_at, descending=True), SortKey(Commission.id, descending=True)
)
PAYOUTS_NEWEST_FIRST = Keyset(SortKey(Payout.paid_at, descending=True), SortKey(Payout.id, descending=True))

# Conversions that no longer stand: they count for no tier.
UNDONE_STATUSES = ("rejected", "refunded", "chargeback")


@dataclass(frozen=True)
class CommissionFilter:
    affiliate_id: uuid.UUID | None = None
    program_id: uuid.UUID | None = None
    conversion_id: uuid.UUID | None = None
    status: str | None = None
    kind: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        wanted = {
            Commission.affiliate_id: self.affiliate_id,
            Commission.program_id: self.program_id,
            Commission.conversion_id: self.conversion_id,
            Commission.status: self.status,
            Commission.kind: self.kind,
        }
        return [column == value for column, value in wanted.items() if value is not None]


def _deducted() -> ColumnElement[bool]:
    """The clawback entry's commission has a `deducted` entry: a payout settled it. Read from the ledger
    rather than marked on the clawback, which stays as it was written."""
    settled = aliased(CommissionLedgerEntry)
    return (
        select(settled.id)
        .where(settled.commission_id == CommissionLedgerEntry.commission_id, settled.entry == "deducted")
        .exists()
    )


class CommissionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def of_conversion(self, conversion_id: uuid.UUID, *, lock: bool = False) -> list[Commission]:
        statement = (
            select(Commission).where(Commission.conversion_id == conversion_id).order_by(Commission.kind)
        )
        if lock:
            statement = statement.with_for_update().execution_options(populate_existing=True)
        return list(await self.session.scalars(statement))

    async def get(
        self, commission_id: uuid.UUID, *, affiliate_id: uuid.UUID | None = None
    ) -> Commission | None:
        statement = select(Commission).where(Commission.id == commission_id)
        if affiliate_id is not None:
            statement = statement.where(Commission.affiliate_id == affiliate_id)
        found: Commission | None = await self.session.scalar(statement)
        return found

    async def page(self, where: CommissionFilter, page: PageRequest) -> Slice[Commission]:
        return await fetch_page(
            self.session, select(Commission).where(*where.conditions()), NEWEST_FIRST, page
        )

    async def ledger(self, commission_id: uuid.UUID) -> list[CommissionLedgerEntry]:
        statement = (
            select(CommissionLedgerEntry)
            .where(CommissionLedgerEntry.commission_id == commission_id)
            .order_by(CommissionLedgerEntry.at, CommissionLedgerEntry.id)
        )
        return list(await self.session.scalars(statement))

    async def due(self, now: datetime, limit: int) -> list[Commission]:
        """Pending commissions whose hold has ended, oldest hold first, claimed for this transaction (a
        second sweeper running at once skips them on PostgreSQL)."""
        statement = (
            select(Commission)
            .where(Commission.status == "pending", Commission.hold_until <= now)
            .order_by(Commission.hold_until, Commission.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(await self.session.scalars(statement))

    async def payable(self, affiliate_id: uuid.UUID, currency: str) -> list[Commission]:
        statement = (
            select(Commission)
            .where(
                Commission.affiliate_id == affiliate_id,
                Commission.currency == currency,
                Commission.status == "approved",
                Commission.payout_id.is_(None),
            )
            .order_by(Commission.created_at, Commission.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return list(await self.session.scalars(statement))

    async def payable_currencies(self, affiliate_id: uuid.UUID) -> list[str]:
        statement = (
            select(Commission.currency)
            .where(Commission.affiliate_id == affiliate_id, Commission.status == "approved")
            .distinct()
            .order_by(Commission.currency)
        )
        return list(await self.session.scalars(statement))

    async def clawbacks_owed(self, affiliate_id: uuid.UUID, currency: str) -> list[CommissionLedgerEntry]:
        """Clawback entries not yet deducted from a payout, oldest first."""
        statement = (
            select(CommissionLedgerEntry)
            .where(
                CommissionLedgerEntry.affiliate_id == affiliate_id,
                CommissionLedgerEntry.currency == currency,
                CommissionLedgerEntry.entry == "clawback",
                ~_deducted(),
            )
            .order_by(CommissionLedgerEntry.at, CommissionLedgerEntry.id)
            .with_for_update()
        )
        return list(await self.session.scalars(statement))

    async def sums_by_status(self, affiliate_id: uuid.UUID) -> Sequence[tuple[str, str, int]]:
        """(currency, status, sum of amounts) of the affiliate's commissions."""
        statement = (
            select(Commission.currency, Commission.status, func.sum(Commission.amount))
            .where(Commission.affiliate_id == affiliate_id)
            .group_by(Commission.currency, Commission.status)
        )
        return [
            (currency, status, int(total))
            for currency, status, total in await self.session.execute(statement)
        ]

    async def clawback_sums(self, affiliate_id: uuid.UUID) -> Sequence[tuple[str, int]]:
        """(currency, sum owed back, positive) of clawbacks no payout has deducted yet."""
        statement = (
            select(CommissionLedgerEntry.currency, func.sum(CommissionLedgerEntry.amount))
            .where(
                CommissionLedgerEntry.affiliate_id == affiliate_id,
                CommissionLedgerEntry.entry == "clawback",
                ~_deducted(),
            )
            .group_by(CommissionLedgerEntry.currency)
        )
        return [(currency, -int(total)) for currency, total in await self.session.execute(statement)]

    async def payout(self, payout_id: uuid.UUID, *, affiliate_id: uuid.UUID | None = None) -> Payout | None:
        statement = select(Payout).where(Payout.id == payout_id)
        if affiliate_id is not None:
            statement = statement.where(Payout.affiliate_id == affiliate_id)
        found: Payout | None = await self.session.scalar(statement)
        return found

    async def payouts(self, affiliate_id: uuid.UUID | None, page: PageRequest) -> Slice[Payout]:
        statement = select(Payout)
        if affiliate_id is not None:
            statement = statement.where(Payout.affiliate_id == affiliate_id)
        return await fetch_page(self.session, statement, PAYOUTS_NEWEST_FIRST, page)


class ConversionReads:
    """What commissions need to know of other conversions: tier volume, a customer's first conversion,
    whether a customer was rewarded already. Read only; the conversions feature owns the table."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def volume(self, conversion: Conversion, start: datetime, end: datetime) -> int:
        """The affiliate's standing attributed conversions of the goal in the program in [start, end),
        this one included (whether or not it is flushed yet)."""
        statement = select(func.count()).where(
            Conversion.program_id == conversion.program_id,
            Conversion.affiliate_id == conversion.affiliate_id,
            Conversion.goal == conversion.goal,
            Conversion.attributed.is_(True),
            Conversion.occurred_at >= start,
            Conversion.occurred_at < end,
            Conversion.status.not_in(UNDONE_STATUSES),
            Conversion.review != "rejected",
            Conversion.id != conversion.id,
        )
        others = await self.session.scalar(statement)
        return int(others or 0) + 1

    async def first_occurrence(self, conversion: Conversion) -> datetime:
        """When the conversion's customer first converted (this goal, this program), this one included."""
        assert conversion.customer_id is not None
        statement = select(func.min(Conversion.occurred_at)).where(
            Conversion.program_id == conversion.program_id,
            Conversion.customer_id == conversion.customer_id,
            Conversion.goal == conversion.goal,
            Conversion.id != conversion.id,
        )
        earlier: datetime | None = await self.session.scalar(statement)
        return conversion.occurred_at if earlier is None else min(earlier, conversion.occurred_at)

    async def rewarded_before(self, conversion: Conversion, kind: str) -> bool:
        """Another conversion of the same customer in the program has a reward of `kind` (any status)."""
        same_customer = [
            column == value
            for column, value in (
                (Conversion.contact_id, conversion.contact_id),
                (Conversion.customer_id, conversion.customer_id),
                (Conversion.customer_email_hash, conversion.customer_email_hash),
            )
            if value is not None
        ]
        statement = (
            select(Commission.id)
            .join(Conversion, Conversion.id == Commission.conversion_id)
            .where(
                Commission.program_id == conversion.program_id,
                Commission.kind == kind,
                Commission.conversion_id != conversion.id,
                or_(*same_customer),
            )
            .limit(1)
        )
        return await self.session.scalar(statement) is not None
