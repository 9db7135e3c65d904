import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.contacts.contacts.schemas import ContactRead

MERGE_EXAMPLE: dict[str, Any] = {
    "merge_id": "0b5e9c1e-62c4-4a3c-9c1b-2f7f3c8d9a10",
    "prefer": {"job_title": "merged", "properties.plan": "merged"},
    "reason": "Same person: signed up twice, once with a work address.",
}


class MergeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": dict(MERGE_EXAMPLE)})

    merge_id: uuid.UUID = Field(description="The contact to merge into this one; it is gone afterwards.")
    prefer: dict[str, Literal["survivor", "merged"]] = Field(
        default_factory=dict,
        description="Per field (a standard one, or `properties.<key>`), the side whose value wins when "
        "both have one. Unnamed fields: the survivor's value, or the merged one's where the survivor has "
        "none; the lifecycle stage further along the funnel; lists (emails, ids, tags) are joined.",
    )
    reason: str | None = Field(
        None, max_length=500, description="Why they are one person; kept with the merge."
    )


class MergeDecision(BaseModel):
    field: str
    chosen: Literal["survivor", "merged", "both"] = Field(description="Whose value the survivor has now.")
    rule: str = Field(description="Why: `requested`, `only value`, `survivor's value`, `union`, `summed`, ….")


class MatchReason(BaseModel):
    rule: Literal["email", "phone", "name_and_company"]
    detail: str
    weight: float = Field(description="What this reason adds to the score, 0..1.")


class MergeRead(BaseModel):
    """A merge, as it is kept to explain later why two records are one."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    survivor_id: uuid.UUID
    merged_id: uuid.UUID = Field(description="The merged contact's id; a GET of it answers the survivor.")
    merged_at: datetime
    actor: str = Field(description="The API key id that asked for the merge.")
    reason: str | None
    decisions: list[MergeDecision] = Field(description="Where each field's value came from.")
    matched: list[MatchReason] = Field(
        description="The duplicate-candidate reasons that held for the pair when merged; empty if none."
    )
    moved: dict[str, int] = Field(
        description="Rows moved to the survivor: property changes, lifecycle transitions, consent records, "
        "entries (notes, reviews, ratings), company and deal associations."
    )
    merged_snapshot: dict[str, Any] | None = Field(
        description="The merged contact as it read just before the merge. Erasing the survivor empties it, "
        "the `reason` and the `matched` details."
    )


class MergeOutcome(BaseModel):
    merge: MergeRead
    contact: ContactRead = Field(description="The surviving contact after the merge.")
