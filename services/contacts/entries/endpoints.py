"""Notes, reviews, ratings, feedback and suggestions on a contact; scores are announced on `crm.contacts`."""

import uuid
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response, status

from services.contacts.contacts.service import Author
from services.contacts.entries import service
from services.contacts.entries.models import ContactEntry
from services.contacts.entries.repository import NEWEST_FIRST
from services.contacts.entries.schemas import (
    EntryCreate,
    EntryKind,
    EntryPatch,
    EntryRead,
    EntrySummary,
    Reference,
    Scale,
)
from shared.auth.principal import Principal
from shared.pagination import PageRequest
from shared.web.auth import requires
from shared.web.deps import ReadSessionDep, SessionDep
from shared.web.etag import ETAG, IfMatchDep, IfNoneMatchHeader, not_modified
from shared.web.pagination import Page, page_request, paginated
from shared.web.problems import PROBLEM_RESPONSES, problem_doc
from shared.web.routing import api_router

router = api_router(prefix="/v1/contacts/{contact_id}/entries", tags=["entries"])

Writer = Annotated[Principal, requires("contacts:write")]

_NO_CONTACT: dict[int | str, dict[str, Any]] = {
    404: problem_doc("No such contact."),
    410: problem_doc("The contact was erased, and its entries with it."),
    **PROBLEM_RESPONSES,
}
_NO_ENTRY: dict[int | str, dict[str, Any]] = {
    **_NO_CONTACT,
    404: problem_doc("No such contact, or no such entry of it; `title` says which."),
}
_STALE: dict[int | str, dict[str, Any]] = {
    412: problem_doc("`If-Match` names an older version; the `ETag` header has the current one."),
}


def read_model(entry: ContactEntry) -> EntryRead:
    reference = None
    if entry.reference_type is not None and entry.reference_id is not None:
        reference = Reference(type=entry.reference_type, id=entry.reference_id)
    return EntryRead(
        id=entry.id,
        contact_id=entry.contact_id,
        kind=EntryKind(entry.kind),
        subject=entry.subject,
        body=entry.body,
        score=entry.score,
        scale=Scale(entry.scale) if entry.scale is not None else None,
        channel=entry.channel,
        reference=reference,
        author=entry.author,
        actor=entry.actor,
        occurred_at=entry.occurred_at,
        created_at=entry.created_at,
        updated_at=entry.updated_at,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Record a note, review, rating, feedback or suggestion",
    description="What the kind needs: `note` and `suggestion` a `body` and no score; `review` a `body`, "
    "its score optional; `rating` and `feedback` a `score` with its `scale` (`five_star` 1-5, `csat` 1-5, "
    "`nps` 0-10, `ces` 1-7, `thumbs` 0-1), the body optional. A broken rule is a 422 naming the field. "
    "An entry with a score is announced as `crm.contact.feedback_recorded` on `crm.contacts`: its score, "
    "scale and channel, never its text. `occurred_at` (default now) dates an imported review or survey "
    "answer; a `reference` of type `deal` must name a deal here.",
    responses=_NO_CONTACT,
)
async def record_entry(
    contact_id: uuid.UUID,
    body: EntryCreate,
    session: SessionDep,
    principal: Writer,
    request: Request,
    response: Response,
) -> EntryRead:
    entry = await service.record_entry(session, contact_id, body, Author(principal.key_id))
    response.headers["Location"] = str(request.url_for("get_entry", contact_id=contact_id, entry_id=entry.id))
    response.headers[ETAG] = entry.etag
    return read_model(entry)


@router.get(
    "",
    summary="List a contact's entries",
    description="Newest first, by when they occurred; `kind` (repeatable) keeps only those kinds. "
    'Cursor-paginated: follow `next_cursor`, or the `Link` header\'s `rel="next"` URL, until it is null.',
    responses=_NO_CONTACT,
    dependencies=[requires("contacts:read")],
)
async def list_entries(
    contact_id: uuid.UUID,
    request: Request,
    response: Response,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(NEWEST_FIRST))],
    kind: Annotated[list[EntryKind] | None, Query(description="Only entries of these kinds.")] = None,
) -> Page[EntryRead]:
    found = await service.list_entries(session, contact_id, kind or [], page)
    return paginated(request, response, found, read_model)


# Before `/{entry_id}`, which would take `summary` for an id.
@router.get(
    "/summary",
    summary="A contact's entries at a glance",
    description="How many entries of each kind, when the newest occurred, and per scale the contact has "
    "scores on: count, average, lowest and highest, how many read positive, neutral and negative "
    "(NPS: promoters 9-10, detractors 0-6; CSAT and stars: 4-5 and 1-2; CES: 5-7 and 1-3), and the "
    "latest score.",
    responses=_NO_CONTACT,
    dependencies=[requires("contacts:read")],
)
async def entry_summary(contact_id: uuid.UUID, session: ReadSessionDep) -> EntrySummary:
    return await service.summary(session, contact_id)


@router.get(
    "/{entry_id}",
    summary="Get an entry",
    description="Answers with the entry's `ETag`; with `If-None-Match` naming it, 304 and no body.",
    response_model=EntryRead,
    responses={304: {"description": "Not modified: `If-None-Match` names the current `ETag`."}, **_NO_ENTRY},
    dependencies=[requires("contacts:read")],
)
async def get_entry(
    contact_id: uuid.UUID,
    entry_id: uuid.UUID,
    session: ReadSessionDep,
    response: Response,
    if_none_match: IfNoneMatchHeader = None,
) -> EntryRead | Response:
    entry = await service.get_entry(session, contact_id, entry_id)
    if unchanged := not_modified(if_none_match, entry.etag):
        return unchanged
    response.headers[ETAG] = entry.etag
    return read_model(entry)


@router.patch(
    "/{entry_id}",
    summary="Correct an entry",
    description="A JSON merge patch (RFC 7396) of the fields given; `null` clears one. Sent as "
    "`application/merge-patch+json` or `application/json`. The kind's rules hold afterwards as on "
    "creation, and the kind cannot change. With `If-Match`, applied only if the entry is still at that "
    "`ETag` (else 412 with the current one). A scored entry whose score, scale, channel or time changed "
    "is announced again as `crm.contact.feedback_recorded` (same `entry_id`); a review whose score is "
    "cleared as `crm.contact.feedback_removed`.",
    responses={**_NO_ENTRY, **_STALE},
    dependencies=[requires("contacts:write")],
)
async def update_entry(
    contact_id: uuid.UUID,
    entry_id: uuid.UUID,
    body: EntryPatch,
    session: SessionDep,
    response: Response,
    if_match: IfMatchDep,
) -> EntryRead:
    entry = await service.update_entry(session, contact_id, entry_id, body, if_match=if_match)
    response.headers[ETAG] = entry.etag
    return read_model(entry)


@router.delete(
    "/{entry_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an entry",
    description="Honours `If-Match`. A scored entry is withdrawn as `crm.contact.feedback_removed`, so "
    "it stops counting in satisfaction.",
    responses={**_NO_ENTRY, **_STALE},
    dependencies=[requires("contacts:write")],
)
async def delete_entry(
    contact_id: uuid.UUID, entry_id: uuid.UUID, session: SessionDep, if_match: IfMatchDep
) -> None:
    await service.delete_entry(session, contact_id, entry_id, if_match=if_match)
