import uuid
from typing import Annotated

from fastapi import Depends, Path, Request, Response

from services.contacts.consents import service
from services.contacts.consents.schemas import (
    ConsentChange,
    ConsentRecordRead,
    ConsentSummary,
    SubscriptionChange,
)
from services.contacts.contacts.service import Author
from shared.auth.principal import Principal
from shared.pagination import PageRequest
from shared.web.auth import requires
from shared.web.deps import ReadSessionDep, SessionDep
from shared.web.pagination import Page, page_request, paginated
from shared.web.problems import PROBLEM_RESPONSES, problem_doc
from shared.web.routing import api_router

router = api_router(prefix="/v1/contacts/{contact_id}", tags=["consent"])

Writer = Annotated[Principal, requires("contacts:write")]
_NOT_FOUND = {404: problem_doc("No such contact."), **PROBLEM_RESPONSES}
ListKey = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$", description="The mailing list's key.")]


@router.get(
    "/consents",
    summary="Consent and subscriptions of a contact",
    description="The latest status per purpose and per mailing list, and whether marketing may reach "
    "the contact (`marketing_allowed`; the contact's own read says it too).",
    responses=_NOT_FOUND,
    dependencies=[requires("contacts:read")],
)
async def get_consents(contact_id: uuid.UUID, session: ReadSessionDep) -> ConsentSummary:
    return await service.get_summary(session, contact_id)


@router.post(
    "/consents",
    summary="Record consent for a purpose",
    description="Granted or withdrawn, with its source and proof (where and how it was given). Every "
    "statement is kept; a change of status is announced as `crm.contact.consent_changed`, without the "
    "proof.",
    responses=_NOT_FOUND,
)
async def record_consent(
    contact_id: uuid.UUID, body: ConsentChange, session: SessionDep, principal: Writer
) -> ConsentSummary:
    return await service.record_consent(session, contact_id, body, Author(principal.key_id))


@router.put(
    "/subscriptions/{list_key}",
    summary="Subscribe to or unsubscribe from a mailing list",
    description="Idempotent: the same status again changes nothing but adds a record. A change is "
    "announced as `crm.contact.consent_changed` with `kind: subscription`.",
    responses=_NOT_FOUND,
)
async def set_subscription(
    contact_id: uuid.UUID, list_key: ListKey, body: SubscriptionChange, session: SessionDep, principal: Writer
) -> ConsentSummary:
    return await service.set_subscription(session, contact_id, list_key, body, Author(principal.key_id))


@router.get(
    "/consents/history",
    summary="Every consent and subscription statement of a contact",
    description="Newest first, with source, proof and the API key that recorded it. Cursor-paginated.",
    responses=_NOT_FOUND,
    dependencies=[requires("contacts:read")],
)
async def consent_history(
    contact_id: uuid.UUID,
    request: Request,
    response: Response,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(service.NEWEST_FIRST))],
) -> Page[ConsentRecordRead]:
    found = await service.history(session, contact_id, page)
    return paginated(request, response, found, ConsentRecordRead.model_validate)
