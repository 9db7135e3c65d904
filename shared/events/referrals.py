"""Referral events, on `crm.referrals`: clicks on affiliate and referral links, the conversions that
partners and trackers report, and the commissions and rewards they earn.

Keys: a click's events are keyed by its click id; a conversion's, and those of the commissions and
rewards it earns, by the conversion id, so that a conversion and the money it moves stay in order.

Ids, codes and amounts only. A click's IP hash, user agent, referrer and landing URL stay in the referrals
service, and so do the customer's email and its hash: the log keeps every event for ever, where an
erasure could not reach it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.events import topics
from shared.events.base import Event

CONVERSION_STATUS = (
    "`pending` (reported, not yet confirmed by the advertiser), `approved`, `rejected`, `refunded` or "
    "`chargeback`."
)
COMMISSION_KIND = (
    "`commission` (earned by the affiliate under the program's rules), `referrer_reward` or "
    "`referee_reward` (the two sides of a customer referral)."
)


class ClickRecorded(Event):
    """A click on a link went through `/r/{code}`. Bots are announced too, flagged, and never counted."""

    topic = topics.REFERRALS.name
    type: Literal["crm.click.recorded"] = "crm.click.recorded"
    schema_version: Literal[1] = 1

    click_id: str = Field(description="The id appended to the destination and set as a first-party cookie.")
    link_id: uuid.UUID
    code: str = Field(description="The link's code, as in `/r/{code}`.")
    program_id: uuid.UUID
    affiliate_id: uuid.UUID
    is_bot: bool = Field(description="A known crawler or link checker: recorded, never counted or credited.")
    clicked_at: datetime

    @property
    def key(self) -> str:
        return self.click_id


class _ConversionEvent(Event):
    topic = topics.REFERRALS.name

    conversion_id: uuid.UUID

    @property
    def key(self) -> str:
        return str(self.conversion_id)


class ConversionRecorded(_ConversionEvent):
    """A postback (or a purchase, where the program counts them) made a new conversion: once per source
    and transaction id, whatever the retries. Attributed to an affiliate, or stored unattributed with the
    reason."""

    type: Literal["crm.conversion.recorded"] = "crm.conversion.recorded"
    schema_version: Literal[1] = 1

    program_id: uuid.UUID
    affiliate_id: uuid.UUID | None = Field(description="The credited affiliate; null when unattributed.")
    click_id: str | None = Field(description="The crediting click; null when unattributed or by code.")
    contact_id: uuid.UUID | None = Field(description="The customer, when the postback named a known contact.")
    source: str = Field(
        description="Who reported it: the postback source (an API key id or a signing source)."
    )
    transaction_id: str = Field(description="The source's transaction or order id.")
    goal: str = Field(description="`lead`, `sale`, or a custom goal the program names.")
    amount: int | None = Field(description="In minor units of `currency` (cents for EUR).")
    currency: str | None = Field(description="ISO 4217.")
    status: str = Field(description=CONVERSION_STATUS)
    attributed: bool
    unattributed_reason: str | None = Field(
        description="Why no affiliate was credited: `no_click`, `unknown_click`, `click_expired`, "
        "`unknown_code`, `bot_click`, `inactive_affiliate`, `archived_link`, `archived_program`, "
        "`not_own_click` (an affiliate's key posted another affiliate's click); null when attributed."
    )
    held_for_review: bool = Field(description="A fraud check flagged it; its commissions wait for a review.")
    occurred_at: datetime = Field(description="When the conversion happened, as the source says.")
    recorded_at: datetime


class ConversionDuplicate(_ConversionEvent):
    """A postback repeated one already taken (same source and transaction id, or `Idempotency-Key`, and
    no new status). Nothing changed; announced so that a tracker's retries can be counted."""

    type: Literal["crm.conversion.duplicate"] = "crm.conversion.duplicate"
    schema_version: Literal[1] = 1

    source: str
    transaction_id: str
    received_at: datetime


class ConversionStatusChanged(_ConversionEvent):
    """A later postback, a review or the hold moved a conversion to another status."""

    type: Literal["crm.conversion.status_changed"] = "crm.conversion.status_changed"
    schema_version: Literal[1] = 1

    old_status: str = Field(description=CONVERSION_STATUS)
    new_status: str = Field(description=CONVERSION_STATUS)
    reason: str | None = Field(description="Why, as the source or the reviewer said it.")
    changed_at: datetime


class _CommissionEvent(_ConversionEvent):
    commission_id: uuid.UUID
    affiliate_id: uuid.UUID | None = Field(
        description="Who is paid: the affiliate; null for a referee reward to a customer with no affiliate."
    )
    contact_id: uuid.UUID | None = Field(description="For a referee reward: the customer rewarded.")
    kind: str = Field(description=COMMISSION_KIND)
    amount: int = Field(description="In minor units of `currency`.")
    currency: str = Field(description="ISO 4217.")


class CommissionCreated(_CommissionEvent):
    """A conversion earned a commission under its program's rules; pending until its hold ends."""

    type: Literal["crm.commission.created"] = "crm.commission.created"
    schema_version: Literal[1] = 1

    rule: str = Field(description="The rule that set the amount, e.g. `sale:percent:10`, `sale:tier:2`.")
    hold_until: datetime | None = Field(description="When it may be approved; null if held for review.")
    created_at: datetime


class CommissionApproved(_CommissionEvent):
    """A commission's hold ended (or a reviewer approved it): it will be paid."""

    type: Literal["crm.commission.approved"] = "crm.commission.approved"
    schema_version: Literal[1] = 1

    approved_at: datetime


class CommissionPaid(_CommissionEvent):
    """A commission went out in a payout."""

    type: Literal["crm.commission.paid"] = "crm.commission.paid"
    schema_version: Literal[1] = 1

    payout_id: uuid.UUID
    paid_at: datetime


class CommissionReversed(_CommissionEvent):
    """A refund, a chargeback or a rejection took a commission back. When it was already paid, a clawback
    of `amount` is owed by the affiliate and deducted from the next payout."""

    type: Literal["crm.commission.reversed"] = "crm.commission.reversed"
    schema_version: Literal[1] = 1

    reason: str = Field(description="`refunded`, `chargeback`, `rejected`, or a reviewer's reason.")
    clawback: bool = Field(description="It had been paid: the amount is clawed back.")
    reversed_at: datetime


class ReferralRewardGranted(_CommissionEvent):
    """One side of a customer referral qualified for its reward (the referrer, or the new customer)."""

    type: Literal["crm.referral_reward.granted"] = "crm.referral_reward.granted"
    schema_version: Literal[1] = 1

    side: Literal["referrer", "referee"]
    granted_at: datetime
