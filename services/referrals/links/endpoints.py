"""`/v1/links`: tracking links, each a code that `/r/{code}` redirects to a destination."""

import uuid
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response, status

from services.referrals.clicks.path import click_path
from services.referrals.links import service
from services.referrals.links.models import Link
from services.referrals.links.repository import OLDEST_FIRST
from services.referrals.links.schemas import LinkCreate, LinkPatch, LinkRead
from shared.pagination import PageRequest
from shared.web.auth import requires
from shared.web.deps import ReadSessionDep, RuntimeDep, SessionDep
from shared.web.etag import ETAG, IfMatchDep, IfNoneMatchHeader, not_modified
from shared.web.pagination import Page, page_request, paginated
from shared.web.problems import PROBLEM_RESPONSES, problem_doc
from shared.web.routing import api_router

router = api_router(prefix="/v1/links", tags=["links"])

_NO_LINK: dict[int | str, dict[str, Any]] = {404: problem_doc("No such link.")}
_STALE: dict[int | str, dict[str, Any]] = {
    412: problem_doc("`If-Match` names an older version; the `ETag` header has the current one.")
}


def _read(request: Request, link: Link) -> LinkRead:
    values = {name: getattr(link, name) for name in LinkRead.model_fields if name != "tracking_url"}
    return LinkRead(tracking_url=str(request.url_for("follow_link", code=link.code)), **values)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a link",
    description="A code (given, or made: 8 URL-safe characters) for one affiliate in one active "
    "program, with a destination (an absolute http(s) URL; its own query is kept) and UTM parameters "
    "that `/r/{code}` adds to it. `tracking_url` is the link to share.",
    responses={409: problem_doc("The code is taken; `existing_id` names the link."), **PROBLEM_RESPONSES},
    dependencies=[requires("referrals:write")],
)
async def create_link(
    body: LinkCreate, session: SessionDep, runtime: RuntimeDep, request: Request, response: Response
) -> LinkRead:
    link = await service.create_link(session, body)
    # A redirect that found no link with this code just before remembers that for a moment.
    click_path(runtime).cache.forget(link.code)
    response.headers["Location"] = str(request.url_for("get_link", link_id=link.id))
    response.headers[ETAG] = link.etag
    return _read(request, link)


@router.get(
    "",
    summary="List links",
    description="Oldest first, cursor-paginated; optionally of one program and/or one affiliate.",
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("referrals:read")],
)
async def list_links(
    request: Request,
    response: Response,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(OLDEST_FIRST))],
    program_id: Annotated[uuid.UUID | None, Query(description="Only this program's links.")] = None,
    affiliate_id: Annotated[uuid.UUID | None, Query(description="Only this affiliate's links.")] = None,
) -> Page[LinkRead]:
    found = await service.list_links(session, page, program_id=program_id, affiliate_id=affiliate_id)
    return paginated(request, response, found, lambda link: _read(request, link))


@router.get(
    "/{link_id}",
    summary="Get a link",
    description="Answers with the link's `ETag`; with `If-None-Match` naming it, 304 and no body.",
    response_model=LinkRead,
    responses={304: {"description": "Not modified."}, **_NO_LINK, **PROBLEM_RESPONSES},
    dependencies=[requires("referrals:read")],
)
async def get_link(
    link_id: uuid.UUID,
    session: ReadSessionDep,
    request: Request,
    response: Response,
    if_none_match: IfNoneMatchHeader = None,
) -> LinkRead | Response:
    link = await service.get_link(session, link_id)
    if unchanged := not_modified(if_none_match, link.etag):
        return unchanged
    response.headers[ETAG] = link.etag
    return _read(request, link)


@router.patch(
    "/{link_id}",
    summary="Update a link",
    description="A JSON merge patch of `destination_url` and the UTM parameters (`null` clears one); the "
    "code, program and affiliate stay as created. With `If-Match`, applied only if the link is still at "
    "that `ETag` (else 412). The redirect follows the change at once on this replica and within "
    "`CRM_REFERRALS_CLICK_LINK_CACHE_SECONDS` (10 s) on the others.",
    responses={**_NO_LINK, **_STALE, **PROBLEM_RESPONSES},
    dependencies=[requires("referrals:write")],
)
async def update_link(
    link_id: uuid.UUID,
    body: LinkPatch,
    session: SessionDep,
    runtime: RuntimeDep,
    request: Request,
    response: Response,
    if_match: IfMatchDep,
) -> LinkRead:
    link = await service.update_link(session, link_id, body.given(), if_match=if_match)
    click_path(runtime).cache.forget(link.code)
    response.headers[ETAG] = link.etag
    return _read(request, link)


@router.post(
    "/{link_id}/archive",
    summary="Archive a link",
    description="It still redirects and records clicks (printed links live for ever) and credits nothing "
    "new. Archiving an archived link changes nothing. `If-Match` as for PATCH.",
    responses={**_NO_LINK, **_STALE, **PROBLEM_RESPONSES},
    dependencies=[requires("referrals:write")],
)
async def archive_link(
    link_id: uuid.UUID,
    session: SessionDep,
    request: Request,
    response: Response,
    if_match: IfMatchDep,
) -> LinkRead:
    link = await service.archive_link(session, link_id, if_match=if_match)
    response.headers[ETAG] = link.etag
    return _read(request, link)
