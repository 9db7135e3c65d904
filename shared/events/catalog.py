"""Every event type the platform emits, and the one registry that parses them.

Event data carries ids, not PII: consumers that need a person's details ask the owning service.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from shared.events import topics
from shared.events.base import Event
from shared.events.registry import EventRegistry


class ContactCreated(Event):
    """A contact was created in the contacts service."""

    topic = topics.CONTACTS.name
    type: Literal["crm.contact.created"] = "crm.contact.created"
    schema_version: Literal[1] = 1

    contact_id: uuid.UUID
    lifecycle_stage: str
    source: str | None = None
    created_at: datetime

    @property
    def key(self) -> str:
        return str(self.contact_id)


REGISTRY = EventRegistry([ContactCreated])
