import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.web.pagination import Page


class TimelineEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    event_id: str = Field(description="CloudEvents id of the originating event.")
    event_type: str = Field(description="CloudEvents type, e.g. `crm.contact.created`.")
    source: str = Field(description="Service that emitted the event, e.g. `/crm/contacts`.")
    occurred_at: datetime
    properties: dict[str, Any]


class Timeline(Page[TimelineEntryRead]):
    """A page of a contact's timeline, oldest first."""

    contact_id: uuid.UUID
