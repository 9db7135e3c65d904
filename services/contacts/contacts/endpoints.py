import uuid
from typing import Annotated

from fastapi import Depends, Query, Request, Response, status
from pydantic import Field

from services.contacts.consents.service import marketing_allowed
from services.contacts.contacts import service
from services.contacts.contacts.repository import HISTORY_NEWEST_FIRST, NEWEST_FIRST, TRANSITIONS_OLDEST_FIRST
from services.contacts.contacts.schemas import (
    CONTACT_EXAMPLE,
    ContactCreate,
    ContactFields,
    ContactPatch,
    ContactRead,
    LifecycleChange,
    LifecycleTransitionRead,
    PropertyChangeRead,
)
from services.contacts.search.schemas import SearchRequest
from shared.auth.principal import Principal
from shared.batch import BatchRequest, BatchResult, validate_each
from shared.pagination import PageRequest
from shared.web.auth import requires
from shared.web.deps import DryRunDep, ReadSessionDep, RuntimeDep, SessionDep
from shared.web.etag import ETAG, IfMatchDep, IfNoneMatchHeader, not_modified
from shared.web.pagination import Page, page_request, paginated
from shared.web.problems import PROBLEM_RESPONSES, problem_doc
from shared.web.routing import api_router

router = api_router(prefix="/v1/contacts", tags=["contacts"])

Writer = Annotated[Principal, requires("contacts:write")]
_NOT_FOUND = {404: problem_doc("No such contact."), **PROBLEM_RESPONSES}


def read_model(details: service.ContactDetails) -> ContactRead:
    contact = details.contact
    return ContactRead.model_validate(
        {
            **{name: getattr(contact, name) for name in service.SCALARS},
            "id": contact.id,
            "emails": details.emails,
            "tags": details.tags,
            "external_ids": details.external_ids,
            "anonymous_ids": details.anonymous_ids,
            "properties": contact.properties,
            "marketing_allowed": marketing_allowed(contact),
            "consents": contact.consents,
            "subscriptions": contact.subscriptions,
            "visits": contact.visits,
            "purchases": contact.purchases,
            "revenue_minor": contact.revenue_minor,
            "revenue_by_currency": contact.revenue_by_currency,
            "last_activity_at": contact.last_activity_at,
            "created_at": contact.created_at,
            "updated_at": contact.updated_at,
        }
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a contact",
    description="Creates a contact and announces it as `crm.contact.created` on `crm.contacts`. It needs "
    "an email or an external id. Emails, external ids and anonymous ids are unique across contacts: one "
    "that is taken is a 409 naming the contact that holds it. Custom properties are checked against "
    "their definitions (`/v1/properties`); a 422 names the property.",
    responses={
        409: problem_doc("An email or id is taken; `existing_id` names the contact."),
        **PROBLEM_RESPONSES,
    },
)
async def create_contact(
    body: ContactCreate, runtime: RuntimeDep, request: Request, response: Response, principal: Writer
) -> ContactRead:
    # Concurrent creations share a transaction and a commit (group commit; see shared.batching).
    details = await runtime.batched(service.create_contacts).submit(
        service.NewContact(body, service.Author(principal.key_id))
    )
    # From the request, so the URL holds wherever the app is mounted (`/contacts/...` in embedded mode).
    response.headers["Location"] = str(request.url_for("get_contact", contact_id=details.contact.id))
    response.headers[ETAG] = details.contact.etag
    return read_model(details)


@router.get(
    "",
    summary="List contacts",
    description="Newest first. Cursor-paginated: follow `next_cursor`, or the `Link` header's "
    '`rel="next"` URL, until it is null; contacts created during the walk do not shift its pages.',
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("contacts:read")],
)
async def list_contacts(
    request: Request,
    response: Response,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(NEWEST_FIRST))],
) -> Page[ContactRead]:
    found = await service.list_contacts(session, page)
    return paginated(request, response, found, read_model)


class ContactSearchPage(Page[ContactRead]):
    total: int | None = Field(None, description="Every match, counted when `with_total` is true.")


@router.post(
    "/search",
    summary="Search contacts",
    description="Filters over standard fields and custom properties (`properties.<key>`): `eq`, `neq`, "
    "`lt`, `lte`, `gt`, `gte`, `between` (a bare date on a timestamp means that whole day), `in`, "
    "`not_in`, `contains` (substring, or membership in `tags`, `emails` and multi-enums), `exists`, "
    "`not_exists`, combined with nested `and` / `or` groups. Sorted by one field (ties by id; records "
    "without the value last), newest first by default. Pages with `cursor` through the whole set, with "
    "no cap: records written during the walk do not shift it. A field or value the language does not "
    "take is a 422 naming its place, e.g. `filter.and.1.value`. Needs only `contacts:read`: a search "
    "writes nothing, so it is not subject to `Idempotency-Key`.",
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("contacts:read")],
    openapi_extra={"x-idempotency": False},
)
async def search_contacts(body: SearchRequest, session: ReadSessionDep) -> ContactSearchPage:
    found = await service.search_contacts(session, body)
    return ContactSearchPage(
        items=[read_model(details) for details in found.page.items],
        next_cursor=found.page.next_cursor,
        total=found.total,
    )


_UPSERT_RESULT_EXAMPLE = {
    "results": [
        {"index": 0, "status": "created", "id": "0f8fad5b-d9cb-469f-a165-70867728950e", "error": None},
        {"index": 1, "status": "updated", "id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "error": None},
        {
            "index": 2,
            "status": "error",
            "id": None,
            "error": {
                "field": "external_ids.0.system",
                "message": "String should match pattern '^[a-z0-9][a-z0-9_\\-.]{0,63}$'",
                "code": "string_pattern_mismatch",
                "existing_id": None,
            },
        },
    ],
    "created": 1,
    "updated": 1,
    "unchanged": 0,
    "failed": 1,
}


@router.post(
    "/batch/upsert",
    summary="Create or update up to 1,000 contacts",
    description="Each record is matched by any identity it gives (`email`, `emails`, `external_ids`, "
    "`anonymous_ids`): a match is updated with the fields given (identities are only added, never "
    "removed), no match is created. The answer has one result per record, in order: `created`, "
    "`updated`, `unchanged`, or `error` with the field to blame. One bad record never fails the others, "
    "so the request answers 200 whenever the body itself is well formed. Records sharing an identity "
    "are applied in order.\n\n"
    "With `dry_run=true` the same code runs and answers with the same results, then everything is "
    "rolled back: no contact, history or event is written, and an `Idempotency-Key` keeps no answer "
    "(the same key may then carry the real run). The ids of `created` records are the ones they would "
    "have had; the real run gives new ones. `crm contacts import` sends CSV files here.",
    responses={
        200: {
            "description": "One result per record, in order, and the counts.",
            "content": {"application/json": {"example": _UPSERT_RESULT_EXAMPLE}},
        },
        **PROBLEM_RESPONSES,
    },
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "example": {
                        "records": [
                            CONTACT_EXAMPLE,
                            {"email": "grace@example.com", "lifecycle_stage": "customer"},
                            {"external_ids": [{"system": "shopify", "id": "43"}], "first_name": "Alan"},
                        ]
                    }
                }
            }
        }
    },
)
async def upsert_contacts(
    body: BatchRequest, session: SessionDep, principal: Writer, dry_run: DryRunDep
) -> BatchResult:
    # `dry_run` acts through the session: the same code runs, and the session scope rolls it back.
    records = validate_each(ContactFields, body.records)
    results = await service.upsert_contacts(session, records, service.Author(principal.key_id, "batch"))
    return BatchResult.of(results)


@router.get(
    "/{contact_id}",
    summary="Get a contact",
    description="Answers with the contact's `ETag`; with `If-None-Match` naming it, 304 and no body. "
    "The id of a contact merged into another answers the survivor, whose own URL is in "
    "`Content-Location`.",
    response_model=ContactRead,
    responses={304: {"description": "Not modified: `If-None-Match` names the current `ETag`."}, **_NOT_FOUND},
    dependencies=[requires("contacts:read")],
)
async def get_contact(
    contact_id: uuid.UUID,
    session: ReadSessionDep,
    request: Request,
    response: Response,
    if_none_match: IfNoneMatchHeader = None,
) -> ContactRead | Response:
    details = await service.get_contact(session, contact_id)
    if unchanged := not_modified(if_none_match, details.contact.etag):
        return unchanged
    if details.contact.id != contact_id:
        response.headers["Content-Location"] = str(
            request.url_for("get_contact", contact_id=details.contact.id)
        )
    response.headers[ETAG] = details.contact.etag
    return read_model(details)


@router.patch(
    "/{contact_id}",
    summary="Update a contact",
    description="A JSON merge patch (RFC 7396) of the fields given; `null` clears one, a list replaces "
    "the list, `properties` merges key by key. Sent as `application/merge-patch+json` or "
    "`application/json`. With `If-Match`, applied only if the contact is still at that `ETag` (else "
    "412 with the current one). Changes are announced as `crm.contact.updated`, a stage change also as "
    "`crm.contact.lifecycle_changed`; a patch that changes nothing announces nothing.",
    responses={
        409: problem_doc("An email or id given is taken; `existing_id` names the contact."),
        412: problem_doc("`If-Match` names an older version; the `ETag` header has the current one."),
        **_NOT_FOUND,
    },
)
async def update_contact(
    contact_id: uuid.UUID,
    body: ContactPatch,
    session: SessionDep,
    response: Response,
    if_match: IfMatchDep,
    principal: Writer,
) -> ContactRead:
    details = await service.update_contact(
        session, contact_id, body, service.Author(principal.key_id), if_match=if_match
    )
    response.headers[ETAG] = details.contact.etag
    return read_model(details)


@router.post(
    "/{contact_id}/lifecycle",
    summary="Move a contact to a lifecycle stage",
    description="Like a patch of `lifecycle_stage`, with a reason kept in the transition (not published). "
    "Honours `If-Match`.",
    responses={412: problem_doc("`If-Match` names an older version."), **_NOT_FOUND},
)
async def change_lifecycle(
    contact_id: uuid.UUID,
    body: LifecycleChange,
    session: SessionDep,
    response: Response,
    if_match: IfMatchDep,
    principal: Writer,
) -> ContactRead:
    details = await service.update_contact(
        session,
        contact_id,
        ContactPatch(lifecycle_stage=body.stage),
        service.Author(principal.key_id),
        if_match=if_match,
        reason=body.reason,
    )
    response.headers[ETAG] = details.contact.etag
    return read_model(details)


@router.get(
    "/{contact_id}/lifecycle",
    summary="Lifecycle transitions of a contact",
    description="Every stage the contact entered, oldest first, from its creation on, with time, actor and "
    "reason. Cursor-paginated.",
    responses=_NOT_FOUND,
    dependencies=[requires("contacts:read")],
)
async def list_transitions(
    contact_id: uuid.UUID,
    request: Request,
    response: Response,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(TRANSITIONS_OLDEST_FIRST))],
) -> Page[LifecycleTransitionRead]:
    found = await service.list_transitions(session, contact_id, page)
    return paginated(request, response, found, LifecycleTransitionRead.model_validate)


@router.get(
    "/{contact_id}/history",
    summary="Property history of a contact",
    description="Who changed what and when, old → new, for every field (custom ones as "
    "`properties.<key>`), newest first; a contact's creation shows as changes from null. "
    "Cursor-paginated; `property` narrows it to one field.",
    responses=_NOT_FOUND,
    dependencies=[requires("contacts:read")],
)
async def list_history(
    contact_id: uuid.UUID,
    request: Request,
    response: Response,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(HISTORY_NEWEST_FIRST))],
    prop: Annotated[str | None, Query(alias="property", description="Only this field's changes.")] = None,
) -> Page[PropertyChangeRead]:
    found = await service.list_history(session, contact_id, page, prop)
    return paginated(request, response, found, PropertyChangeRead.model_validate)
