import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.web.pagination import Page

COMPLETENESS = (
    "Every event the stream had accepted before this instant, on the topic named, is on this timeline: "
    "the timeline's consumer has applied it (or, if it failed for good, set it aside in the topic's "
    "dead-letter topic, listed by `crm dlq`). Later events may already be here too. It is about when the "
    "stream accepted an event, not when the event occurred: a touchpoint sent days after it happened is "
    "covered once the stream has it. It advances only while the consumer runs; null until it has caught "
    "up with every partition of the topic once (after a start from scratch or a `crm replay`)."
)


class TimelineEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    event_id: str = Field(description="CloudEvents id of the originating event.")
    event_type: str = Field(description="CloudEvents type, e.g. `crm.contact.created`.")
    source: str = Field(description="Service that emitted the event, e.g. `/crm/contacts`.")
    occurred_at: datetime
    type: str = Field(
        validation_alias="kind",
        description="What the `type` filter matches: a touchpoint's own type (`page_view`), else the event "
        "type.",
    )
    team: str | None = Field(description="`marketing`, `sales`, `service` or `partner`; null if none.")
    channel: str | None = Field(description="A touchpoint's channel; null for other entries.")
    properties: dict[str, Any]


class Timeline(Page[TimelineEntryRead]):
    """A page of a contact's timeline, oldest first, and how complete the timeline is."""

    contact_id: uuid.UUID
    complete_before: datetime | None = Field(
        description="The earliest of `complete_before_by_topic`: every event the stream had accepted "
        "before this instant, on any topic the timeline is built from, is on this timeline. Null while "
        "that is not known for some topic."
    )
    complete_before_by_topic: dict[str, datetime | None] = Field(
        description="Per topic the timeline is built from (`crm.contacts`, `crm.touchpoints`, ...). "
        + COMPLETENESS
    )
