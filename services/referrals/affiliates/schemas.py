"""The HTTP shapes of an affiliate and of the API keys bound to one."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from shared.auth.principal import AFFILIATE_SCOPES

AffiliateKind = Literal["partner", "customer"]
AffiliateStatus = Literal["active", "suspended"]
_KIND = "`partner` (paid commissions), or `customer` (a customer who refers, paid referral rewards too)."
_STATUS = "`suspended`: its links still redirect and record clicks, and its conversions credit nothing."


class AffiliateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: AffiliateKind = Field("partner", description=_KIND)
    name: str = Field(min_length=1, max_length=200, examples=["Ada's Reviews"])
    email: EmailStr | None = Field(
        None,
        description="Where payouts and notices go. Stored with its keyed hash, for self-referral checks.",
    )
    contact_id: uuid.UUID | None = Field(None, description="The contact this affiliate is, if any.")


class AffiliatePatch(BaseModel):
    """A merge patch: fields left out are kept; `email` and `contact_id` may be cleared with null."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(None, min_length=1, max_length=200)
    email: EmailStr | None = None
    contact_id: uuid.UUID | None = None
    status: AffiliateStatus | None = Field(None, description=_STATUS)

    # Runs only for values given: a field left out is kept, a null is refused, naming the field.
    @field_validator("name", "status")
    @classmethod
    def _not_cleared(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null; leave it out to keep it")
        return value

    def given(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class AffiliateRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: AffiliateKind
    name: str
    email: str | None
    contact_id: uuid.UUID | None
    status: AffiliateStatus = Field(description=_STATUS)
    created_at: datetime
    updated_at: datetime


class AffiliateKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scopes: list[str] = Field(
        default_factory=lambda: sorted(AFFILIATE_SCOPES),
        min_length=1,
        description="A subset of "
        + ", ".join(f"`{scope}`" for scope in sorted(AFFILIATE_SCOPES))
        + " (the default: both).",
    )
    name: str | None = Field(None, max_length=200, description="Who or what uses the key.")
    expires_at: datetime | None = Field(None, description="When the key stops working; never when absent.")
