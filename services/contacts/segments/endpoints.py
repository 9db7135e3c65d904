import uuid
from typing import Annotated

from fastapi import Depends, Request, Response, status

from services.contacts.contacts.endpoints import ContactSearchPage, read_model
from services.contacts.segments import service
from services.contacts.segments.schemas import SegmentCreate, SegmentPatch, SegmentRead
from shared.pagination import PageRequest
from shared.web.auth import requires
from shared.web.deps import ReadSessionDep, SessionDep
from shared.web.pagination import DEFAULT_LIMIT, Page, PageCursor, PageLimit, page_request, paginated
from shared.web.problems import PROBLEM_RESPONSES, problem_doc
from shared.web.routing import api_router

router = api_router(prefix="/v1/segments", tags=["segments"])
_NOT_FOUND = {404: problem_doc("No such segment."), **PROBLEM_RESPONSES}


def _read(counted: service.CountedSegment) -> SegmentRead:
    segment = counted.segment
    return SegmentRead.model_validate(
        {
            "id": segment.id,
            "name": segment.name,
            "filter": segment.filter,
            "count": counted.count,
            "counted_at": counted.counted_at,
            "created_at": segment.created_at,
            "updated_at": segment.updated_at,
        }
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Save a segment",
    description="A named contact filter (the language of `POST /v1/contacts/search`). Its members and "
    "`count` are whoever matches when it is read, so they follow every change to the contacts. A filter "
    "the language does not take is a 422 naming its place.",
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("contacts:write")],
)
async def create_segment(
    body: SegmentCreate, session: SessionDep, request: Request, response: Response
) -> SegmentRead:
    counted = await service.create_segment(session, body)
    response.headers["Location"] = str(request.url_for("get_segment", segment_id=counted.segment.id))
    return _read(counted)


@router.get(
    "",
    summary="List segments",
    description="By name, each with its live count. Cursor-paginated.",
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("contacts:read")],
)
async def list_segments(
    request: Request,
    response: Response,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(service.BY_NAME))],
) -> Page[SegmentRead]:
    return paginated(request, response, await service.list_segments(session, page), _read)


@router.get(
    "/{segment_id}",
    summary="Get a segment with its live count",
    responses=_NOT_FOUND,
    dependencies=[requires("contacts:read")],
)
async def get_segment(segment_id: uuid.UUID, session: ReadSessionDep) -> SegmentRead:
    return _read(await service.get_segment(session, segment_id))


@router.patch(
    "/{segment_id}",
    summary="Rename a segment or change its filter",
    responses=_NOT_FOUND,
    dependencies=[requires("contacts:write")],
)
async def update_segment(segment_id: uuid.UUID, body: SegmentPatch, session: SessionDep) -> SegmentRead:
    return _read(await service.update_segment(session, segment_id, body))


@router.delete(
    "/{segment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a segment",
    description="The contacts stay; only the saved filter goes.",
    responses=_NOT_FOUND,
    dependencies=[requires("contacts:write")],
)
async def delete_segment(segment_id: uuid.UUID, session: SessionDep) -> None:
    await service.delete_segment(session, segment_id)


@router.get(
    "/{segment_id}/contacts",
    summary="Contacts in a segment",
    description="Whoever matches the segment's filter now, newest first. Cursor-paginated; `total` is "
    "the live count.",
    responses=_NOT_FOUND,
    dependencies=[requires("contacts:read")],
)
async def segment_members(
    segment_id: uuid.UUID,
    session: ReadSessionDep,
    limit: PageLimit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> ContactSearchPage:
    found = await service.members(session, segment_id, limit, cursor)
    return ContactSearchPage(
        items=[read_model(details) for details in found.page.items],
        next_cursor=found.page.next_cursor,
        total=found.total,
    )
