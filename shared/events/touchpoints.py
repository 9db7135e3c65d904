"""Touchpoint events, on `crm.touchpoints`: every contact a prospect has with the business, from an ad
click to a purchase, recorded by the journeys service.

The record key is the contact id when the touchpoint was resolved to a contact, else the anonymous
visitor id, else the touchpoint id: one person's touchpoints stay in order once they are known.

Ids and codes only. The touchpoint's free `properties` stay in the journeys service (they may hold
anything a client sends, names included), and so does the email a touchpoint named, even as a keyed
hash: the log keeps every event for ever, where an erasure could not reach it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.events import topics
from shared.events.base import Event


class _TouchpointFacts(Event):
    """What both touchpoint events say of the touchpoint."""

    touchpoint_id: uuid.UUID
    anonymous_id: str | None = Field(description="The anonymous visitor id (a tracking cookie), if given.")
    channel: str = Field(
        description="`web`, `app`, `email`, `social_ad`, `sponsored_content`, `search`, `webinar`, `event`, "
        "`phone_call`, `meeting`, `chat`, `support_ticket`, `referral`, `purchase`, `survey` or `other`."
    )
    touchpoint_type: str = Field(
        description="The touchpoint's `type` (named so here because `type` is the CloudEvents type): what "
        "happened, as the sender names it, e.g. `page_view`, `webinar_attended`, `order_completed`."
    )
    stage: str | None = Field(
        description="Journey stage: `awareness`, `consideration`, `decision`, `purchase`, `retention`, "
        "`advocacy`; null if not given."
    )
    team: str | None = Field(description="`marketing`, `sales`, `service` or `partner`; null if not given.")
    campaign: str | None
    content_id: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_term: str | None
    utm_content: str | None
    revenue: int | None = Field(description="In minor units of `currency` (cents for EUR).")
    currency: str | None = Field(description="ISO 4217.")
    order_id: str | None
    score: float | None = Field(description="For a survey or a rating: the score given.")
    occurred_at: datetime = Field(description="When it happened, as the sender says.")
    received_at: datetime = Field(description="When the journeys service received it.")


class TouchpointRecorded(_TouchpointFacts):
    """A touchpoint was recorded (once per touchpoint: a repeated `message_id` announces nothing)."""

    topic = topics.TOUCHPOINTS.name
    type: Literal["crm.touchpoint.recorded"] = "crm.touchpoint.recorded"
    schema_version: Literal[1] = 1

    contact_id: uuid.UUID | None = Field(
        description="The contact it was resolved to when it was recorded; null while the person is unknown."
    )

    @property
    def key(self) -> str:
        if self.contact_id is not None:
            return str(self.contact_id)
        return self.anonymous_id or str(self.touchpoint_id)


class TouchpointResolved(_TouchpointFacts):
    """A touchpoint recorded while its person was unknown now belongs to a contact: an identify call, an
    alias, or a contacts event named the identifier it carried (identity stitching). Once per touchpoint,
    after its `crm.touchpoint.recorded`; the facts are the same, the contact is new."""

    topic = topics.TOUCHPOINTS.name
    type: Literal["crm.touchpoint.resolved"] = "crm.touchpoint.resolved"
    schema_version: Literal[1] = 1

    contact_id: uuid.UUID = Field(description="The contact it now belongs to.")

    @property
    def key(self) -> str:
        return str(self.contact_id)
