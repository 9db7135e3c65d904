import uuid
from typing import Annotated

from fastapi import Depends, Request, Response, status

from services.contacts.contacts import service
from services.contacts.contacts.repository import NEWEST_FIRST
from services.contacts.contacts.schemas import ContactCreate, ContactPatch, ContactRead
from shared.pagination import PageRequest
from shared.web.auth import requires
from shared.web.deps import ReadSessionDep, RuntimeDep, SessionDep
from shared.web.etag import ETAG, IfMatchDep, IfNoneMatchHeader, not_modified
from shared.web.pagination import Page, page_request, paginated
from shared.web.problems import PROBLEM_RESPONSES, problem_doc
from shared.web.routing import api_router

router = api_router(prefix="/v1/contacts", tags=["contacts"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a contact",
    description="Creates a contact and announces it as `crm.contact.created` on `crm.contacts`.",
    responses={
        409: problem_doc("Email already used; `existing_id` names the contact."),
        **PROBLEM_RESPONSES,
    },
    dependencies=[requires("contacts:write")],
)
async def create_contact(
    body: ContactCreate, runtime: RuntimeDep, request: Request, response: Response
) -> ContactRead:
    # Concurrent creations share a transaction and a commit (group commit; see shared.batching).
    contact = await runtime.batched(service.create_contacts).submit(body)
    # From the request, so the URL holds wherever the app is mounted (`/contacts/...` in embedded mode).
    response.headers["Location"] = str(request.url_for("get_contact", contact_id=contact.id))
    return ContactRead.model_validate(contact)


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
    return paginated(request, response, found, ContactRead.model_validate)


@router.get(
    "/{contact_id}",
    summary="Get a contact",
    description="Answers with the contact's `ETag`; with `If-None-Match` naming it, 304 and no body.",
    response_model=ContactRead,
    responses={
        304: {"description": "Not modified: `If-None-Match` names the current `ETag`."},
        404: problem_doc("No such contact."),
        **PROBLEM_RESPONSES,
    },
    dependencies=[requires("contacts:read")],
)
async def get_contact(
    contact_id: uuid.UUID,
    session: ReadSessionDep,
    response: Response,
    if_none_match: IfNoneMatchHeader = None,
) -> ContactRead | Response:
    contact = await service.get_contact(session, contact_id)
    if unchanged := not_modified(if_none_match, contact.etag):
        return unchanged
    response.headers[ETAG] = contact.etag
    return ContactRead.model_validate(contact)


@router.patch(
    "/{contact_id}",
    summary="Update a contact",
    description="A JSON merge patch (RFC 7396) of the fields given; `null` clears one. Sent as "
    "`application/merge-patch+json` or `application/json`. With `If-Match`, applied only if the "
    "contact is still at that `ETag` (else 412 with the current one). Changes are announced as "
    "`crm.contact.updated`; a patch that changes nothing announces nothing.",
    responses={
        404: problem_doc("No such contact."),
        412: problem_doc("`If-Match` names an older version; the `ETag` header has the current one."),
        **PROBLEM_RESPONSES,
    },
    dependencies=[requires("contacts:write")],
)
async def update_contact(
    contact_id: uuid.UUID,
    body: ContactPatch,
    session: SessionDep,
    response: Response,
    if_match: IfMatchDep,
) -> ContactRead:
    contact = await service.update_contact(session, contact_id, body, if_match=if_match)
    response.headers[ETAG] = contact.etag
    return ContactRead.model_validate(contact)
