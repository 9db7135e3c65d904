"""The Segment HTTP Tracking API's calls, as Segment and RudderStack libraries send them.

Only what journeys uses is read; everything else a library adds (`integrations`, `channel`, `version`,
`_metadata`, …) is accepted and ignored, so an app instrumented for Segment can point its library here
unchanged. Ids may come as numbers (some libraries send them so) and are kept as text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel


def _as_text(value: Any) -> Any:
    # Numbers are ids too (`userId: 42`); booleans are not.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Id = Annotated[
    str, BeforeValidator(_as_text), StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class _Call(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True)

    message_id: Id | None = Field(
        None, description="The library's id of this call: a repeat records nothing and answers as the first."
    )
    anonymous_id: Id | None = Field(None, description="The visitor's anonymous id (a cookie or a device id).")
    user_id: Id | None = Field(None, description="Your app's id of the user.")
    timestamp: AwareDatetime | None = Field(
        None,
        description="When it happened, by the sender's clock. With `sentAt`, the sender's clock is "
        "corrected: the call is taken to have happened `sentAt - timestamp` before it was received. At "
        "most 24 hours ahead of the server's clock once corrected.",
    )
    sent_at: AwareDatetime | None = Field(None, description="When the library sent it, by the same clock.")
    context: dict[str, Any] = Field(
        default_factory=dict,
        description="Read: `page` (`path`, `url`, `referrer`, `title`), `campaign` (`name`, `source`, "
        "`medium`, `term`, `content`) and `traits.email`. Not kept: `ip`, `userAgent` and the rest.",
    )


class TrackCall(_Call):
    """Something the user did (`event`), with its `properties`."""

    type: Literal["track"] = "track"
    event: Name = Field(description="What happened, e.g. `Order Completed`, `Webinar Attended`.")
    properties: dict[str, Any] = Field(default_factory=dict)


class PageCall(_Call):
    """A page viewed on a website."""

    type: Literal["page"] = "page"
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    category: Annotated[str, StringConstraints(max_length=200)] | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class ScreenCall(_Call):
    """A screen viewed in a mobile app."""

    type: Literal["screen"] = "screen"
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    category: Annotated[str, StringConstraints(max_length=200)] | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class IdentifyCall(_Call):
    """Who the user is: ties `anonymousId` to `userId`, and names the email in `traits`."""

    type: Literal["identify"] = "identify"
    traits: dict[str, Any] = Field(
        default_factory=dict,
        description="Only `email` is read, and only its keyed hash is kept, to stitch the visitor to the "
        "contact with that email. The other traits are not stored and never put on a topic.",
    )


class GroupCall(_Call):
    """The user belongs to a group (an account, a company)."""

    type: Literal["group"] = "group"
    group_id: Id
    traits: dict[str, Any] = Field(default_factory=dict, description="Not stored.")


class AliasCall(BaseModel):
    """`previousId` (an anonymous id, or an earlier user id) is the same person as `userId`."""

    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True)

    type: Literal["alias"] = "alias"
    message_id: Id | None = None
    previous_id: Id
    user_id: Id
    timestamp: AwareDatetime | None = None
    sent_at: AwareDatetime | None = None
    context: dict[str, Any] = Field(default_factory=dict)


Call = Annotated[
    TrackCall | PageCall | ScreenCall | IdentifyCall | GroupCall | AliasCall, Field(discriminator="type")
]


class BatchCall(BaseModel):
    """Up to 1,000 calls of any type, as libraries send them; `context` here applies to each."""

    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True)

    batch: list[dict[str, Any]] = Field(min_length=1, max_length=1000)
    sent_at: AwareDatetime | None = None
    context: dict[str, Any] = Field(default_factory=dict)


class Accepted(BaseModel):
    """What Segment's API answers."""

    success: Literal[True] = True


def corrected(timestamp: datetime | None, sent_at: datetime | None, received_at: datetime) -> datetime:
    """When the call happened by the server's clock: as Segment does, the sender's clock is trusted for
    the gap between the call and its sending, not for the time itself."""
    if timestamp is None:
        return received_at
    if sent_at is None:
        return timestamp
    return received_at - (sent_at - timestamp)
