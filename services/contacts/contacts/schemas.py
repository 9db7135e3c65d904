import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, EmailStr, Field


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
