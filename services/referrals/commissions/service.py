"""Commissions and referral rewards: what each conversion earns, and every change to it.

The conversions feature calls these three in the transaction that changes the conversion, so a
conversion and its money always commit together. Flushes, never commits.

Choices where the rules are silent (the README's "Commissions, rewards and payouts" says them too):
- A commission's hold runs from the conversion's `occurred_at`; a held conversion's commissions wait in
  `held` without a hold, and a review's approval starts the hold from the review.
- A conversion recorded already `rejected`, `refunded` or `chargeback` (a refund that arrived before its
  sale) earns nothing: there is no commission to reverse, and nothing appears on the ledger.
- A percent rule earns only from a conversion with an amount in the program's currency; a fixed rule
  pays its amount in the program's currency whatever the conversion's. A rule that gives nothing (or
  zero) makes no commission; the reason is logged.
- A conversion whose status becomes `approved` changes nothing early: approval stays after the hold.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, TypedDict

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.affiliates.models import Affiliate
from services.referrals.commissions.calculation import (
    Earned,
    Nothing,
    amount_name,
    apply_amount,
    period_of,
    recurring_month,
    tier_reached,
)
from services.referrals.commissions.models import Commission, CommissionLedgerEntry
from services.referrals.commissions.repository import CommissionFilter, CommissionRepository, ConversionReads
from services.referrals.conversions.models import Conversion
from services.referrals.db import outbox
from services.referrals.programs.models import Program
from services.referrals.programs.rules import CommissionRule, ReferralRewards, RewardSide
from shared.db import utc_now
from shared.errors import NotFound
from shared.events.referrals import CommissionCreated, CommissionReversed, ReferralRewardGranted
from shared.pagination import PageRequest, Slice

log = logging.getLogger(__name__)

REVERSING_STATUSES = frozenset({"rejected", "refunded", "chargeback"})
Side = Literal["referrer", "referee"]


async def conversion_recorded(session: AsyncSession, conversion: Conversion) -> None:
    """A new conversion: create what it earns under its program's rules (none when unattributed)."""
    if not conversion.attributed or conversion.affiliate_id is None:
        return
    if conversion.status in REVERSING_STATUSES:
        log.info("conversion %s recorded as %s: it earns nothing", conversion.id, conversion.status)
        return
    program = await session.get(Program, conversion.program_id)
    affiliate = await session.get(Affiliate, conversion.affiliate_id)
    if program is None or affiliate is None:
        return
    # Retried or replayed: what was made already is not made again (and `(conversion_id, kind)` is unique).
    existing = {
        commission.kind for commission in await CommissionRepository(session).of_conversion(conversion.id)
    }
    if "commission" not in existing:
        earned = await commission_for(session, program, conversion)
        if isinstance(earned, Nothing):
            log.info("conversion %s earns no commission: %s", conversion.id, earned.reason)
        else:
            await _create(session, program, conversion, "commission", earned, affiliate_id=affiliate.id)
    if affiliate.kind == "customer" and program.referral_rewards:
        rewards = ReferralRewards.model_validate(program.referral_rewards)
        sides: tuple[tuple[Side, RewardSide | None], ...] = (
            ("referrer", rewards.referrer),
            ("referee", rewards.referee),
        )
        for side, reward in sides:
            kind = f"{side}_reward"
            if reward is not None and kind not in existing:
                await _reward(session, program, conversion, affiliate, side, reward)


async def commission_for(session: AsyncSession, program: Program, conversion: Conversion) -> Earned | Nothing:
    """The program's rule for the conversion's goal, with tiers and the recurring limit applied."""
    rules = [CommissionRule.model_validate(rule) for rule in program.commission_rules]
    rule = next((rule for rule in rules if rule.goal == conversion.goal), None)
    if rule is None:
        return Nothing(f"the program has no rule for the goal {conversion.goal!r}")
    reads = ConversionReads(session)
    recurring = ""
    if rule.recurring_months is not None and conversion.customer_id is not None:
        first = await reads.first_occurrence(conversion)
        month = recurring_month(first, conversion.occurred_at, rule.recurring_months)
        if month is None:
            return Nothing(f"more than {rule.recurring_months} months after the customer's first conversion")
        if first < conversion.occurred_at:  # a renewal, not the first payment
            recurring = f"+recurring:{month}/{rule.recurring_months}"
    if rule.tiers:
        start, end = period_of(conversion.occurred_at, rule.tier_period)
        reached = tier_reached(rule, await reads.volume(conversion, start, end))
        if reached is not None:
            position, tier = reached
            amount = apply_amount(
                tier,
                amount=conversion.amount,
                currency=conversion.currency,
                program_currency=program.currency,
            )
            return _earned(amount, f"{rule.goal}:tier:{position}{recurring}")
    amount = apply_amount(
        rule, amount=conversion.amount, currency=conversion.currency, program_currency=program.currency
    )
    return _earned(amount, f"{rule.goal}:{amount_name(rule)}{recurring}")


def _earned(amount: int | Nothing, rule: str) -> Earned | Nothing:
    if isinstance(amount, Nothing):
        return amount
    if amount == 0:
        return Nothing(f"{rule} gives 0")
    return Earned(amount, rule)


async def _reward(
    session: AsyncSession,
    program: Program,
    conversion: Conversion,
    referrer: Affiliate,
    side: Side,
    reward: RewardSide,
) -> None:
    """One side of a double-sided referral reward, when its conditions hold."""
    refused = await _reward_refused(session, program, conversion, side, reward)
    if refused is not None:
        log.info("conversion %s earns no %s reward: %s", conversion.id, side, refused)
        return
    amount = apply_amount(
        reward, amount=conversion.amount, currency=conversion.currency, program_currency=program.currency
    )
    earned = _earned(amount, f"{side}:{amount_name(reward)}")
    if isinstance(earned, Nothing):
        log.info("conversion %s earns no %s reward: %s", conversion.id, side, earned.reason)
        return
    if side == "referrer":
        await _create(session, program, conversion, "referrer_reward", earned, affiliate_id=referrer.id)
        return
    # The new customer is paid as a contact; as an affiliate too when they are one (then `/v1/me` shows it).
    assert conversion.contact_id is not None
    referee = await session.scalar(
        select(Affiliate.id)
        .where(Affiliate.contact_id == conversion.contact_id)
        .order_by(Affiliate.created_at)
        .limit(1)
    )
    await _create(
        session,
        program,
        conversion,
        "referee_reward",
        earned,
        affiliate_id=referee,
        contact_id=conversion.contact_id,
    )


async def _reward_refused(
    session: AsyncSession, program: Program, conversion: Conversion, side: Side, reward: RewardSide
) -> str | None:
    if conversion.goal != reward.qualifies_on:
        return f"it qualifies on {reward.qualifies_on!r}, not {conversion.goal!r}"
    if reward.min_amount is not None and (
        conversion.amount is None
        or conversion.currency != program.currency
        or conversion.amount < reward.min_amount
    ):
        return f"the conversion is below {reward.min_amount} {program.currency}"
    if side == "referee" and conversion.contact_id is None:
        return "the new customer is no known contact, so there is no one to pay"
    if reward.first_conversion_only:
        if (
            conversion.contact_id is None
            and conversion.customer_id is None
            and conversion.customer_email_hash is None
        ):
            return "first conversion only, and the customer is not identified"
        if await ConversionReads(session).rewarded_before(conversion, f"{side}_reward"):
            return "first conversion only, and the customer earned it already"
    return None


async def _create(
    session: AsyncSession,
    program: Program,
    conversion: Conversion,
    kind: str,
    earned: Earned,
    *,
    affiliate_id: uuid.UUID | None,
    contact_id: uuid.UUID | None = None,
) -> Commission:
    held = conversion.review == "held"
    now = utc_now()
    commission = Commission(
        # Given here rather than at the flush: the ledger entry and the event need it, and a flush per
        # commission would cost a round trip in a postback's transaction.
        id=uuid.uuid4(),
        conversion_id=conversion.id,
        program_id=program.id,
        kind=kind,
        affiliate_id=affiliate_id,
        contact_id=contact_id,
        rule=earned.rule,
        amount=earned.amount,
        currency=program.currency,
        status="held" if held else "pending",
        hold_until=None if held else conversion.occurred_at + timedelta(days=program.hold_days),
        created_at=now,
        updated_at=now,
    )
    session.add(commission)
    add_entry(session, commission, "earned", commission.amount, at=now)
    fields = event_fields(commission)
    if kind == "commission":
        await outbox.add(
            session,
            CommissionCreated(
                **fields, rule=commission.rule, hold_until=commission.hold_until, created_at=now
            ),
        )
    else:
        side: Side = "referrer" if kind == "referrer_reward" else "referee"
        await outbox.add(session, ReferralRewardGranted(**fields, side=side, granted_at=now))
    return commission


class EventFields(TypedDict):
    conversion_id: uuid.UUID
    commission_id: uuid.UUID
    affiliate_id: uuid.UUID | None
    contact_id: uuid.UUID | None
    kind: str
    amount: int
    currency: str


def event_fields(commission: Commission) -> EventFields:
    """What every commission event says of its commission."""
    return EventFields(
        conversion_id=commission.conversion_id,
        commission_id=commission.id,
        affiliate_id=commission.affiliate_id,
        contact_id=commission.contact_id,
        kind=commission.kind,
        amount=commission.amount,
        currency=commission.currency,
    )


def add_entry(
    session: AsyncSession,
    commission: Commission,
    entry: str,
    amount: int,
    *,
    at: datetime,
    reason: str | None = None,
    payout_id: uuid.UUID | None = None,
) -> CommissionLedgerEntry:
    row = CommissionLedgerEntry(
        commission_id=commission.id,
        affiliate_id=commission.affiliate_id,
        entry=entry,
        amount=amount,
        currency=commission.currency,
        reason=reason[:200] if reason else None,
        payout_id=payout_id,
        at=at,
    )
    session.add(row)
    return row


async def conversion_status_changed(
    session: AsyncSession, conversion: Conversion, old_status: str, reason: str | None
) -> None:
    """The conversion's status moved (already set on `conversion`): reverse on a refund, a chargeback or
    a rejection, with a clawback for what was paid already. `approved` changes nothing early."""
    if conversion.status in REVERSING_STATUSES:
        await reverse(session, conversion, conversion.status, detail=reason)


async def conversion_reviewed(session: AsyncSession, conversion: Conversion) -> None:
    """A held conversion was reviewed (`conversion.review` is `approved` or `rejected`): release or
    reverse what it earned. Released commissions are held from the review on for the program's hold."""
    if conversion.review == "rejected":
        await reverse(session, conversion, "rejected", detail="review rejected")
        return
    if conversion.review != "approved":
        return
    program = await session.get(Program, conversion.program_id)
    if program is None:
        return
    now = utc_now()
    for commission in await CommissionRepository(session).of_conversion(conversion.id, lock=True):
        if commission.status != "held":
            continue
        commission.status = "pending"
        commission.hold_until = now + timedelta(days=program.hold_days)
        commission.updated_at = now
        add_entry(session, commission, "released", 0, at=now, reason="review approved")
    await session.flush()


async def reverse(session: AsyncSession, conversion: Conversion, reason: str, *, detail: str | None) -> int:
    """Reverse every commission and reward of the conversion not reversed yet; the number reversed.

    Before payment the ledger takes the amount back (`reversed`); after it, the affiliate owes it
    (`clawback`), and the next payout deducts it."""
    now = utc_now()
    reversed_count = 0
    for commission in await CommissionRepository(session).of_conversion(conversion.id, lock=True):
        if commission.status == "reversed":
            continue
        clawback = commission.status == "paid"
        commission.status = "reversed"
        commission.updated_at = now
        add_entry(
            session,
            commission,
            "clawback" if clawback else "reversed",
            -commission.amount,
            at=now,
            reason=f"{reason}: {detail}" if detail else reason,
        )
        await outbox.add(
            session,
            CommissionReversed(**event_fields(commission), reason=reason, clawback=clawback, reversed_at=now),
        )
        reversed_count += 1
    await session.flush()
    return reversed_count


class CommissionNotFound(NotFound):
    def __init__(self, commission_id: uuid.UUID) -> None:
        super().__init__("Commission", commission_id)


@dataclass(frozen=True)
class CommissionWithLedger:
    commission: Commission
    ledger: list[CommissionLedgerEntry]


async def get_commission(
    session: AsyncSession, commission_id: uuid.UUID, *, affiliate_id: uuid.UUID | None = None
) -> CommissionWithLedger:
    """The commission with its ledger; with `affiliate_id`, only when it is that affiliate's."""
    commissions = CommissionRepository(session)
    commission = await commissions.get(commission_id, affiliate_id=affiliate_id)
    if commission is None:
        raise CommissionNotFound(commission_id)
    return CommissionWithLedger(commission, await commissions.ledger(commission.id))


async def list_commissions(
    session: AsyncSession, where: CommissionFilter, page: PageRequest
) -> Slice[Commission]:
    return await CommissionRepository(session).page(where, page)


@dataclass
class CurrencyFigures:
    pending: int = 0
    approved: int = 0
    paid: int = 0
    clawbacks_owed: int = 0


_BALANCE_OF_STATUS = {"pending": "pending", "held": "pending", "approved": "approved", "paid": "paid"}


async def balance(session: AsyncSession, affiliate_id: uuid.UUID) -> dict[str, CurrencyFigures]:
    """Per currency: what the affiliate has pending, approved, paid, and owes back."""
    if await session.get(Affiliate, affiliate_id) is None:
        raise NotFound("Affiliate", affiliate_id)
    commissions = CommissionRepository(session)
    figures: dict[str, CurrencyFigures] = {}
    for currency, status, total in await commissions.sums_by_status(affiliate_id):
        if (bucket := _BALANCE_OF_STATUS.get(status)) is not None:
            figures_of = figures.setdefault(currency, CurrencyFigures())
            setattr(figures_of, bucket, getattr(figures_of, bucket) + total)
    for currency, owed in await commissions.clawback_sums(affiliate_id):
        figures.setdefault(currency, CurrencyFigures()).clawbacks_owed = owed
    return dict(sorted(figures.items()))
