import uuid

from pydantic import BaseModel, Field

from services.contacts.contacts.schemas import LifecycleStage
from services.contacts.merges.schemas import MatchReason


class CandidateContact(BaseModel):
    id: uuid.UUID
    first_name: str | None
    last_name: str | None
    email: str | None
    company_name: str | None
    lifecycle_stage: LifecycleStage


class DuplicateCandidate(BaseModel):
    contact: CandidateContact
    score: float = Field(description="0..1: how likely the two are one person, from the reasons.")
    reasons: list[MatchReason]


class DuplicateCandidates(BaseModel):
    items: list[DuplicateCandidate] = Field(description="The likeliest first.")
