"""The HTTP shapes of a tracking link."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

CODE_PATTERN = r"^[A-Za-z0-9_-]{3,64}$"
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


def absolute_http_url(value: str) -> str:
    """An absolute `http` or `https` URL with a host: the redirect sends visitors there."""
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL, e.g. `https://shop.example.com/pricing`")
    if any(character.isspace() for character in value):
        raise ValueError("must not contain white space")
    if not value.isascii():
        # It goes out in a `Location` header, which is ASCII: encode the path and query as a browser does.
        if not parts.hostname.isascii():
            raise ValueError("give the host name in its ASCII (punycode) form, e.g. `xn--caf-dma.example`")
        value = quote(value, safe="!#$%&'()*+,/:;=?@[]~")
    return value


Destination = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        description="Where `/r/{code}` sends visitors: an absolute http(s) URL; its own query is kept.",
        examples=["https://shop.example.com/pricing?plan=pro"],
    ),
    AfterValidator(absolute_http_url),
]
Utm = Annotated[str | None, Field(None, min_length=1, max_length=200)]


class LinkUtm(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    utm_source: Utm = None
    utm_medium: Utm = None
    utm_campaign: Utm = None
    utm_term: Utm = None
    utm_content: Utm = None


class LinkCreate(LinkUtm):
    program_id: uuid.UUID
    affiliate_id: uuid.UUID
    destination_url: Destination
    code: str | None = Field(
        None,
        pattern=CODE_PATTERN,
        description="The code in `/r/{code}`: 3-64 letters, digits, `-` or `_`; unique. Left out, one is "
        "made (8 URL-safe characters).",
        examples=["ada-spring"],
    )


class LinkPatch(LinkUtm):
    """A merge patch of the destination and UTM parameters; `null` clears a UTM parameter. The code,
    program and affiliate stay as created: printed links and past clicks name them."""

    destination_url: Destination | None = None

    # Runs only for a value given: left out keeps the destination, a null is refused.
    @field_validator("destination_url")
    @classmethod
    def _destination_kept(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("cannot be null; leave it out to keep it")
        return value

    def given(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class LinkRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    code: str
    tracking_url: str = Field(description="The link to share: `/r/{code}` on this service.")
    destination_url: str
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_term: str | None
    utm_content: str | None
    program_id: uuid.UUID
    affiliate_id: uuid.UUID
    archived_at: datetime | None = Field(
        description="Set once archived: it still redirects and records clicks, and credits nothing new."
    )
    created_at: datetime
    updated_at: datetime
