"""Every event type the platform emits, and the one registry that parses them.

Event data carries ids, not PII: consumers that need a person's details ask the owning service.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.auth.events import ApiKeyCreated, ApiKeyRevoked
from shared.events import topics
from shared.events.base import Event
from shared.events.base import FieldChange as FieldChange  # re-exported: it moved to base, shared by all
from shared.events.companies import CompanyContactAdded, CompanyContactRemoved, CompanyCreated, CompanyUpdated
from shared.events.deals import DealCreated, DealLost, DealStageChanged, DealUpdated, DealWon
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


class ContactUpdated(Event):
    """Fields of a contact were changed; emitted only when at least one value changed.

    `changed_fields` names every field that changed. `changes` carries old and new values only for
    fields that are not personal data (`lifecycle_stage`, `source`): names and phone numbers are PII,
    and the log keeps every event for ever, where an erasure could not reach them. A consumer that
    needs a person's current details asks the contacts service, which erasure does reach.
    """

    topic = topics.CONTACTS.name
    type: Literal["crm.contact.updated"] = "crm.contact.updated"
    schema_version: Literal[1] = 1

    contact_id: uuid.UUID
    changed_fields: list[str] = Field(description="Every field that changed, personal ones included, sorted.")
    changes: dict[str, FieldChange] = Field(
        description="Old and new values of the changed fields that are not personal data."
    )
    updated_at: datetime

    @property
    def key(self) -> str:
        return str(self.contact_id)


REGISTRY = EventRegistry(
    [
        ApiKeyCreated,
        ApiKeyRevoked,
        ContactCreated,
        ContactUpdated,
        CompanyCreated,
        CompanyUpdated,
        CompanyContactAdded,
        CompanyContactRemoved,
        DealCreated,
        DealUpdated,
        DealStageChanged,
        DealWon,
        DealLost,
    ]
)
