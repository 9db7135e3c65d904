import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class ConfirmationStatus(StrEnum):
    CONFIRMED = "confirmed"
    PENDING = "pending"


class ServiceConfirmation(BaseModel):
    service: str
    status: ConfirmationStatus
    confirmed_at: datetime | None


class ErasureReceiptRead(BaseModel):
    id: uuid.UUID = Field(description="The receipt id: keep it to show the erasure was done.")
    contact_id: uuid.UUID
    requested_at: datetime
    complete: bool = Field(description="Every service has confirmed.")
    services: list[ServiceConfirmation] = Field(description="Each service's confirmation as it arrives.")
