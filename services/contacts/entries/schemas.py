import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from shared.db import utc_now
from shared.events.entries import Sentiment

# Clocks differ: a time this far ahead of ours is still taken as "now".
_CLOCK_SKEW = timedelta(minutes=5)
_CODE = r"^[a-z0-9][a-z0-9_\-.:]*$"


class EntryKind(StrEnum):
    NOTE = "note"
    REVIEW = "review"
    RATING = "rating"
    FEEDBACK = "feedback"
    SUGGESTION = "suggestion"


class Scale(StrEnum):
    FIVE_STAR = "five_star"
    CSAT = "csat"
    NPS = "nps"
    CES = "ces"
    THUMBS = "thumbs"


@dataclass(frozen=True)
class ScaleRange:
    """A scale's scores, and where on it a score reads as negative or positive (the rest is neutral)."""

    low: int
    high: int
    negative_to: int
    positive_from: int

    def sentiment(self, score: int) -> Sentiment:
        if score >= self.positive_from:
            return "positive"
        if score <= self.negative_to:
            return "negative"
        return "neutral"


SCALES: dict[Scale, ScaleRange] = {
    # Stars on a review site or an app store.
    Scale.FIVE_STAR: ScaleRange(1, 5, negative_to=2, positive_from=4),
    # Customer satisfaction: "how satisfied were you", 1 to 5; CSAT is the share of 4s and 5s.
    Scale.CSAT: ScaleRange(1, 5, negative_to=2, positive_from=4),
    # Net Promoter Score answers, 0 to 10: detractors 0-6, passives 7-8, promoters 9-10.
    Scale.NPS: ScaleRange(0, 10, negative_to=6, positive_from=9),
    # Customer effort (CES 2.0), 1 to 7, "it was easy to ...": 5-7 agree, 1-3 disagree.
    Scale.CES: ScaleRange(1, 7, negative_to=3, positive_from=5),
    # Thumbs down (0) or up (1).
    Scale.THUMBS: ScaleRange(0, 1, negative_to=0, positive_from=1),
}
SCALES_TEXT = "; ".join(f"`{scale.value}` {rule.low}-{rule.high}" for scale, rule in SCALES.items())

# Which kinds need a body, and which need, allow or refuse a score (checked by the service, which sees
# a patch merged onto the entry too).
BODY_REQUIRED = frozenset({EntryKind.NOTE, EntryKind.REVIEW, EntryKind.SUGGESTION})
SCORE_REQUIRED = frozenset({EntryKind.RATING, EntryKind.FEEDBACK})
SCORE_REFUSED = frozenset({EntryKind.NOTE, EntryKind.SUGGESTION})


def _not_ahead(value: datetime) -> datetime:
    if value > utc_now() + _CLOCK_SKEW:
        raise ValueError("occurred_at is in the future")
    return value


Body = Annotated[str, Field(min_length=1, max_length=20_000, description="The text; kept here only.")]
Subject = Annotated[
    str, Field(min_length=1, max_length=300, description="A headline: a review's title, the topic.")
]
Score = Annotated[
    int, Field(strict=True, description=f"A whole number on `scale`: {SCALES_TEXT}.", examples=[9])
]
Channel = Annotated[
    str,
    Field(
        max_length=64,
        pattern=_CODE,
        description="Where it came from, as a code: `survey`, `support_ticket`, `app_store`, `call`, "
        "`email`, `chat`, `review_site`... Goes on the stream with a score, so it names no one.",
        examples=["survey"],
    ),
]
AuthorId = Annotated[
    str, Field(min_length=1, max_length=100, description="Id of the user who wrote or took it: `agent-4`.")
]
OccurredAt = Annotated[
    AwareDatetime,
    AfterValidator(_not_ahead),
    Field(description="When the person gave it, with a time zone; not in the future. Defaults to now."),
]


class Reference(BaseModel):
    """What the entry is about. A `deal` must be a deal of this CRM; other types are ids elsewhere."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    type: str = Field(
        max_length=32,
        pattern=r"^[a-z][a-z0-9_]*$",
        description="`deal` (checked), or any other kind of record: `ticket`, `order`, `call`...",
        examples=["deal"],
    )
    id: str = Field(min_length=1, max_length=200, description="Its id; for a `deal`, the deal's id.")


class EntryFields(BaseModel):
    """What an entry holds besides its kind; shared by create and patch."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    subject: Subject | None = None
    body: Body | None = None
    score: Score | None = None
    scale: Scale | None = Field(None, description="Needed with a score, and only with one.")
    channel: Channel | None = None
    reference: Reference | None = None
    author: AuthorId | None = None

    def stored(self) -> dict[str, Any]:
        """The fields the body sets, as columns (a reference is two)."""
        given = self.model_fields_set - {"reference", "kind"}
        values = {name: getattr(self, name) for name in given}
        if "reference" in self.model_fields_set:
            values["reference_type"] = self.reference.type if self.reference else None
            values["reference_id"] = self.reference.id if self.reference else None
        if isinstance(values.get("scale"), Scale):
            values["scale"] = values["scale"].value
        return values


class EntryCreate(EntryFields):
    """Kinds: `note` and `suggestion` need a body and take no score; `review` needs a body, its score is
    optional; `rating` and `feedback` need a score, their body is optional."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "feedback",
                    "score": 9,
                    "scale": "nps",
                    "body": "Support sorted my invoice out in minutes.",
                    "channel": "survey",
                    "reference": {"type": "ticket", "id": "ZD-4711"},
                    "occurred_at": "2026-11-20T09:30:00Z",
                },
                {"kind": "note", "body": "Prefers calls after 4 pm.", "author": "agent-4"},
            ]
        }
    )

    kind: EntryKind
    occurred_at: OccurredAt | None = None


class EntryPatch(EntryFields):
    """A JSON merge patch (RFC 7396): a field left out stays as it is, `null` clears it. The kind's
    rules hold after the patch as on creation; the kind itself cannot change."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"score": 4, "body": "Second call went better.", "subject": None}]}
    )

    kind: EntryKind | None = Field(
        None, description="Cannot change (the service says so, naming `kind`): delete and record anew."
    )
    occurred_at: OccurredAt | None = Field(None, description="When the person gave it; cannot be cleared.")

    @field_validator("occurred_at")
    @classmethod
    def _occurred_at_is_not_cleared(cls, value: datetime | None) -> datetime:
        if value is None:
            raise ValueError("occurred_at cannot be null; leave it out to keep it")
        return value


class EntryRead(BaseModel):
    id: uuid.UUID
    contact_id: uuid.UUID
    kind: EntryKind
    subject: str | None
    body: str | None
    score: int | None
    scale: Scale | None
    channel: str | None
    reference: Reference | None
    author: str | None
    actor: str = Field(description="The API key that recorded it.")
    occurred_at: datetime
    created_at: datetime
    updated_at: datetime


class LatestScore(BaseModel):
    entry_id: uuid.UUID
    score: int
    occurred_at: datetime


class ScoreSummary(BaseModel):
    """The scores a contact gave on one scale."""

    low: int = Field(description="The scale's lowest score.")
    high: int = Field(description="The scale's highest score.")
    count: int
    average: float = Field(description="Rounded to two decimals.")
    lowest: int
    highest: int
    positive: int = Field(description="How many read positive: promoters (NPS 9-10), CSAT and stars 4-5.")
    neutral: int
    negative: int = Field(description="How many read negative: detractors (NPS 0-6), CSAT and stars 1-2.")
    latest: LatestScore = Field(description="The score given last (by `occurred_at`).")


class EntrySummary(BaseModel):
    """A contact's entries at a glance, as a sales or service user opens the contact."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "total": 4,
                    "by_kind": {"note": 2, "review": 0, "rating": 0, "feedback": 2, "suggestion": 0},
                    "scores": {
                        "nps": {
                            "low": 0,
                            "high": 10,
                            "count": 2,
                            "average": 7.5,
                            "lowest": 6,
                            "highest": 9,
                            "positive": 1,
                            "neutral": 0,
                            "negative": 1,
                            "latest": {
                                "entry_id": "0f8e7a52-8c61-4d5e-9d0a-2b7d1f3c4e5a",
                                "score": 9,
                                "occurred_at": "2026-11-20T09:30:00Z",
                            },
                        }
                    },
                    "last_entry_at": "2026-11-21T16:02:00Z",
                }
            ]
        }
    )

    total: int
    by_kind: dict[EntryKind, int] = Field(description="Every kind, zeros included.")
    scores: dict[Scale, ScoreSummary] = Field(description="Per scale the contact has scores on.")
    last_entry_at: datetime | None = Field(description="When the newest entry occurred; null for none.")
