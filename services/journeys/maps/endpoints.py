"""Journey maps: define journeys and their stages, see each contact's current stage, read funnels."""

import uuid
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response, status
from pydantic import AwareDatetime

from services.journeys.maps import service
from services.journeys.maps.definitions import parse_stages
from services.journeys.maps.models import Journey
from services.journeys.maps.repository import OLDEST_FIRST
from services.journeys.maps.schemas import (
    ContactJourneys,
    Funnel,
    JourneyCreate,
    JourneyPatch,
    JourneyRead,
    StageRead,
)
from shared.pagination import PageRequest
from shared.web.auth import requires
from shared.web.deps import ReadSessionDep, SessionDep
from shared.web.etag import ETAG, IfMatchDep, IfNoneMatchHeader, not_modified
from shared.web.pagination import Page, page_request, paginated
from shared.web.problems import PROBLEM_RESPONSES, problem_doc
from shared.web.routing import api_router

router = api_router(prefix="/v1/journeys", tags=["journeys"])
contacts_router = api_router(prefix="/v1/contacts", tags=["journeys"])

_NO_JOURNEY: dict[int | str, dict[str, Any]] = {404: problem_doc("No journey with this key.")}


def read_model(journey: Journey) -> JourneyRead:
    return JourneyRead(
        id=journey.id,
        key=journey.key,
        name=journey.name,
        version=journey.version,
        stages=[
            StageRead(position=position, **stage.model_dump())
            for position, stage in enumerate(parse_stages(journey.stages), start=1)
        ],
        active_from=journey.active_from,
        created_at=journey.created_at,
        updated_at=journey.updated_at,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Define a journey",
    description="A journey is an ordered list of stages. A contact enters a stage when an event about "
    "them matches one of its `entry` rules: a touchpoint (`on: touchpoint`, with any of `type`, "
    "`channel`, `stage`, `team`, `campaign`, `content_id` and `where` for the event's other fields), the "
    "contact's creation (`on: contact_created`), or their lifecycle stage becoming `to` "
    "(`on: lifecycle_stage`). Contacts move forward only, and may skip stages. A stage's optional `goal` "
    "is its success: a contact who entered the stage reaches the goal by matching one of its `rules`, "
    "and the funnel compares the share who did with `target_rate`. The journey applies to events from "
    "its definition on (no backfill). Each entry is announced as `crm.journey.stage_entered` on "
    "`crm.journeys`.",
    responses={409: problem_doc("Key already used; `existing_id` names the journey."), **PROBLEM_RESPONSES},
    dependencies=[requires("journeys:write")],
)
async def create_journey(
    body: JourneyCreate, session: SessionDep, request: Request, response: Response
) -> JourneyRead:
    journey = await service.create_journey(session, body)
    response.headers["Location"] = str(request.url_for("get_journey", key=journey.key))
    response.headers[ETAG] = journey.etag
    return read_model(journey)


@router.get(
    "",
    summary="List journeys",
    description="Oldest first, each with its stages in order. Cursor-paginated.",
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("journeys:read")],
)
async def list_journeys(
    request: Request,
    response: Response,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(OLDEST_FIRST))],
) -> Page[JourneyRead]:
    found = await service.list_journeys(session, page)
    return paginated(request, response, found, read_model)


@router.get(
    "/{key}",
    summary="Get a journey",
    description="Its current version, with its `ETag`; with `If-None-Match` naming it, 304.",
    response_model=JourneyRead,
    responses={
        304: {"description": "Not modified: `If-None-Match` names the current `ETag`."},
        **_NO_JOURNEY,
        **PROBLEM_RESPONSES,
    },
    dependencies=[requires("journeys:read")],
)
async def get_journey(
    key: str, session: ReadSessionDep, response: Response, if_none_match: IfNoneMatchHeader = None
) -> JourneyRead | Response:
    journey = await service.get_journey(session, key)
    if unchanged := not_modified(if_none_match, journey.etag):
        return unchanged
    response.headers[ETAG] = journey.etag
    return read_model(journey)


@router.patch(
    "/{key}",
    summary="Change a journey",
    description="Rename it, and/or give its stages as they are to be: every current stage stays, in "
    "its order (history refers to them), new stages may be added anywhere, and names, rules and goals "
    "may change. A change is a new `version`, in force for events from now on; earlier events keep the "
    "stages they entered. Honours `If-Match` (412 with the current `ETag`).",
    responses={
        **_NO_JOURNEY,
        412: problem_doc("`If-Match` names an older version; the `ETag` header has the current one."),
        **PROBLEM_RESPONSES,
    },
    dependencies=[requires("journeys:write")],
)
async def update_journey(
    key: str, body: JourneyPatch, session: SessionDep, response: Response, if_match: IfMatchDep
) -> JourneyRead:
    journey = await service.update_journey(session, key, body, if_match=if_match)
    response.headers[ETAG] = journey.etag
    return read_model(journey)


@router.delete(
    "/{key}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a journey",
    description="With its versions, and every contact's stage and history on it. Events announced "
    "stay on the stream.",
    responses={**_NO_JOURNEY, **PROBLEM_RESPONSES},
    dependencies=[requires("journeys:write")],
)
async def delete_journey(key: str, session: SessionDep) -> Response:
    await service.delete_journey(session, key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{key}/funnel",
    summary="A journey's funnel",
    description="Per stage, over the contacts' stage entries from `since` (inclusive) to `until` "
    "(exclusive), both optional: `entered` (who entered this stage), `reached` (who entered it or a "
    "later one: a skipped stage counts as passed), `conversion_rate` to the next stage, `dropped_off` "
    "(reached this stage, not the next), `median_seconds_to_next`, and the goal's `goal_reached`, "
    "`goal_rate` and `target_rate`.",
    responses={**_NO_JOURNEY, **PROBLEM_RESPONSES},
    dependencies=[requires("journeys:read")],
)
async def get_funnel(
    key: str,
    session: ReadSessionDep,
    since: Annotated[AwareDatetime | None, Query(description="Entries at or after this time.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Entries before this time.")] = None,
) -> Funnel:
    return await service.journey_funnel(session, key, since, until)


@contacts_router.get(
    "/{contact_id}/journeys",
    summary="A contact's journeys",
    description="The contact's current stage in each journey they have entered, by journey key. An "
    "unknown contact has none (events may still be on their way).",
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("journeys:read")],
)
async def get_contact_journeys(contact_id: uuid.UUID, session: ReadSessionDep) -> ContactJourneys:
    return ContactJourneys(
        contact_id=contact_id, journeys=await service.contact_journeys(session, contact_id)
    )
