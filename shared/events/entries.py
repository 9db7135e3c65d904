"""Feedback events: the scores people give (ratings, reviews, surveys), on `crm.contacts` with the contact
id as the record key.

A contact's entries (notes, reviews, ratings, feedback, suggestions) live in the contacts service; only
the ones with a score are announced, and only as numbers and codes. The text (body, subject) never goes
on the stream: free text names people, and the log keeps every event for ever, where an erasure could
not reach it. The KPI service computes satisfaction (average, CSAT, NPS) from these events alone.

An entry's score may be corrected after it was recorded: the entry is announced again under the same
`entry_id`, and the latest `crm.contact.feedback_recorded` per `entry_id` is the one that counts, until
a `crm.contact.feedback_removed` for it. Both travel on the contact's key, so they arrive in order.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.events import topics
from shared.events.base import Event

Sentiment = Literal["positive", "neutral", "negative"]


class ContactFeedbackRecorded(Event):
    """A contact's entry with a score was recorded, or its score, scale, channel or time was corrected
    (same `entry_id`: the latest event per entry counts)."""

    topic = topics.CONTACTS.name
    type: Literal["crm.contact.feedback_recorded"] = "crm.contact.feedback_recorded"
    schema_version: Literal[1] = 1

    contact_id: uuid.UUID
    entry_id: uuid.UUID
    kind: str = Field(description="`rating`, `feedback` or `review` (the kinds that carry a score).")
    score: int
    scale: str = Field(description="`five_star`, `csat`, `nps`, `ces` or `thumbs`.")
    scale_min: int = Field(description="The lowest score of the scale, e.g. 0 for `nps`.")
    scale_max: int = Field(description="The highest score of the scale, e.g. 10 for `nps`.")
    sentiment: Sentiment = Field(
        description="The score read on its scale: for `nps`, promoter (positive), passive (neutral) or "
        "detractor (negative); for `csat` and `five_star`, 4-5 positive and 1-2 negative."
    )
    channel: str | None = Field(None, description="Where it was given, e.g. `survey`, `app_store`.")
    occurred_at: datetime = Field(description="When the person gave it.")
    recorded_at: datetime = Field(description="When it was recorded, or last corrected, here.")

    @property
    def key(self) -> str:
        return str(self.contact_id)


class ContactFeedbackRemoved(Event):
    """A contact's entry with a score was deleted, or its score cleared: it no longer counts."""

    topic = topics.CONTACTS.name
    type: Literal["crm.contact.feedback_removed"] = "crm.contact.feedback_removed"
    schema_version: Literal[1] = 1

    contact_id: uuid.UUID
    entry_id: uuid.UUID
    removed_at: datetime

    @property
    def key(self) -> str:
        return str(self.contact_id)
