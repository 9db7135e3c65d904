import uuid
from typing import Annotated

from fastapi import Depends, Request, Response

from services.journeys.timeline import service
from services.journeys.timeline.repository import OLDEST_FIRST
from services.journeys.timeline.schemas import Timeline, TimelineEntryRead
from shared.pagination import PageRequest
from shared.web.auth import requires
from shared.web.deps import ReadSessionDep
from shared.web.pagination import link_next, page_request
from shared.web.problems import PROBLEM_RESPONSES
from shared.web.routing import api_router

router = api_router(prefix="/v1/contacts", tags=["timeline"])


@router.get(
    "/{contact_id}/timeline",
    summary="A contact's timeline",
    description="Every event about the contact from every service, oldest first. An unknown contact has "
    "an empty timeline (events may still be on their way). Cursor-paginated: follow `next_cursor`, or "
    'the `Link` header\'s `rel="next"` URL, until it is null.',
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("journeys:read")],
)
async def get_timeline(
    contact_id: uuid.UUID,
    session: ReadSessionDep,
    request: Request,
    response: Response,
    page: Annotated[PageRequest, Depends(page_request(OLDEST_FIRST))],
) -> Timeline:
    found = await service.timeline(session, contact_id, page)
    link_next(request, response, found.next_cursor)
    return Timeline(
        contact_id=contact_id,
        items=[TimelineEntryRead.model_validate(entry) for entry in found.items],
        next_cursor=found.next_cursor,
    )
