import uuid
from typing import Annotated

from fastapi import Query

from services.contacts.duplicates import service
from services.contacts.duplicates.schemas import CandidateContact, DuplicateCandidate, DuplicateCandidates
from services.contacts.merges.schemas import MatchReason
from shared.web.auth import requires
from shared.web.deps import ReadSessionDep
from shared.web.problems import PROBLEM_RESPONSES, problem_doc
from shared.web.routing import api_router

router = api_router(prefix="/v1/contacts", tags=["merges"])


@router.get(
    "/{contact_id}/duplicates",
    summary="Duplicate candidates of a contact",
    description="Other contacts that may be the same person, the likeliest first, each with a score "
    "(0..1) and its reasons: `email` (an address reaching the same mailbox: case, `+tags`, and the dots "
    "Gmail ignores), `phone` (the same number, as phone or mobile), `name_and_company` (names at least "
    f"{service.NAME_THRESHOLD:.0%} alike, accents, case and order aside, at the same company by name or "
    "association). Reasons combine as independent evidence. Merge one with "
    "`POST /v1/contacts/{contact_id}/merge`.",
    responses={
        404: problem_doc("No such contact."),
        410: problem_doc("The contact was erased."),
        **PROBLEM_RESPONSES,
    },
    dependencies=[requires("contacts:read")],
)
async def list_duplicates(
    contact_id: uuid.UUID,
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=100, description="At most this many candidates.")] = 20,
) -> DuplicateCandidates:
    found = await service.find_duplicates(session, contact_id, limit)
    return DuplicateCandidates(
        items=[
            DuplicateCandidate(
                contact=CandidateContact.model_validate(candidate.contact, from_attributes=True),
                score=candidate.score,
                reasons=[
                    MatchReason.model_validate({"rule": r.rule, "detail": r.detail, "weight": r.weight})
                    for r in candidate.reasons
                ],
            )
            for candidate in found
        ]
    )
