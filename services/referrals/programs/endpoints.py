"""`/v1/programs`: what affiliates earn, how conversions are credited, and how long money is held."""

import uuid
from typing import Annotated, Any

from fastapi import Depends, Request, Response, status

from services.referrals.programs import service
from services.referrals.programs.repository import OLDEST_FIRST
from services.referrals.programs.schemas import ProgramCreate, ProgramPatch, ProgramRead
from shared.pagination import PageRequest
from shared.web.auth import requires
from shared.web.deps import ReadSessionDep, SessionDep
from shared.web.etag import ETAG, IfMatchDep, IfNoneMatchHeader, not_modified
from shared.web.pagination import Page, page_request, paginated
from shared.web.problems import PROBLEM_RESPONSES, problem_doc
from shared.web.routing import api_router

router = api_router(prefix="/v1/programs", tags=["programs"])

_NO_PROGRAM: dict[int | str, dict[str, Any]] = {404: problem_doc("No such program.")}
_STALE: dict[int | str, dict[str, Any]] = {
    412: problem_doc("`If-Match` names an older version; the `ETag` header has the current one.")
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a program",
    description="A program sets what a conversion earns (`commission_rules`, one per goal: fixed "
    "amounts for CPL/CPA, a percentage for revenue share, tiers by volume, recurring months), its "
    "`referral_rewards` for customers who refer, the attribution model and window, and the hold period. "
    "Amounts are minor units of `currency`. A rule that does not hold together is a 422 naming it, "
    "e.g. `commission_rules.0`.",
    responses={409: problem_doc("The key is taken; `existing_id` names the program."), **PROBLEM_RESPONSES},
    dependencies=[requires("referrals:write")],
)
async def create_program(
    body: ProgramCreate, session: SessionDep, request: Request, response: Response
) -> ProgramRead:
    program = await service.create_program(session, body)
    response.headers["Location"] = str(request.url_for("get_program", program_id=program.id))
    response.headers[ETAG] = program.etag
    return ProgramRead.model_validate(program)


@router.get(
    "",
    summary="List programs",
    description="Oldest first. Cursor-paginated: follow `next_cursor`, or the `Link` header's "
    '`rel="next"` URL, until it is null.',
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("referrals:read")],
)
async def list_programs(
    request: Request,
    response: Response,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(OLDEST_FIRST))],
) -> Page[ProgramRead]:
    found = await service.list_programs(session, page)
    return paginated(request, response, found, ProgramRead.model_validate)


@router.get(
    "/{program_id}",
    summary="Get a program",
    description="Answers with the program's `ETag`; with `If-None-Match` naming it, 304 and no body.",
    response_model=ProgramRead,
    responses={304: {"description": "Not modified."}, **_NO_PROGRAM, **PROBLEM_RESPONSES},
    dependencies=[requires("referrals:read")],
)
async def get_program(
    program_id: uuid.UUID,
    session: ReadSessionDep,
    response: Response,
    if_none_match: IfNoneMatchHeader = None,
) -> ProgramRead | Response:
    program = await service.get_program(session, program_id)
    if unchanged := not_modified(if_none_match, program.etag):
        return unchanged
    response.headers[ETAG] = program.etag
    return ProgramRead.model_validate(program)


@router.patch(
    "/{program_id}",
    summary="Update a program",
    description="A JSON merge patch of the fields given (`key` and `currency` stay as created: "
    "commissions already computed are in it). With `If-Match`, applied only if the program is still at "
    "that `ETag` (else 412 with the current one). New rules apply to conversions recorded from then on.",
    responses={**_NO_PROGRAM, **_STALE, **PROBLEM_RESPONSES},
    dependencies=[requires("referrals:write")],
)
async def update_program(
    program_id: uuid.UUID, body: ProgramPatch, session: SessionDep, response: Response, if_match: IfMatchDep
) -> ProgramRead:
    program = await service.update_program(session, program_id, body.given(), if_match=if_match)
    response.headers[ETAG] = program.etag
    return ProgramRead.model_validate(program)


@router.post(
    "/{program_id}/archive",
    summary="Archive a program",
    description="For good: its links keep redirecting and recording clicks (printed links live on), and "
    "its conversions earn nothing new. Archiving an archived program changes nothing. `If-Match` as "
    "for PATCH.",
    responses={**_NO_PROGRAM, **_STALE, **PROBLEM_RESPONSES},
    dependencies=[requires("referrals:write")],
)
async def archive_program(
    program_id: uuid.UUID, session: SessionDep, response: Response, if_match: IfMatchDep
) -> ProgramRead:
    program = await service.archive_program(session, program_id, if_match=if_match)
    response.headers[ETAG] = program.etag
    return ProgramRead.model_validate(program)
