"""Companies (B2B accounts) and their contacts; every change is announced on `crm.contacts`."""

import uuid
from typing import Annotated, Any

from fastapi import Depends, Request, Response, status
from pydantic import Field

from services.contacts.companies import service
from services.contacts.companies.repository import ASSOCIATED_FIRST, NEWEST_FIRST
from services.contacts.companies.schemas import (
    CompanyContactRead,
    CompanyCreate,
    CompanyPatch,
    CompanyRead,
)
from services.contacts.search.schemas import SearchRequest
from shared.batch import BatchRequest, BatchResult
from shared.pagination import PageRequest
from shared.web.auth import requires
from shared.web.deps import ReadSessionDep, SessionDep
from shared.web.etag import ETAG, IfMatchDep, IfNoneMatchHeader, not_modified
from shared.web.pagination import Page, page_request, paginated
from shared.web.problems import PROBLEM_RESPONSES, problem_doc
from shared.web.routing import api_router

router = api_router(prefix="/v1/companies", tags=["companies"])

_NO_COMPANY: dict[int | str, dict[str, Any]] = {404: problem_doc("No such company.")}
_NO_COMPANY_OR_CONTACT: dict[int | str, dict[str, Any]] = {
    404: problem_doc("No such company, or no such contact; `title` says which.")
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a company",
    description="Creates a company (a B2B account) and announces it as `crm.company.created` on "
    "`crm.contacts`. `domain` is stored as the host alone, lower-cased, without `www.`; "
    "`annual_revenue` is in minor units and needs `currency`.",
    responses={
        409: problem_doc("Domain already used; `existing_id` names the company."),
        **PROBLEM_RESPONSES,
    },
    dependencies=[requires("contacts:write")],
)
async def create_company(
    body: CompanyCreate, session: SessionDep, request: Request, response: Response
) -> CompanyRead:
    company = await service.create_company(session, body)
    response.headers["Location"] = str(request.url_for("get_company", company_id=company.id))
    response.headers[ETAG] = company.etag
    return CompanyRead.model_validate(company)


@router.get(
    "",
    summary="List companies",
    description="Newest first. Cursor-paginated: follow `next_cursor`, or the `Link` header's "
    '`rel="next"` URL, until it is null.',
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("contacts:read")],
)
async def list_companies(
    request: Request,
    response: Response,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(NEWEST_FIRST))],
) -> Page[CompanyRead]:
    found = await service.list_companies(session, page)
    return paginated(request, response, found, CompanyRead.model_validate)


class CompanySearchPage(Page[CompanyRead]):
    total: int | None = Field(None, description="Every match, counted when `with_total` is true.")


@router.post(
    "/search",
    summary="Search companies",
    description="The filter language of `POST /v1/contacts/search` over a company's fields: `name`, "
    "`domain`, `industry`, `employee_count`, `annual_revenue`, `currency`, `country`, `region`, `owner`, "
    "`phone`, `created_at`, `updated_at`, the ids of its contacts and deals (`contact_ids`, `deal_ids`: "
    "`contains`, `in`, `exists`), and custom properties as `properties.<key>`. Sorted by one field (ties "
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
                                {"field": "country", "op": "in", "value": ["DE", "AT", "CH"]},
                                {"field": "employee_count", "op": "gte", "value": 200},
                                {"field": "properties.tier", "op": "eq", "value": "gold"},
                            ]
                        },
                        "sort": {"field": "annual_revenue", "direction": "desc"},
                        "limit": 50,
                        "with_total": True,
                    }
                }
            }
        },
    },
)
async def search_companies(body: SearchRequest, session: ReadSessionDep) -> CompanySearchPage:
    found = await service.search_companies(session, body)
    return CompanySearchPage(
        items=[CompanyRead.model_validate(company) for company in found.page.items],
        next_cursor=found.page.next_cursor,
        total=found.total,
    )


@router.post(
    "/batch/upsert",
    summary="Create or update companies in bulk",
    description="Up to 1000 records, each matched to a company by `domain` (required; companies have no "
    "external id), compared as stored, so `https://www.Acme.example/` matches `acme.example`: a new "
    "domain creates a company (`name` required then), a known one is updated with the fields the record "
    "gives, as a merge patch (`properties` key by key). One result per record, in order: `created`, "
    "`updated`, `unchanged` or `error` with the field to blame (`properties.<key>` for a custom "
    "property); a bad record writes nothing and fails alone, and the answer is still 200. Records with "
    "one domain apply in order. Events as for single writes.",
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("contacts:write")],
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "example": {
                        "records": [
                            {
                                "domain": "acme.example",
                                "name": "Acme GmbH",
                                "country": "DE",
                                "properties": {"tier": "gold"},
                            },
                            {
                                "domain": "https://www.globex.example/",
                                "employee_count": 1200,
                                "properties": {"tier": None},
                            },
                        ]
                    }
                }
            }
        }
    },
)
async def upsert_companies(body: BatchRequest, session: SessionDep) -> BatchResult:
    return await service.upsert_companies(session, body.records)


@router.get(
    "/{company_id}",
    summary="Get a company",
    description="Answers with the company's `ETag`; with `If-None-Match` naming it, 304 and no body.",
    response_model=CompanyRead,
    responses={
        304: {"description": "Not modified: `If-None-Match` names the current `ETag`."},
        **_NO_COMPANY,
        **PROBLEM_RESPONSES,
    },
    dependencies=[requires("contacts:read")],
)
async def get_company(
    company_id: uuid.UUID,
    session: ReadSessionDep,
    response: Response,
    if_none_match: IfNoneMatchHeader = None,
) -> CompanyRead | Response:
    company = await service.get_company(session, company_id)
    if unchanged := not_modified(if_none_match, company.etag):
        return unchanged
    response.headers[ETAG] = company.etag
    return CompanyRead.model_validate(company)


@router.patch(
    "/{company_id}",
    summary="Update a company",
    description="A JSON merge patch (RFC 7396) of the fields given; `null` clears one (`name` cannot be "
    "cleared). Sent as `application/merge-patch+json` or `application/json`. With `If-Match`, applied "
    "only if the company is still at that `ETag` (else 412 with the current one). Changes are announced "
    "as `crm.company.updated`; a patch that changes nothing announces nothing.",
    responses={
        **_NO_COMPANY,
        409: problem_doc("The new domain is another company's; `existing_id` names it."),
        412: problem_doc("`If-Match` names an older version; the `ETag` header has the current one."),
        **PROBLEM_RESPONSES,
    },
    dependencies=[requires("contacts:write")],
)
async def update_company(
    company_id: uuid.UUID,
    body: CompanyPatch,
    session: SessionDep,
    response: Response,
    if_match: IfMatchDep,
) -> CompanyRead:
    company = await service.update_company(session, company_id, body, if_match=if_match)
    response.headers[ETAG] = company.etag
    return CompanyRead.model_validate(company)


@router.delete(
    "/{company_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a company",
    description="For good, with its custom property values and its associations: its contacts stay, and "
    "the deals it was associated with lose it (and get a new `ETag`). Announced as "
    "`crm.company.deleted`. With `If-Match`, only if the company is still at that `ETag`. Deleting it "
    "again is a 404.",
    responses={
        **_NO_COMPANY,
        412: problem_doc("`If-Match` names an older version; the `ETag` header has the current one."),
        **PROBLEM_RESPONSES,
    },
    dependencies=[requires("contacts:write")],
)
async def delete_company(company_id: uuid.UUID, session: SessionDep, if_match: IfMatchDep) -> None:
    await service.delete_company(session, company_id, if_match=if_match)


@router.get(
    "/{company_id}/contacts",
    summary="List a company's contacts",
    description="The contacts associated with the company, in the order they were associated, "
    "cursor-paginated.",
    responses={**_NO_COMPANY, **PROBLEM_RESPONSES},
    dependencies=[requires("contacts:read")],
)
async def list_company_contacts(
    company_id: uuid.UUID,
    request: Request,
    response: Response,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(ASSOCIATED_FIRST))],
) -> Page[CompanyContactRead]:
    found = await service.list_contacts(session, company_id, page)
    return paginated(request, response, found, CompanyContactRead.model_validate)


@router.put(
    "/{company_id}/contacts/{contact_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Associate a contact with a company",
    description="Idempotent: associating a contact that already is one changes nothing. The first time "
    "is announced as `crm.company.contact_added`.",
    responses={**_NO_COMPANY_OR_CONTACT, **PROBLEM_RESPONSES},
    dependencies=[requires("contacts:write")],
)
async def add_company_contact(company_id: uuid.UUID, contact_id: uuid.UUID, session: SessionDep) -> None:
    await service.add_contact(session, company_id, contact_id)


@router.delete(
    "/{company_id}/contacts/{contact_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a contact from a company",
    description="Idempotent: removing an association that is not there changes nothing. A removal is "
    "announced as `crm.company.contact_removed`.",
    responses={**_NO_COMPANY_OR_CONTACT, **PROBLEM_RESPONSES},
    dependencies=[requires("contacts:write")],
)
async def remove_company_contact(company_id: uuid.UUID, contact_id: uuid.UUID, session: SessionDep) -> None:
    await service.remove_contact(session, company_id, contact_id)
