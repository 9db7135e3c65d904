"""What the postback, conversion and postback-source APIs read and write.

`PostbackIn` is one postback, whether it comes as a JSON body (`POST /v1/postbacks`) or as query
parameters (`GET /v1/postbacks?...`), so each field is checked the same way either way.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
)

from shared.db import utc_now
from shared.iso_codes import CurrencyCode

# Clocks differ, but a conversion a day ahead is a wrong clock or a wrong zone.
MAX_AHEAD = timedelta(hours=24)


class ConversionStatus(StrEnum):
    """`pending` (reported, not yet confirmed), `approved`, and the final ones: `rejected`, `refunded`,
    `chargeback`."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    REFUNDED = "refunded"
    CHARGEBACK = "chargeback"


# Out of order: a status never moves back. pending < approved < the final ones, which are all final.
STATUS_RANK = {
    ConversionStatus.PENDING: 0,
    ConversionStatus.APPROVED: 1,
    ConversionStatus.REJECTED: 2,
    ConversionStatus.REFUNDED: 2,
    ConversionStatus.CHARGEBACK: 2,
}


class Outcome(StrEnum):
    """What a postback did: `recorded` (a new conversion), `duplicate` (a retry: nothing changed),
    `status_changed` (a later status of a known conversion), `stale` (an older status after a newer
    one: the status stays, details the conversion lacked are filled in)."""

    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    STATUS_CHANGED = "status_changed"
    STALE = "stale"


class Review(StrEnum):
    NONE = "none"
    HELD = "held"
    APPROVED = "approved"
    REJECTED = "rejected"


def _not_far_ahead(value: datetime) -> datetime:
    if value > utc_now() + MAX_AHEAD:
        raise ValueError(
            "occurred_at is more than 24 hours ahead of the server's clock; send it with its zone"
        )
    return value


def _minor_units(value: object) -> object:
    # Query parameters arrive as text, so digits are taken as a number; a decimal never is, since
    # guessing whether `49.99` means euros or cents would pay the wrong commission.
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError("amount is in minor units: an integer, 4999 for 49.99 EUR")


Goal = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$"),
]
TransactionId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]

POSTBACK_EXAMPLE: dict[str, Any] = {
    "click_id": "mB3x9Qe1Zk2Lp0aa",
    "transaction_id": "order-10042",
    "event": "sale",
    "amount": 4999,
    "currency": "EUR",
    "status": "pending",
    "customer_id": "cus_8812",
    "customer_email": "ada@example.com",
}


class PostbackIn(BaseModel):
    """One conversion as a tracker reports it. Name the customer's click (`click_id`), a referral code
    (`code`) or, for a repeat purchase, the customer (`customer_id`, with `program`)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    click_id: str | None = Field(
        None,
        max_length=32,
        validation_alias=AliasChoices("click_id", "clickid", "crm_click_id"),
        description="The click id the redirect appended to the destination (`crm_click_id`) and set as a "
        "cookie. Also taken as `clickid` or `crm_click_id`. An unknown, expired or bot click is no error: "
        "the conversion is kept unattributed, with the reason.",
    )
    code: str | None = Field(
        None,
        max_length=64,
        description="A referral code (a link's code), for a customer who typed it rather than clicked: "
        "credits that link's affiliate with no click.",
    )
    customer_id: str | None = Field(
        None,
        max_length=200,
        description="The advertiser's id for the customer. Alone (with `program`), it credits the affiliate "
        "of the customer's earliest attributed conversion in the program: recurring revenue.",
    )
    transaction_id: TransactionId = Field(
        validation_alias=AliasChoices("transaction_id", "order_id", "txid", "tid"),
        description="The source's transaction or order id; with the source, what makes a postback the same "
        "as an earlier one. Also taken as `order_id`, `txid` or `tid`.",
    )
    event: Goal = Field(
        "sale",
        validation_alias=AliasChoices("event", "goal"),
        description="`lead`, `sale` (the default), or a custom goal the program's commission rules name. "
        "Also taken as `goal`.",
    )
    program: str | None = Field(
        None,
        max_length=64,
        description="The program's key or id. Needed only when the postback names no known click or "
        "code (a customer id alone, or a click this service does not know) and there is more than "
        "one program; a known click's or code's program wins.",
    )
    amount: Annotated[int | None, BeforeValidator(_minor_units)] = Field(
        None,
        ge=0,
        le=10**15,
        description="The sale's value in minor units of `currency` (4999 for 49.99 EUR), an integer: a "
        "decimal such as `49.99` is refused with a 422 naming `amount`.",
    )
    currency: CurrencyCode | None = Field(None, description="ISO 4217; the program's currency when left out.")
    status: ConversionStatus = Field(
        ConversionStatus.PENDING,
        description="The conversion's status as the source knows it; a later postback with another status "
        "changes it. A status never moves back: `pending` < `approved` < `rejected`/`refunded`/"
        "`chargeback` (final).",
    )
    occurred_at: Annotated[AwareDatetime, AfterValidator(_not_far_ahead)] | None = Field(
        None, description="When it happened (ISO 8601 with a zone); now when left out."
    )
    customer_email: EmailStr | None = Field(
        None,
        description="The buyer's email: only its keyed hash is kept, to catch an affiliate buying through "
        "their own link.",
    )
    contact_id: uuid.UUID | None = Field(
        None,
        description="The buyer's contact id, when the CRM knows them: the crediting click is linked to it.",
    )
    reason: str | None = Field(
        None,
        max_length=200,
        description="Why the status is what it is (a refund's reason), kept on its event.",
    )

    def names_whom(self) -> bool:
        """A click, a code or a customer: what attribution needs (checked by the endpoints, to name
        `click_id` in the problem)."""
        return self.click_id is not None or self.code is not None or self.customer_id is not None


class ReviewDecision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: ReviewDecision = Field(
        description="`approve` releases what the conversion earned; `reject` rejects the conversion and "
        "reverses its commissions."
    )
    note: str | None = Field(None, max_length=200, description="Why, kept as the status change's reason.")


class FraudFlag(BaseModel):
    check: str = Field(description="`self_referral`, `click_to_conversion_too_fast` or `click_burst`.")
    detail: str = Field(description="What the check saw.")


class ConversionRead(BaseModel):
    """A conversion: what was reported, whom it credits (or why no one), and its fraud review."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="The conversion's id.")
    program_id: uuid.UUID = Field(description="The program it counts in.")
    source: str = Field(description="Who reported it: the API key id, or the signing source's name.")
    transaction_id: str = Field(description="The source's transaction or order id.")
    goal: str = Field(description="`lead`, `sale`, or a custom goal the program names.")
    amount: int | None = Field(description="Minor units of `currency`.")
    currency: str | None = Field(description="ISO 4217.")
    status: ConversionStatus = Field(description="Where it stands; it only moves forward.")
    status_changed_at: datetime = Field(description="When the status last changed.")
    attributed: bool = Field(description="An affiliate is credited.")
    affiliate_id: uuid.UUID | None = Field(description="The credited affiliate; null when unattributed.")
    link_id: uuid.UUID | None = Field(description="The crediting link; null when unattributed.")
    click_id: str | None = Field(
        description="The crediting click; null when unattributed or credited by code."
    )
    unattributed_reason: str | None = Field(
        description="Why no one was credited: `no_click`, `unknown_click`, `click_expired`, `bot_click`, "
        "`unknown_code`, `inactive_affiliate`, `archived_link`, `archived_program`, `not_own_click`; "
        "null when attributed."
    )
    customer_id: str | None = Field(description="The advertiser's id for the customer.")
    contact_id: uuid.UUID | None = Field(description="The buyer's contact, when the postback named one.")
    review: Review = Field(
        description="`none`, `held` (a fraud check flagged it: its commissions wait), `approved`, `rejected`."
    )
    fraud_flags: list[FraudFlag] = Field(description="What the fraud checks found; empty when nothing.")
    occurred_at: datetime = Field(description="When it happened, as the source said (the earliest said).")
    recorded_at: datetime = Field(description="When its first postback was taken.")
    updated_at: datetime = Field(description="When it last changed.")


class PostbackRead(BaseModel):
    """One postback received, with what it did."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="The postback's id.")
    method: Literal["GET", "POST"] = Field(description="How it came.")
    authenticated_by: Literal["key", "signature"] = Field(description="An API key, or a source's signature.")
    status: ConversionStatus = Field(description="The status the postback reported.")
    outcome: Outcome = Field(description="What it did.")
    idempotency_key: str | None = Field(description="Its `Idempotency-Key`, if it was the first with it.")
    received_at: datetime = Field(description="When it was taken.")


class ConversionDetail(ConversionRead):
    postbacks: list[PostbackRead] = Field(description="Every postback of this conversion, oldest first.")


class PostbackResult(BaseModel):
    """The answer to a postback; a retry gets the same conversion, marked as a duplicate."""

    postback_id: uuid.UUID = Field(
        description="This postback; for a duplicate, the postback it repeats (the first one)."
    )
    outcome: Outcome = Field(description="What the postback did.")
    duplicate: bool = Field(description="A retry of a postback already taken: nothing changed.")
    conversion: ConversionRead = Field(description="The conversion, as it is now.")


class WindowRead(BaseModel):
    days: int = Field(description="The program's window in days.")
    starts_at: datetime = Field(description="The earliest click time that may be credited.")
    ends_at: datetime = Field(description="The conversion's time: later clicks are not credited.")


class CandidateRead(BaseModel):
    click_id: str = Field(description="The click's id.")
    clicked_at: datetime = Field(description="When it was clicked.")
    affiliate_id: uuid.UUID = Field(description="The affiliate whose link it was.")
    link_id: uuid.UUID = Field(description="The link clicked.")
    is_bot: bool = Field(description="A known crawler: never credited.")
    in_window: bool = Field(description="Clicked inside the window.")


class WinnerRead(BaseModel):
    affiliate_id: uuid.UUID = Field(description="The credited affiliate.")
    link_id: uuid.UUID | None = Field(description="The crediting link; null by customer without one.")
    click_id: str | None = Field(description="The crediting click; null by code or by customer.")
    conversion_id: uuid.UUID | None = Field(
        None, description="By customer: the customer's earlier conversion whose affiliate is credited."
    )


class AttributionRead(BaseModel):
    """Why the conversion is credited to whom it is, or to no one."""

    conversion_id: uuid.UUID = Field(description="The conversion explained.")
    rule: str = Field(
        description="`last_click` or `first_click` (the program's model, among the same visitor's clicks), "
        "`code` (a referral code), `customer` (the customer's earliest attributed conversion), or `none`."
    )
    named_click_id: str | None = Field(description="The click the postback named.")
    code: str | None = Field(description="The referral code the postback named.")
    customer_id: str | None = Field(description="The customer id the postback named.")
    window: WindowRead | None = Field(description="The program's window, ending at the conversion.")
    candidates: list[CandidateRead] = Field(
        description="The same visitor's clicks in the program (the newest 100), inside the window or not."
    )
    winner: WinnerRead | None = Field(description="Who was credited; null when no one.")
    reason: str | None = Field(description="Why no one was credited; null when attributed.")


SourceNameStr = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_.-]+$")
]


class PostbackSourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SourceNameStr = Field(
        description="Letters, digits, `_`, `.`, `-`: in the signed route's path, and the `source` of its "
        "conversions."
    )
    description: str | None = Field(None, max_length=200, description="What the source is, for people.")


class PostbackSourceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str = Field(description="The source's name: in its route's path, and its conversions' `source`.")
    description: str | None = Field(description="What the source is, for people.")
    created_at: datetime = Field(description="When it was created.")


class PostbackSourceCreated(PostbackSourceRead):
    secret: str = Field(
        description="The signing secret, shown this once. Sign `<t>.<body>` with HMAC-SHA256 and send "
        "`X-CRM-Signature: t=<unix seconds>,v1=<hex>`."
    )
