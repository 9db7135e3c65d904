import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.contacts.search.schemas import Filter

_EXAMPLE: dict[str, Any] = {
    "name": "Pro customers in EMEA",
    "filter": {
        "and": [
            {"field": "lifecycle_stage", "op": "eq", "value": "customer"},
            {"field": "region", "op": "eq", "value": "EMEA"},
            {"field": "properties.plan", "op": "eq", "value": "pro"},
        ]
    },
}


class SegmentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [_EXAMPLE]}
    )

    name: str = Field(min_length=1, max_length=200)
    filter: Filter = Field(description="As in `POST /v1/contacts/search`.")


class SegmentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(None, min_length=1, max_length=200)
    filter: Filter | None = None


class SegmentRead(BaseModel):
    id: uuid.UUID
    name: str
    filter: Filter
    count: int = Field(description="Contacts matching now: counted when the segment is read.")
    counted_at: datetime
    created_at: datetime
    updated_at: datetime
