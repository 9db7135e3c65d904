import uuid
from typing import Annotated

from fastapi import Depends, Query, Request, Response
from pydantic import AwareDatetime, StringConstraints

from services.journeys.timeline import service
from services.journeys.timeline.handlers import TIMELINE_CONSUMER
from services.journeys.timeline.repository import OLDEST_FIRST, TimelineFilter
from services.journeys.timeline.schemas import Timeline, TimelineEntryRead
from services.journeys.touchpoints.schemas import Channel, Team
from shared.pagination import PageRequest
from shared.web.auth import requires
from shared.web.deps import ReadSessionDep
from shared.web.pagination import link_next, page_request
from shared.web.problems import PROBLEM_RESPONSES, FieldProblem, ProblemError
from shared.web.routing import api_router

router = api_router(prefix="/v1/contacts", tags=["timeline"])

EntryType = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def timeline_filter(
    team: Annotated[
        list[Team] | None,
        Query(description="Only entries of these teams (repeat for several). Entries without a team go."),
    ] = None,
    channel: Annotated[
        list[Channel] | None,
        Query(description="Only touchpoints on these channels (repeat for several); other entries go."),
    ] = None,
    type_: Annotated[
        list[EntryType] | None,
        Query(
            alias="type",
            description="Only entries of these types (repeat for several): a touchpoint's own type "
            "(`page_view`) or an event type (`crm.contact.created`; `crm.touchpoint.recorded` for every "
            "touchpoint).",
        ),
    ] = None,
    since: Annotated[
        AwareDatetime | None,
        Query(description="Only entries that occurred at or after this time (ISO 8601 with a zone)."),
    ] = None,
    until: Annotated[
        AwareDatetime | None,
        Query(description="Only entries that occurred before this time (ISO 8601 with a zone)."),
    ] = None,
) -> TimelineFilter:
    if since is not None and until is not None and since > until:
        detail = "until must not be before since."
        raise ProblemError(
            422,
            "Invalid time range",
            slug="validation",
            detail=detail,
            errors=[FieldProblem(field="until", location="query", message=detail, code="range_invalid")],
        )
    return TimelineFilter(
        teams=tuple(dict.fromkeys(team or ())),
        channels=tuple(dict.fromkeys(channel or ())),
        types=tuple(dict.fromkeys(type_ or ())),
        since=since,
        until=until,
    )


@router.get(
    "/{contact_id}/timeline",
    summary="A contact's timeline",
    description="Every event about the contact from every service, oldest first (by when it occurred). "
    "An unknown contact has an empty timeline (events may still be on their way). A deal's stage "
    "changes are on the timeline of each contact associated with the deal when it moved (`type` "
    "`crm.deal.stage_changed`, team `sales`).\n\n"
    "**Filters**: `team`, `channel` and `type` may each be repeated (`channel=web&channel=email`) and "
    "keep entries matching any of their values; `since` (inclusive) and `until` (exclusive) bound when "
    "entries occurred. Different filters combine: an entry must pass every one given. `until` before "
    "`since` is a 400.\n\n"
    '**Pages**: cursor-paginated: follow `next_cursor`, or the `Link` header\'s `rel="next"` URL '
    "(it keeps the filters), until it is null. A cursor is a position in the timeline's order, not a "
    "query: sent with other filters it resumes after that position under those filters.\n\n"
    "**Completeness**: `complete_before_by_topic` says, per topic the timeline is built from, the "
    "instant before which every event the stream accepted is on this timeline (null while unknown); "
    "`complete_before` is the earliest of them. It stops advancing while the timeline's consumer is "
    "stopped or behind, so an answer never claims a history whole up to a moment it has not reached.",
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("journeys:read")],
)
async def get_timeline(
    contact_id: uuid.UUID,
    session: ReadSessionDep,
    request: Request,
    response: Response,
    found: Annotated[TimelineFilter, Depends(timeline_filter)],
    page: Annotated[PageRequest, Depends(page_request(OLDEST_FIRST))],
) -> Timeline:
    # Before the entries: what it claims was committed before they are read.
    completeness = await service.completeness(session, TIMELINE_CONSUMER)
    entries = await service.timeline(session, contact_id, found, page)
    link_next(request, response, entries.next_cursor)
    known = [instant for instant in completeness.values() if instant is not None]
    return Timeline(
        contact_id=contact_id,
        items=[TimelineEntryRead.model_validate(entry) for entry in entries.items],
        next_cursor=entries.next_cursor,
        complete_before=min(known) if known and len(known) == len(completeness) else None,
        complete_before_by_topic=completeness,
    )
