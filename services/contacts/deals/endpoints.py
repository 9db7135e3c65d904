"""Deals: created in a pipeline, moved through its stages with a history, associated with contacts and
companies; every change is announced on `crm.deals`."""

import uuid
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response, status
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.deals import service
from services.contacts.deals.models import Deal
from services.contacts.deals.repository import IN_ORDER, NEWEST_FIRST, DealFilter
from services.contacts.deals.schemas import DealCreate, DealPatch, DealRead, StageChangeRead, StageMove
from services.contacts.search.schemas import SearchRequest
from shared.auth.principal import Principal
from shared.batch import BatchRequest, BatchResult
from shared.pagination import PageRequest
from shared.web.auth import requires
from shared.web.deps import ReadSessionDep, SessionDep
from shared.web.etag import ETAG, IfMatchDep, IfNoneMatchHeader, not_modified
from shared.web.pagination import Page, page_request, paginated
from shared.web.problems import PROBLEM_RESPONSES, problem_doc
from shared.web.routing import api_router

router = api_router(prefix="/v1/deals", tags=["deals"])

Writer = Annotated[Principal, requires("contacts:write")]

_NO_DEAL: dict[int | str, dict[str, Any]] = {404: problem_doc("No such deal.")}
_STALE: dict[int | str, dict[str, Any]] = {
    412: problem_doc("`If-Match` names an older version; the `ETag` header has the current one.")
}


def _read(found: service.DealView) -> DealRead:
    deal = found.deal
    return DealRead(
        id=deal.id,
        name=deal.name,
        pipeline_id=deal.pipeline_id,
        stage=deal.stage,
        amount=deal.amount,
        currency=deal.currency,
        owner=deal.owner,
        expected_close_date=deal.expected_close_date,
        external_id=deal.external_id,
        properties=deal.properties,
        closed_at=deal.closed_at,
        close_reason=deal.close_reason,
        contact_ids=found.contact_ids,
        company_ids=found.company_ids,
        created_at=deal.created_at,
        updated_at=deal.updated_at,
    )


async def _answer(session: AsyncSession, deal: Deal, response: Response) -> DealRead:
    response.headers[ETAG] = deal.etag
    return _read(await service.view(session, deal))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a deal",
    description="Creates a deal in an open stage of its pipeline (the default `sales` pipeline and its "
    "first stage unless named) and announces it as `crm.deal.created` on `crm.deals`. `amount` is in "
    "minor units and needs `currency`.",
    responses={
        409: problem_doc("`external_id` already used; `existing_id` names the deal."),
        **PROBLEM_RESPONSES,
    },
)
async def create_deal(
    body: DealCreate, session: SessionDep, principal: Writer, request: Request, response: Response
) -> DealRead:
    deal = await service.create_deal(session, body, actor=principal.key_id)
    response.headers["Location"] = str(request.url_for("get_deal", deal_id=deal.id))
    return await _answer(session, deal, response)


@router.get(
    "",
    summary="List deals",
    description="Newest first, optionally only those of one pipeline, in one stage (by key) or of one "
    "owner. Cursor-paginated: follow `next_cursor`, or the `Link` header, until it is null.",
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("contacts:read")],
)
async def list_deals(
    request: Request,
    response: Response,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(NEWEST_FIRST))],
    pipeline_id: Annotated[uuid.UUID | None, Query(description="Only deals of this pipeline.")] = None,
    stage: Annotated[
        str | None, Query(max_length=64, description="Only deals in the stage with this key.")
    ] = None,
    owner: Annotated[str | None, Query(max_length=100, description="Only deals of this owner.")] = None,
) -> Page[DealRead]:
    found = await service.list_deals(session, DealFilter(pipeline_id, stage, owner), page)
    return paginated(request, response, found, _read)


class DealSearchPage(Page[DealRead]):
    total: int | None = Field(None, description="Every match, counted when `with_total` is true.")


@router.post(
    "/search",
    summary="Search deals",
    description="The filter language of `POST /v1/contacts/search` over a deal's fields: `name`, "
    "`pipeline_id`, `stage`, `amount`, `currency`, `owner`, `expected_close_date`, `external_id`, "
    "`close_reason`, `closed_at`, `created_at`, `updated_at`, the ids of its contacts and companies "
    "(`contact_ids`, `company_ids`: `contains`, `in`, `exists`), and custom properties as "
    "`properties.<key>`. Ids take `eq`, `neq`, `in`, `not_in` and `exists`. Sorted by one field (ties "
    "by id; records without the value last), newest first by default; `cursor` walks the whole set. A "
    "field or value the language does not take is a 422 naming its place, e.g. `filter.and.1.value`. "
    "Needs only `contacts:read`, and is not subject to `Idempotency-Key`.",
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("contacts:read")],
    openapi_extra={
        "x-idempotency": False,
        "requestBody": {
            "content": {
                "application/json": {
                    "example": {
                        "filter": {
                            "and": [
                                {"field": "stage", "op": "in", "value": ["proposal", "negotiation"]},
                                {"field": "amount", "op": "gte", "value": 1_000_000},
                                {"field": "properties.forecast_category", "op": "eq", "value": "commit"},
                            ]
                        },
                        "sort": {"field": "expected_close_date", "direction": "asc"},
                        "limit": 50,
                        "with_total": True,
                    }
                }
            }
        },
    },
)
async def search_deals(body: SearchRequest, session: ReadSessionDep) -> DealSearchPage:
    found = await service.search_deals(session, body)
    return DealSearchPage(
        items=[_read(view) for view in found.page.items],
        next_cursor=found.page.next_cursor,
        total=found.total,
    )


@router.post(
    "/batch/upsert",
    summary="Create or update deals in bulk",
    description="Up to 1000 records, each matched to a deal by `external_id` (required, so that a "
    "batch sent again updates rather than duplicates): a new one creates a deal (`name` required, in "
    "an open stage), a known one is updated with the fields the record gives (`properties` key by key), "
    "and a `stage` other than the deal's moves it (with `reason` into won or lost). One result per "
    "record, in order: `created`, `updated`, `unchanged` or `error` with the field to blame "
    "(`properties.<key>` for a custom property); a bad record writes nothing and fails alone, and the "
    "answer is still 200. Events as for single writes.",
    responses=PROBLEM_RESPONSES,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "example": {
                        "records": [
                            {
                                "external_id": "shop-8812",
                                "name": "Acme: 250 seats",
                                "amount": 1500000,
                                "currency": "EUR",
                                "properties": {"forecast_category": "commit"},
                            },
                            {"external_id": "shop-8790", "stage": "won", "reason": "price"},
                        ]
                    }
                }
            }
        }
    },
)
async def upsert_deals(body: BatchRequest, session: SessionDep, principal: Writer) -> BatchResult:
    return await service.upsert_deals(session, body.records, actor=principal.key_id)


@router.get(
    "/{deal_id}",
    summary="Get a deal",
    description="With its contact and company ids, and its `ETag`; with `If-None-Match` naming it, 304 "
    "and no body. Associations are part of the deal: adding one makes a new `ETag`.",
    response_model=DealRead,
    responses={
        304: {"description": "Not modified: `If-None-Match` names the current `ETag`."},
        **_NO_DEAL,
        **PROBLEM_RESPONSES,
    },
    dependencies=[requires("contacts:read")],
)
async def get_deal(
    deal_id: uuid.UUID,
    session: ReadSessionDep,
    response: Response,
    if_none_match: IfNoneMatchHeader = None,
) -> DealRead | Response:
    deal = await service.get_deal(session, deal_id)
    if unchanged := not_modified(if_none_match, deal.etag):
        return unchanged
    return await _answer(session, deal, response)


@router.patch(
    "/{deal_id}",
    summary="Update a deal",
    description="A JSON merge patch (RFC 7396) of `name`, `amount`, `currency`, `owner`, "
    "`expected_close_date`, `external_id`; `null` clears one (`name` cannot be cleared). The stage "
    "moves through `POST /v1/deals/{id}/stage`. With `If-Match`, applied only if the deal is still at "
    "that `ETag`. Changes are announced as `crm.deal.updated`; a patch that changes nothing announces "
    "nothing.",
    responses={
        **_NO_DEAL,
        409: problem_doc("The new `external_id` is another deal's; `existing_id` names it."),
        **_STALE,
        **PROBLEM_RESPONSES,
    },
    dependencies=[requires("contacts:write")],
)
async def update_deal(
    deal_id: uuid.UUID, body: DealPatch, session: SessionDep, response: Response, if_match: IfMatchDep
) -> DealRead:
    deal = await service.update_deal(session, deal_id, body, if_match=if_match)
    return await _answer(session, deal, response)


@router.delete(
    "/{deal_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a deal",
    description="For good, with its stage history, associations and custom property values. Announced "
    "as `crm.deal.deleted`, carrying the deal as it stood, so that a consumer can take it out of what "
    "it counted. With `If-Match`, only if the deal is still at that `ETag`. Deleting it again is a 404.",
    responses={**_NO_DEAL, **_STALE, **PROBLEM_RESPONSES},
    dependencies=[requires("contacts:write")],
)
async def delete_deal(deal_id: uuid.UUID, session: SessionDep, if_match: IfMatchDep) -> None:
    await service.delete_deal(session, deal_id, if_match=if_match)


@router.post(
    "/{deal_id}/stage",
    summary="Move a deal to another stage",
    description="To another stage of its pipeline. Into a won or lost stage `reason` is required (a "
    "short code such as `price` or `competitor`) and the deal is closed; `note` is free text kept in "
    "the history only. Recorded in the history (`GET /v1/deals/{id}/stages`) with the API key that "
    "made the move, and announced as `crm.deal.stage_changed`, then `crm.deal.won` or `crm.deal.lost` "
    "when it closes. A move to the stage the deal is in changes nothing. Honours `If-Match`.",
    responses={**_NO_DEAL, **_STALE, **PROBLEM_RESPONSES},
)
async def move_deal(
    deal_id: uuid.UUID,
    body: StageMove,
    session: SessionDep,
    principal: Writer,
    response: Response,
    if_match: IfMatchDep,
) -> DealRead:
    deal = await service.move_stage(session, deal_id, body, actor=principal.key_id, if_match=if_match)
    return await _answer(session, deal, response)


@router.get(
    "/{deal_id}/stages",
    summary="A deal's stage history",
    description="Every stage the deal was put in, oldest first, beginning with the one it was created "
    "in: when, by which API key, from and to which stage, and why. Cursor-paginated.",
    responses={**_NO_DEAL, **PROBLEM_RESPONSES},
    dependencies=[requires("contacts:read")],
)
async def deal_stage_history(
    deal_id: uuid.UUID,
    request: Request,
    response: Response,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(IN_ORDER))],
) -> Page[StageChangeRead]:
    found = await service.stage_history(session, deal_id, page)
    return paginated(request, response, found, StageChangeRead.model_validate)


_NO_DEAL_OR_CONTACT: dict[int | str, dict[str, Any]] = {
    404: problem_doc("No such deal, or no such contact; `title` says which.")
}
_NO_DEAL_OR_COMPANY: dict[int | str, dict[str, Any]] = {
    404: problem_doc("No such deal, or no such company; `title` says which.")
}


@router.put(
    "/{deal_id}/contacts/{contact_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Associate a contact with a deal",
    description="Idempotent. The deal's `contact_ids` lists it, and the deal's `ETag` changes. Announced "
    "once, as `crm.deal.contact_added`; from then on every deal event names the contact in `contact_ids`.",
    responses={**_NO_DEAL_OR_CONTACT, **PROBLEM_RESPONSES},
    dependencies=[requires("contacts:write")],
)
async def add_deal_contact(deal_id: uuid.UUID, contact_id: uuid.UUID, session: SessionDep) -> None:
    await service.add_contact(session, deal_id, contact_id)


@router.delete(
    "/{deal_id}/contacts/{contact_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a contact from a deal",
    description="Idempotent: removing an association that is not there changes nothing. A removal is "
    "announced as `crm.deal.contact_removed`.",
    responses={**_NO_DEAL_OR_CONTACT, **PROBLEM_RESPONSES},
    dependencies=[requires("contacts:write")],
)
async def remove_deal_contact(deal_id: uuid.UUID, contact_id: uuid.UUID, session: SessionDep) -> None:
    await service.remove_contact(session, deal_id, contact_id)


@router.put(
    "/{deal_id}/companies/{company_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Associate a company with a deal",
    description="Idempotent. The deal's `company_ids` lists it, and the deal's `ETag` changes.",
    responses={**_NO_DEAL_OR_COMPANY, **PROBLEM_RESPONSES},
    dependencies=[requires("contacts:write")],
)
async def add_deal_company(deal_id: uuid.UUID, company_id: uuid.UUID, session: SessionDep) -> None:
    await service.add_company(session, deal_id, company_id)


@router.delete(
    "/{deal_id}/companies/{company_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a company from a deal",
    description="Idempotent: removing an association that is not there changes nothing.",
    responses={**_NO_DEAL_OR_COMPANY, **PROBLEM_RESPONSES},
    dependencies=[requires("contacts:write")],
)
async def remove_deal_company(deal_id: uuid.UUID, company_id: uuid.UUID, session: SessionDep) -> None:
    await service.remove_company(session, deal_id, company_id)
