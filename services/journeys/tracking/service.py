"""Tracking calls become touchpoints: one per call, recorded, announced and stitched as any other.

How a call maps (written down in the README's tracking section):
- who: `anonymousId` as the anonymous id, `userId` as an external id in the system the deployment
  names (`CRM_JOURNEYS_TRACKING_USER_SYSTEM`, default `app`), an email in `traits` (identify) or
  `context.traits` as its keyed hash; alias puts `previousId` where the anonymous id goes. A call that
  names an id and another (identify, alias, any call with both ids) is what stitching follows.
- what: a track call's `event` is the type; page, screen, identify, group and alias calls are
  `page_view`, `screen_view`, `identify`, `group` and `alias`.
- channel: `properties.channel` when given (one of the touchpoint channels), else `purchase` for
  Segment's `Order Completed`, else `web` for a call from a web page, `app` from an app, `other`.
- `properties.stage`, `properties.team`, `properties.campaign`, `properties.content_id`,
  `properties.order_id`, `properties.score` as the touchpoint fields of the same names;
  `properties.revenue` (major units, as Segment's e-commerce spec has it) in minor units of
  `properties.currency` (USD when not given, as in that spec); UTM fields from `context.campaign`.
- kept: the call's `properties` (page and screen add their `name` and `category`); never traits,
  IP addresses or user agents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from email_validator import EmailNotValidError, validate_email
from pydantic import ValidationError

from services.journeys.touchpoints.schemas import TouchpointCreate
from services.journeys.tracking.schemas import (
    AliasCall,
    GroupCall,
    IdentifyCall,
    PageCall,
    ScreenCall,
    TrackCall,
    corrected,
)

AnyCall = TrackCall | PageCall | ScreenCall | IdentifyCall | GroupCall | AliasCall

_TYPES = {
    "page": "page_view",
    "screen": "screen_view",
    "identify": "identify",
    "group": "group",
    "alias": "alias",
}

# Segment's e-commerce spec: the one event that is a purchase by name.
_PURCHASE_EVENTS = frozenset({"order completed"})

# ISO 4217 minor units where they are not 2 (the currencies pycountry knows, without their exponents).
_NO_MINOR_UNITS = frozenset(
    {
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "ISK",
        "JPY",
        "KMF",
        "KRW",
        "PYG",
        "RWF",
        "UGX",
        "UYI",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    }
)
_THREE_MINOR_UNITS = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})

# Where a touchpoint field came from in the call, to name it in an error.
_SOURCE_OF = {
    "message_id": "messageId",
    "occurred_at": "timestamp",
    "anonymous_id": "anonymousId",
    "external_id": "userId",
    "type": "event",
    "channel": "properties.channel",
    "stage": "properties.stage",
    "team": "properties.team",
    "campaign": "properties.campaign",
    "content_id": "properties.content_id",
    "order_id": "properties.order_id",
    "score": "properties.score",
    "revenue": "properties.revenue",
    "currency": "properties.currency",
    "properties": "properties",
    "utm_source": "context.campaign.source",
    "utm_medium": "context.campaign.medium",
    "utm_campaign": "context.campaign.name",
    "utm_term": "context.campaign.term",
    "utm_content": "context.campaign.content",
}


@dataclass(frozen=True)
class CallProblem:
    field: str
    message: str
    code: str


class CallRefused(Exception):
    """The call is well formed but cannot be a touchpoint: each problem names the call's own field."""

    def __init__(self, problems: list[CallProblem]) -> None:
        super().__init__("; ".join(f"{problem.field}: {problem.message}" for problem in problems))
        self.problems = problems


def touchpoint_of(call: AnyCall, *, received_at: datetime, user_system: str) -> TouchpointCreate:
    """The touchpoint a call records, or `CallRefused` naming the call's fields to blame."""
    if not isinstance(call, AliasCall) and call.user_id is None and call.anonymous_id is None:
        raise CallRefused(
            [CallProblem("userId", "Say who it was: userId or anonymousId (or both).", "who_missing")]
        )
    fields = _fields(call, received_at=received_at, user_system=user_system)
    try:
        return TouchpointCreate.model_validate(fields)
    except ValidationError as exc:
        raise CallRefused(
            [
                CallProblem(
                    field=_SOURCE_OF.get(str(error["loc"][0]), str(error["loc"][0]))
                    if error["loc"]
                    else "body",
                    message=error["msg"].removeprefix("Value error, "),
                    code=error["type"],
                )
                for error in exc.errors(include_url=False)
            ]
        ) from None


def _fields(call: AnyCall, *, received_at: datetime, user_system: str) -> dict[str, Any]:
    context = call.context
    campaign = as_object(context.get("campaign"))
    properties: dict[str, Any] = dict(getattr(call, "properties", {}))
    try:
        occurred_at = corrected(call.timestamp, call.sent_at, received_at)
    except OverflowError:
        # `sentAt` thousands of years after `timestamp`: no date is that far back.
        message = "timestamp is further before sentAt than any date can be; check the sender's clock"
        raise CallRefused([CallProblem(field="timestamp", message=message, code="value_error")]) from None
    fields: dict[str, Any] = {
        "message_id": call.message_id,
        "occurred_at": occurred_at,
        "external_id": {"system": user_system, "id": call.user_id} if call.user_id is not None else None,
        "type": call.event if isinstance(call, TrackCall) else _TYPES[call.type],
        "channel": properties.get("channel") or _channel(call, context),
        "utm_source": campaign.get("source"),
        "utm_medium": campaign.get("medium"),
        "utm_campaign": campaign.get("name"),
        "utm_term": campaign.get("term"),
        "utm_content": campaign.get("content"),
    }
    if isinstance(call, AliasCall):
        fields["anonymous_id"] = call.previous_id
        return fields
    fields["anonymous_id"] = call.anonymous_id
    fields["email"] = _email(
        call.traits if isinstance(call, IdentifyCall) else as_object(context.get("traits"))
    )
    for name in ("stage", "team", "order_id", "score"):
        fields[name] = properties.get(name)
    fields["campaign"] = properties.get("campaign") or campaign.get("name")
    if isinstance(call, PageCall | ScreenCall):
        page = as_object(context.get("page"))
        fields["content_id"] = (
            properties.get("content_id") or properties.get("path") or page.get("path") or call.name
        )
        properties |= {
            key: value for key, value in (("name", call.name), ("category", call.category)) if value
        }
    else:
        fields["content_id"] = properties.get("content_id")
    if isinstance(call, GroupCall):
        properties = {"group_id": call.group_id}
    if isinstance(call, TrackCall | PageCall | ScreenCall) and properties.get("revenue") is not None:
        currency = properties.get("currency") or "USD"
        fields["currency"] = currency
        fields["revenue"] = _minor_units(properties["revenue"], currency)
    fields["properties"] = properties
    return fields


def _channel(call: AnyCall, context: dict[str, Any]) -> str:
    if isinstance(call, TrackCall) and call.event.strip().lower() in _PURCHASE_EVENTS:
        return "purchase"
    if isinstance(call, PageCall) or "page" in context or "userAgent" in context:
        return "web"
    if isinstance(call, ScreenCall) or "app" in context or "device" in context:
        return "app"
    return "other"


def as_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _email(traits: dict[str, Any]) -> str | None:
    """The address in the traits, if it is one: a trait that is not an address matches no contact."""
    value = traits.get("email")
    if not isinstance(value, str):
        return None
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def _minor_units(revenue: Any, currency: Any) -> Any:
    """Major units (`12.90`) in minor units of the currency (`1290`); what cannot be converted is passed
    on as it is, for the touchpoint's validation to name."""
    if (
        isinstance(revenue, bool)
        or not isinstance(revenue, int | float | str)
        or not isinstance(currency, str)
    ):
        return revenue
    try:
        amount = Decimal(str(revenue))
    except InvalidOperation:
        return revenue
    if not amount.is_finite():
        return revenue
    code = currency.upper()
    exponent = 0 if code in _NO_MINOR_UNITS else 3 if code in _THREE_MINOR_UNITS else 2
    minor = amount.scaleb(exponent)
    return int(minor) if minor == minor.to_integral_value() else revenue
