"""`/v1/affiliates`: partners and customers who refer, and the API keys that let them see their own data."""

import uuid
from typing import Annotated, Any

from fastapi import Depends, Request, Response, status

from services.referrals.affiliates import service
from services.referrals.affiliates.repository import OLDEST_FIRST
from services.referrals.affiliates.schemas import (
    AffiliateCreate,
    AffiliateKeyCreate,
    AffiliatePatch,
    AffiliateRead,
)
from shared.pagination import PageRequest
from shared.web.auth import requires
from shared.web.deps import ReadSessionDep, SessionDep
from shared.web.etag import ETAG, IfMatchDep, IfNoneMatchHeader, not_modified
from shared.web.keys import KeyCreated, KeyRead
from shared.web.pagination import Page, page_request, paginated
from shared.web.problems import PROBLEM_RESPONSES, problem_doc
from shared.web.routing import api_router

router = api_router(prefix="/v1/affiliates", tags=["affiliates"])

_NO_AFFILIATE: dict[int | str, dict[str, Any]] = {404: problem_doc("No such affiliate.")}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an affiliate",
    description="A partner, or a customer who refers (`kind: customer`, usually with its `contact_id`). "
    "The email is kept with its keyed hash, which conversions are compared with to catch self-referrals.",
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("referrals:write")],
)
async def create_affiliate(
    body: AffiliateCreate, session: SessionDep, request: Request, response: Response
) -> AffiliateRead:
    affiliate = await service.create_affiliate(session, body)
    response.headers["Location"] = str(request.url_for("get_affiliate", affiliate_id=affiliate.id))
    response.headers[ETAG] = affiliate.etag
    return AffiliateRead.model_validate(affiliate)


@router.get(
    "",
    summary="List affiliates",
    description="Oldest first, cursor-paginated.",
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("referrals:read")],
)
async def list_affiliates(
    request: Request,
    response: Response,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(OLDEST_FIRST))],
) -> Page[AffiliateRead]:
    found = await service.list_affiliates(session, page)
    return paginated(request, response, found, AffiliateRead.model_validate)


@router.get(
    "/{affiliate_id}",
    summary="Get an affiliate",
    description="Answers with the affiliate's `ETag`; with `If-None-Match` naming it, 304 and no body.",
    response_model=AffiliateRead,
    responses={304: {"description": "Not modified."}, **_NO_AFFILIATE, **PROBLEM_RESPONSES},
    dependencies=[requires("referrals:read")],
)
async def get_affiliate(
    affiliate_id: uuid.UUID,
    session: ReadSessionDep,
    response: Response,
    if_none_match: IfNoneMatchHeader = None,
) -> AffiliateRead | Response:
    affiliate = await service.get_affiliate(session, affiliate_id)
    if unchanged := not_modified(if_none_match, affiliate.etag):
        return unchanged
    response.headers[ETAG] = affiliate.etag
    return AffiliateRead.model_validate(affiliate)


@router.patch(
    "/{affiliate_id}",
    summary="Update an affiliate",
    description="A JSON merge patch of the fields given; `status: suspended` stops crediting it (its "
    "links still redirect and record clicks). With `If-Match`, applied only if the affiliate is still at "
    "that `ETag` (else 412 with the current one).",
    responses={
        **_NO_AFFILIATE,
        412: problem_doc("`If-Match` names an older version; the `ETag` header has the current one."),
        **PROBLEM_RESPONSES,
    },
    dependencies=[requires("referrals:write")],
)
async def update_affiliate(
    affiliate_id: uuid.UUID,
    body: AffiliatePatch,
    session: SessionDep,
    response: Response,
    if_match: IfMatchDep,
) -> AffiliateRead:
    affiliate = await service.update_affiliate(session, affiliate_id, body.given(), if_match=if_match)
    response.headers[ETAG] = affiliate.etag
    return AffiliateRead.model_validate(affiliate)


@router.post(
    "/{affiliate_id}/keys",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key for an affiliate",
    description="A key bound to the affiliate: it sees only the affiliate's own data (`/v1/me/...`) and "
    "may post conversions; every staff route refuses it. Its scopes are a subset of `referrals:read` and "
    "`referrals:postback` (both by default). Answers with the key itself, once; it is announced on "
    "`crm.access` (as a hash) like every key, so every service accepts it within a second. Revoke it "
    "with `DELETE /v1/keys/{key_id}`. Not subject to `Idempotency-Key`: keeping the answer would keep "
    "the key.",
    responses={**_NO_AFFILIATE, **PROBLEM_RESPONSES},
    openapi_extra={"x-idempotency": False},
    dependencies=[requires("referrals:write")],
)
async def create_affiliate_key(
    affiliate_id: uuid.UUID, body: AffiliateKeyCreate, session: SessionDep
) -> KeyCreated:
    created = await service.create_key(
        session, affiliate_id, scopes=body.scopes, name=body.name, expires_at=body.expires_at
    )
    return KeyCreated(**KeyRead.model_validate(created.key).model_dump(), key=created.token)
