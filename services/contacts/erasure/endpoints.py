import uuid
from typing import Annotated

from fastapi import Request, Response, status

from services.contacts.contacts.service import Author
from services.contacts.erasure import service
from services.contacts.erasure.schemas import ConfirmationStatus, ErasureReceiptRead, ServiceConfirmation
from shared.auth.principal import Principal
from shared.web.auth import requires
from shared.web.deps import ReadSessionDep, SessionDep
from shared.web.problems import PROBLEM_RESPONSES, problem_doc
from shared.web.routing import api_router

router = api_router(prefix="/v1", tags=["erasure"])


async def _read(session: ReadSessionDep | SessionDep, receipt_id: uuid.UUID) -> ErasureReceiptRead:
    receipt, confirmations = await service.get_receipt(session, receipt_id)
    services = [
        ServiceConfirmation(
            service=name,
            status=ConfirmationStatus.CONFIRMED if name in confirmations else ConfirmationStatus.PENDING,
            confirmed_at=confirmations[name].confirmed_at if name in confirmations else None,
        )
        for name in service.CONFIRMING_SERVICES
    ]
    return ErasureReceiptRead(
        id=receipt.id,
        contact_id=receipt.contact_id,
        requested_at=receipt.requested_at,
        complete=all(entry.status is ConfirmationStatus.CONFIRMED for entry in services),
        services=services,
    )


@router.post(
    "/contacts/{contact_id}/erasure",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Erase a person's data",
    description="Removes the contact's personal data here at once (identities, names, addresses, custom "
    "values, history, consent records, notes, reviews, ratings and feedback) and announces "
    "`crm.contact.erased`, so each service erases what it holds and confirms. Answers with a receipt; "
    "`GET /v1/erasures/{id}` shows each confirmation as it arrives. Afterwards the contact reads 410. "
    "Asked again, the same receipt.",
    responses={404: problem_doc("No such contact."), **PROBLEM_RESPONSES},
)
async def erase_contact(
    contact_id: uuid.UUID,
    session: SessionDep,
    request: Request,
    response: Response,
    principal: Annotated[Principal, requires("contacts:write")],
) -> ErasureReceiptRead:
    receipt = await service.erase_contact(session, contact_id, Author(principal.key_id))
    response.headers["Location"] = str(request.url_for("get_erasure_receipt", receipt_id=receipt.id))
    return await _read(session, receipt.id)


@router.get(
    "/erasures/{receipt_id}",
    summary="An erasure receipt",
    description="Which services have confirmed the erasure, and when; `complete` once all have.",
    responses={404: problem_doc("No such receipt."), **PROBLEM_RESPONSES},
    dependencies=[requires("contacts:read")],
)
async def get_erasure_receipt(receipt_id: uuid.UUID, session: ReadSessionDep) -> ErasureReceiptRead:
    return await _read(session, receipt_id)
