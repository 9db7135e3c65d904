"""Commissions, their ledger, payouts and balances as the API shows them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.iso_codes import CurrencyCode

CommissionStatus = Literal["pending", "held", "approved", "paid", "reversed"]
CommissionKind = Literal["commission", "referrer_reward", "referee_reward"]


class LedgerEntryRead(BaseModel):
    """One change to a commission. Signed minor units: `earned` adds, `reversed` and `clawback` take
    back; `approved`, `released`, `paid` and `deducted` are zero (a change of status on the record)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    entry: str = Field(
        description="`earned`, `released` (a review approved it), `approved` (its hold ended), `paid`, "
        "`reversed` (taken back before payment), `clawback` (taken back after payment: owed by the "
        "affiliate) or `deducted` (a clawback settled by a later payout, named by `payout_id`)."
    )
    amount: int = Field(description="Signed, in minor units of `currency`.")
    currency: str
    reason: str | None
    payout_id: uuid.UUID | None
    at: datetime


class CommissionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    conversion_id: uuid.UUID
    program_id: uuid.UUID
    kind: str = Field(
        description="`commission` (the program's rules), `referrer_reward` or `referee_reward` (the two "
        "sides of a customer referral)."
    )
    affiliate_id: uuid.UUID | None = Field(description="Who is paid; null for a referee who is no affiliate.")
    contact_id: uuid.UUID | None = Field(description="For a referee reward: the new customer rewarded.")
    rule: str = Field(
        description="The rule that set the amount: `sale:fixed:500`, `sale:percent:10`, `sale:tier:2`, with "
        "`+recurring:3/12` for a renewal in the third month of twelve, or `referrer:fixed:1000`."
    )
    amount: int = Field(description="Minor units of `currency`. Never changes: see the ledger.")
    currency: str
    status: str = Field(
        description="`held` (its conversion waits for a fraud review), `pending` (until `hold_until`), "
        "`approved`, `paid` or `reversed`."
    )
    hold_until: datetime | None
    payout_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class CommissionDetail(CommissionRead):
    ledger: list[LedgerEntryRead] = Field(description="Every change, oldest first.")


class ApprovedDue(BaseModel):
    approved: int = Field(description="How many commissions were approved by this sweep.")


class PayoutCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    affiliate_id: uuid.UUID
    currency: CurrencyCode | None = Field(
        default=None,
        description="Pay the commissions in this currency; may be left out when all the affiliate's "
        "approved commissions are in one.",
    )
    reference: str | None = Field(
        default=None, max_length=200, description="Your reference for the transfer (a bank or PayPal id)."
    )


class PayoutRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    affiliate_id: uuid.UUID
    amount: int = Field(description="Sent: `commissions_amount` less `clawbacks_amount`; never negative.")
    currency: str
    commission_count: int
    commissions_amount: int = Field(description="The approved commissions this payout covers.")
    clawbacks_amount: int = Field(description="Clawbacks owed by the affiliate that this payout deducted.")
    reference: str | None
    paid_at: datetime


class CurrencyBalance(BaseModel):
    currency: str
    pending: int = Field(description="Earned, waiting for the hold to end or for a review (`held`).")
    approved: int = Field(description="Approved, waiting for a payout.")
    paid: int = Field(description="Paid out (commissions paid and not reversed since).")
    clawbacks_owed: int = Field(description="Paid and then reversed, not yet deducted from a payout.")


class Balance(BaseModel):
    affiliate_id: uuid.UUID
    currencies: list[CurrencyBalance]
