import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator


class LifecycleStage(StrEnum):
    """Where a person stands in the funnel, in the order they usually pass through."""

    SUBSCRIBER = "subscriber"
    LEAD = "lead"
    MARKETING_QUALIFIED_LEAD = "marketing_qualified_lead"
    SALES_QUALIFIED_LEAD = "sales_qualified_lead"
    OPPORTUNITY = "opportunity"
    CUSTOMER = "customer"
    EVANGELIST = "evangelist"
    OTHER = "other"


class ContactCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: EmailStr = Field(description="Unique per contact, compared case-insensitively.")
    first_name: str | None = Field(None, max_length=200)
    last_name: str | None = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=50)
    lifecycle_stage: LifecycleStage = LifecycleStage.SUBSCRIBER
    source: str | None = Field(
        None, max_length=200, description="Where the contact came from, e.g. `webinar`."
    )


class ContactPatch(BaseModel):
    """A JSON merge patch (RFC 7396): a field left out stays as it is, `null` clears it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    first_name: str | None = Field(None, max_length=200)
    last_name: str | None = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=50)
    lifecycle_stage: LifecycleStage | None = Field(None, description="Cannot be cleared.")
    source: str | None = Field(None, max_length=200)

    @field_validator("lifecycle_stage")
    @classmethod
    def _stage_is_not_cleared(cls, value: LifecycleStage | None) -> LifecycleStage:
        # Runs only for a value the patch gives, so leaving the field out stays allowed.
        if value is None:
            raise ValueError("lifecycle_stage cannot be null; leave it out to keep it")
        return value

    def given(self) -> dict[str, str | None]:
        """The fields the patch sets, as they are stored."""
        return {
            name: value.value if isinstance(value, LifecycleStage) else value
            for name, value in self.model_dump(include=self.model_fields_set).items()
        }


class ContactRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    first_name: str | None
    last_name: str | None
    phone: str | None
    lifecycle_stage: LifecycleStage
    source: str | None
    created_at: datetime
    updated_at: datetime
