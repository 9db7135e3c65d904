"""What the touchpoints API reads and writes.

`TouchpointCreate` is one touchpoint, whether it comes alone (`POST /v1/touchpoints`) or as a record of
a batch, so each field is checked the same way either way.
"""

import json
import math
import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    ModelWrapValidatorHandler,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from shared.db import utc_now
from shared.iso_codes import CurrencyCode

# Clocks differ and batches are sent late, but a touchpoint a day ahead is a wrong clock or a wrong zone.
MAX_AHEAD = timedelta(hours=24)
# The free properties are stored as given; this bounds one touchpoint's share of a batch and of a row.
MAX_PROPERTIES_BYTES = 16_384


class Channel(StrEnum):
    WEB = "web"
    APP = "app"  # a mobile or desktop app
    EMAIL = "email"
    SOCIAL_AD = "social_ad"
    SPONSORED_CONTENT = "sponsored_content"
    SEARCH = "search"
    WEBINAR = "webinar"
    EVENT = "event"
    PHONE_CALL = "phone_call"
    MEETING = "meeting"
    CHAT = "chat"
    SUPPORT_TICKET = "support_ticket"
    REFERRAL = "referral"
    PURCHASE = "purchase"
    SURVEY = "survey"
    OTHER = "other"


class Stage(StrEnum):
    """Where on the journey the touchpoint happened."""

    AWARENESS = "awareness"
    CONSIDERATION = "consideration"
    DECISION = "decision"
    PURCHASE = "purchase"
    RETENTION = "retention"
    ADVOCACY = "advocacy"


class Team(StrEnum):
    """Whose touchpoint it was."""

    MARKETING = "marketing"
    SALES = "sales"
    SERVICE = "service"
    PARTNER = "partner"


def _not_far_ahead(value: datetime) -> datetime:
    if value > utc_now() + MAX_AHEAD:
        raise ValueError(
            "occurred_at is more than 24 hours ahead of the server's clock; send the time with its zone"
        )
    return value


def _bounded(value: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_PROPERTIES_BYTES:
        raise ValueError(f"properties take at most {MAX_PROPERTIES_BYTES} bytes as JSON, not {size}")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("score must be a finite number")
    return value


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
OccurredAt = Annotated[
    AwareDatetime,
    AfterValidator(_not_far_ahead),
    Field(description="When it happened, with a time zone; at most 24 hours ahead of the server's clock."),
]


class ExternalId(BaseModel):
    """The person's id in another system (a shop, a billing system), as contacts keep them."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    system: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-.]{0,63}$", examples=["shopify"])
    id: str = Field(min_length=1, max_length=200, examples=["gid://shopify/Customer/42"])


TOUCHPOINT_EXAMPLE: dict[str, Any] = {
    "message_id": "0b6f1d5e-3c1a-4f7e-9a52-6f0e2f1c9a10",
    "occurred_at": "2026-11-20T14:03:00Z",
    "email": "ada@example.com",
    "channel": "webinar",
    "type": "webinar_attended",
    "stage": "consideration",
    "team": "marketing",
    "campaign": "autumn-launch",
    "content_id": "webinar-analytics-101",
    "utm_source": "newsletter",
    "utm_medium": "email",
    "utm_campaign": "autumn-launch",
    "properties": {"minutes_watched": 47, "asked_questions": True},
}
PURCHASE_EXAMPLE: dict[str, Any] = {
    "message_id": "order-10482",
    "occurred_at": "2026-11-21T09:15:00Z",
    "contact_id": "4f0e6a1c-1f5b-4e1a-9a3b-2d7c5e8f9b01",
    "channel": "purchase",
    "type": "order_completed",
    "stage": "purchase",
    "team": "sales",
    "revenue": 12900,
    "currency": "EUR",
    "order_id": "10482",
}
ANONYMOUS_EXAMPLE: dict[str, Any] = {
    "occurred_at": "2026-11-19T18:40:00+01:00",
    "anonymous_id": "a1b2c3d4-visitor",
    "channel": "web",
    "type": "page_view",
    "stage": "awareness",
    "content_id": "/blog/why-one-history",
    "utm_source": "google",
    "utm_medium": "cpc",
}


def _again(error: ErrorDetails) -> InitErrorDetails:
    # As a custom error of the same type and message: a built-in type raised again needs the context
    # it was made with, and some validators (the email one) give their own instead.
    return {
        "type": PydanticCustomError(error["type"], error["msg"]),
        "loc": error["loc"],
        "input": error["input"],
    }


def _refused(code: str, field: str, message: str, data: Any) -> InitErrorDetails:
    return {"type": PydanticCustomError(code, message), "loc": (field,), "input": data}


class TouchpointCreate(BaseModel):
    """One touchpoint. Who it was: `contact_id`, `email`, `external_id` or `anonymous_id`, at least one.
    A purchase has `revenue` (minor units) with its `currency`; a survey or rating its `score`."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [TOUCHPOINT_EXAMPLE, PURCHASE_EXAMPLE, ANONYMOUS_EXAMPLE]},
    )

    message_id: Text | None = Field(
        None,
        description="Your unique id of this message. A repeat is answered with the touchpoint first "
        "recorded under it (200), and records nothing.",
    )
    occurred_at: OccurredAt
    contact_id: uuid.UUID | None = Field(
        None, description="The contact, if you know it; an id contacts does not know (yet) is kept as given."
    )
    email: EmailStr | None = Field(
        None,
        description="The person's email, if that is what you know: only its keyed hash is kept, to match it "
        "with a contact's.",
    )
    external_id: ExternalId | None = Field(None, description="The person's id in another system.")
    anonymous_id: Text | None = Field(None, description="An anonymous visitor id (a tracking cookie).")
    channel: Channel
    type: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] = Field(
        description="What happened, in your words: `page_view`, `webinar_attended`, `order_completed`. "
        "Goes on the stream: a code, not a sentence about the person.",
        examples=["page_view"],
    )
    stage: Stage | None = None
    team: Team | None = None
    campaign: Text | None = None
    content_id: Text | None = Field(None, description="The page, article, video or offer it was about.")
    utm_source: Text | None = None
    utm_medium: Text | None = None
    utm_campaign: Text | None = None
    utm_term: Text | None = None
    utm_content: Text | None = None
    properties: Annotated[dict[str, Any], AfterValidator(_bounded)] = Field(
        default_factory=dict,
        description=f"Anything else, as a JSON object of at most {MAX_PROPERTIES_BYTES} bytes. Kept here, "
        "never put on the stream.",
    )
    revenue: int | None = Field(
        None, ge=0, strict=True, description="In minor units of `currency` (cents for EUR).", examples=[12900]
    )
    currency: CurrencyCode | None = None
    order_id: Text | None = None
    score: Annotated[float, AfterValidator(_finite)] | None = Field(
        None, description="For a survey or a rating: the score given (NPS 0-10, stars, CSAT...)."
    )

    @model_validator(mode="wrap")
    @classmethod
    def _whole(cls, data: Any, handler: ModelWrapValidatorHandler["TouchpointCreate"]) -> "TouchpointCreate":
        # A wrap validator, so these are named beside the fields' own errors, not only once all are valid.
        refused: list[InitErrorDetails] = []
        if isinstance(data, dict):
            if not any(data.get(name) for name in ("contact_id", "email", "external_id", "anonymous_id")):
                refused.append(
                    _refused(
                        "who_missing",
                        "contact_id",
                        "Say who it was: contact_id, email, external_id or anonymous_id.",
                        data,
                    )
                )
            if data.get("revenue") is not None and not data.get("currency"):
                refused.append(
                    _refused("currency_missing", "currency", "A revenue needs its ISO 4217 currency.", data)
                )
        try:
            model = handler(data)
        except ValidationError as exc:
            if not refused:
                raise
            errors = [_again(error) for error in exc.errors()]
            raise ValidationError.from_exception_data(exc.title, [*errors, *refused]) from None
        if refused:
            raise ValidationError.from_exception_data(cls.__name__, refused)
        return model


class TouchpointRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **{k: v for k, v in TOUCHPOINT_EXAMPLE.items() if k != "email"},
                    "id": "9a0c2f7e-5d41-4b8e-8f3a-1c2d3e4f5a6b",
                    "contact_id": "4f0e6a1c-1f5b-4e1a-9a3b-2d7c5e8f9b01",
                    "anonymous_id": None,
                    "external_id": None,
                    "utm_term": None,
                    "utm_content": None,
                    "revenue": None,
                    "currency": None,
                    "order_id": None,
                    "score": None,
                    "received_at": "2026-11-20T14:03:02Z",
                    "actor": "3f9a1c2b7d4e5f60",
                }
            ]
        },
    )

    id: uuid.UUID
    message_id: str | None
    contact_id: uuid.UUID | None = Field(
        description="The contact it was resolved to; null while the person is unknown (the touchpoint is "
        "kept)."
    )
    anonymous_id: str | None
    external_id: ExternalId | None
    channel: Channel
    type: str
    stage: Stage | None
    team: Team | None
    campaign: str | None
    content_id: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_term: str | None
    utm_content: str | None
    properties: dict[str, Any]
    revenue: int | None
    currency: str | None
    order_id: str | None
    score: float | None
    occurred_at: datetime
    received_at: datetime = Field(description="When the service received it.")
    actor: str = Field(description="The API key that recorded it.")
