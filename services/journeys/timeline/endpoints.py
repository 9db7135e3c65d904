import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.journeys.timeline import service
from services.journeys.timeline.schemas import Timeline, TimelineEntryRead
from shared.web.deps import ReadSessionDep
from shared.web.problems import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/contacts", tags=["timeline"])


@router.get(
    "/{contact_id}/timeline",
    summary="A contact's timeline",
    description="Every event about the contact from every service, oldest first. An unknown contact has "
    "an empty timeline (events may still be on their way).",
    responses=PROBLEM_RESPONSES,
)
async def get_timeline(
    contact_id: uuid.UUID,
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Timeline:
    entries = await service.timeline(session, contact_id, limit=limit)
    return Timeline(contact_id=contact_id, items=[TimelineEntryRead.model_validate(e) for e in entries])
