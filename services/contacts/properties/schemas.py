import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

PropertyKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
OptionValue = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class ObjectType(StrEnum):
    CONTACT = "contact"
    COMPANY = "company"
    DEAL = "deal"


class PropertyType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    BOOL = "bool"
    DATE = "date"
    ENUM = "enum"
    MULTI_ENUM = "multi_enum"

    @property
    def has_options(self) -> bool:
        return self in (PropertyType.ENUM, PropertyType.MULTI_ENUM)


class PropertyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "object_type": "contact",
                    "key": "plan",
                    "label": "Plan",
                    "type": "enum",
                    "options": ["free", "pro", "enterprise"],
                    "personal_data": False,
                }
            ]
        },
    )

    object_type: ObjectType
    key: PropertyKey = Field(description="Lower-case slug; how the value is named in `properties`.")
    label: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=1000)
    type: PropertyType
    options: list[OptionValue] = Field(
        default_factory=list, max_length=500, description="The allowed values of an enum or multi_enum."
    )
    personal_data: bool = Field(
        True,
        description="Whether values may identify a person. Only values of properties marked `false` are "
        "put on the event stream (in `crm.contact.updated`); the others are named, never shown.",
    )

    @model_validator(mode="after")
    def _options_fit_the_type(self) -> "PropertyCreate":
        if self.type.has_options and not self.options:
            raise ValueError("an enum or multi_enum property needs at least one option")
        if not self.type.has_options and self.options:
            raise ValueError(f"a {self.type} property has no options")
        if len(set(self.options)) != len(self.options):
            raise ValueError("options must be unique")
        return self


class PropertyPatch(BaseModel):
    """A merge patch. The key and type never change; options may only be added to."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    label: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=1000)
    options: list[OptionValue] | None = Field(None, max_length=500)
    personal_data: bool | None = None


class PropertyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    object_type: ObjectType
    key: str
    label: str
    description: str | None
    type: PropertyType
    options: list[str]
    personal_data: bool
    created_at: datetime
    updated_at: datetime
