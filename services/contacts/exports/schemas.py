from enum import StrEnum

from pydantic import BaseModel, Field

from services.contacts.consents.schemas import ConsentRecordRead
from services.contacts.contacts.schemas import ContactRead, LifecycleTransitionRead, PropertyChangeRead
from services.contacts.entries.schemas import EntryRead


class ExportFormat(StrEnum):
    NDJSON = "ndjson"
    CSV = "csv"


class HeldElsewhere(BaseModel):
    service: str
    holds: str
    read_at: str | None = Field(description="Where to read it, relative to the platform's base URL.")


class PersonalDataExport(BaseModel):
    """A data-access answer: everything the contacts service holds about one person, and what else
    holds data about them."""

    contact: ContactRead
    history: list[PropertyChangeRead] = Field(description="Every recorded change, oldest first.")
    lifecycle: list[LifecycleTransitionRead]
    consents: list[ConsentRecordRead] = Field(description="Every consent and subscription statement.")
    entries: list[EntryRead] = Field(
        description="Every note, review, rating, feedback and suggestion, oldest first (by when it occurred)."
    )
    elsewhere: list[HeldElsewhere]
