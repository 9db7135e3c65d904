"""Payouts: an affiliate is paid its approved commissions in one currency, less the clawbacks it owes.

Every clawback owed in that currency is deducted, whole. When they come to more than the approved
commissions, nothing is paid (409) and everything waits until later approvals cover them: a payout is
never negative, and a clawback is never split. With no approved commission there is no payout either.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.affiliates.models import Affiliate
from services.referrals.commissions.models import CommissionLedgerEntry, Payout
from services.referrals.commissions.repository import CommissionRepository
from services.referrals.commissions.service import add_entry, event_fields
from services.referrals.db import outbox
from shared.db import utc_now
from shared.errors import InUse, InvalidValue, NotFound
from shared.events.referrals import CommissionPaid
from shared.pagination import PageRequest, Slice


class PayoutNotFound(NotFound):
    def __init__(self, payout_id: uuid.UUID) -> None:
        super().__init__("Payout", payout_id)


class NothingToPay(InUse):
    """No approved commission waits for a payout (in that currency)."""


class ClawbacksExceed(InUse):
    """The clawbacks owed come to more than the approved commissions: the payout would be negative."""


@dataclass(frozen=True)
class PayoutRequest:
    affiliate_id: uuid.UUID
    currency: str | None = None
    reference: str | None = None


async def pay(session: AsyncSession, request: PayoutRequest) -> Payout:
    if await session.get(Affiliate, request.affiliate_id) is None:
        raise InvalidValue("affiliate_id", f"No affiliate with id {request.affiliate_id}.")
    commissions = CommissionRepository(session)
    currency = request.currency or await _only_currency(commissions, request.affiliate_id)
    payable = await commissions.payable(request.affiliate_id, currency)
    if not payable:
        raise NothingToPay(
            f"Affiliate {request.affiliate_id} has no approved commission in {currency} to pay."
        )
    gross = sum(commission.amount for commission in payable)
    deducted = await commissions.clawbacks_owed(request.affiliate_id, currency)
    owed = sum(owed_of(entry) for entry in deducted)
    if owed > gross:
        raise ClawbacksExceed(
            f"Affiliate {request.affiliate_id} owes {owed} {currency} in clawbacks, more than the {gross} "
            f"{currency} approved: nothing is paid until approved commissions cover them."
        )
    remaining = gross - owed
    now = utc_now()
    payout = Payout(
        id=uuid.uuid4(),
        affiliate_id=request.affiliate_id,
        amount=remaining,
        currency=currency,
        commission_count=len(payable),
        commissions_amount=gross,
        clawbacks_amount=gross - remaining,
        reference=request.reference,
        paid_at=now,
    )
    session.add(payout)
    for entry in deducted:
        # The clawback is settled by this payout: a `deducted` entry says so (and when, and by which
        # payout); the clawback entry itself is never changed.
        session.add(
            CommissionLedgerEntry(
                commission_id=entry.commission_id,
                affiliate_id=entry.affiliate_id,
                entry="deducted",
                amount=0,
                currency=entry.currency,
                reason=f"clawback of {owed_of(entry)} deducted from a payout",
                payout_id=payout.id,
                at=now,
            )
        )
    for commission in payable:
        commission.status = "paid"
        commission.payout_id = payout.id
        commission.updated_at = now
        add_entry(session, commission, "paid", 0, at=now, reason=request.reference, payout_id=payout.id)
        await outbox.add(
            session, CommissionPaid(**event_fields(commission), payout_id=payout.id, paid_at=now)
        )
    await session.flush()
    return payout


def owed_of(clawback: CommissionLedgerEntry) -> int:
    return -clawback.amount


async def _only_currency(commissions: CommissionRepository, affiliate_id: uuid.UUID) -> str:
    currencies = await commissions.payable_currencies(affiliate_id)
    if len(currencies) > 1:
        raise InvalidValue(
            "currency", f"The affiliate has approved commissions in {', '.join(currencies)}: name one."
        )
    if not currencies:
        raise NothingToPay(f"Affiliate {affiliate_id} has no approved commission to pay.")
    return currencies[0]


async def get_payout(
    session: AsyncSession, payout_id: uuid.UUID, *, affiliate_id: uuid.UUID | None = None
) -> Payout:
    payout = await CommissionRepository(session).payout(payout_id, affiliate_id=affiliate_id)
    if payout is None:
        raise PayoutNotFound(payout_id)
    return payout


async def list_payouts(
    session: AsyncSession, affiliate_id: uuid.UUID | None, page: PageRequest
) -> Slice[Payout]:
    return await CommissionRepository(session).payouts(affiliate_id, page)
