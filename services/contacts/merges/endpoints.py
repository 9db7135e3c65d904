import uuid
from typing import Annotated

from fastapi import Depends, Request, Response

from services.contacts.contacts.endpoints import Writer, read_model
from services.contacts.contacts.service import Author
from services.contacts.merges import service
from services.contacts.merges.schemas import MERGE_EXAMPLE, MergeOutcome, MergeRead, MergeRequest
from shared.pagination import PageRequest
from shared.web.auth import requires
from shared.web.deps import ReadSessionDep, SessionDep
from shared.web.etag import ETAG, IfMatchDep
from shared.web.pagination import Page, page_request, paginated
from shared.web.problems import PROBLEM_RESPONSES, problem_doc
from shared.web.routing import api_router

router = api_router(prefix="/v1/contacts", tags=["merges"])


@router.post(
    "/{contact_id}/merge",
    summary="Merge another contact into this one",
    description="The contact in the path survives and keeps its id; the one named by `merge_id` is merged "
    "into it and is gone. The survivor gains every email, external id, anonymous id and tag of the other, "
    "its property history, lifecycle transitions, consent records, and company and deal associations; "
    "counters are summed; per consent purpose and mailing list, the later statement wins. Where both "
    "have a value for one field, `prefer` names the winning side, else the survivor's value stays (the "
    "lifecycle stage further along the funnel wins). Changes to the survivor are announced as "
    "`crm.contact.updated` (and `crm.contact.lifecycle_changed`), then `crm.contact.merged` tells the "
    "other services to repoint. A GET of the merged id answers the survivor from then on. The merge is "
    "kept with its decisions: `GET /v1/contacts/{contact_id}/merges`. `If-Match` applies to the survivor.",
    responses={
        404: problem_doc("No such contact, either one."),
        410: problem_doc("One of the two was erased."),
        412: problem_doc("`If-Match` names an older version of the survivor."),
        **PROBLEM_RESPONSES,
    },
    openapi_extra={"requestBody": {"content": {"application/json": {"example": MERGE_EXAMPLE}}}},
)
async def merge_contacts(
    contact_id: uuid.UUID,
    body: MergeRequest,
    session: SessionDep,
    response: Response,
    if_match: IfMatchDep,
    principal: Writer,
) -> MergeOutcome:
    result = await service.merge_contacts(
        session,
        contact_id,
        body.merge_id,
        Author(principal.key_id),
        prefer=body.prefer,
        reason=body.reason,
        if_match=set(if_match) if if_match is not None else None,
    )
    response.headers[ETAG] = result.survivor.contact.etag
    return MergeOutcome(merge=MergeRead.model_validate(result.merge), contact=read_model(result.survivor))


@router.get(
    "/{contact_id}/merges",
    summary="Merges into a contact",
    description="Why this is one record: every contact merged into it (directly, or into one merged into "
    "it), newest first, with who merged, why, which side each field's value came from, the duplicate "
    "reasons that held, the rows moved, and the merged contact as it was. Cursor-paginated.",
    responses={
        404: problem_doc("No such contact."),
        410: problem_doc("The contact was erased."),
        **PROBLEM_RESPONSES,
    },
    dependencies=[requires("contacts:read")],
)
async def list_merges(
    contact_id: uuid.UUID,
    request: Request,
    response: Response,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(service.MERGES_NEWEST_FIRST))],
) -> Page[MergeRead]:
    found = await service.list_merges(session, contact_id, page)
    return paginated(request, response, found, MergeRead.model_validate)
