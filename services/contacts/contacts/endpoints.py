import uuid

from fastapi import APIRouter, Response, status

from services.contacts.contacts import service
from services.contacts.contacts.schemas import ContactCreate, ContactRead
from shared.web.deps import ReadSessionDep, RuntimeDep
from shared.web.problems import PROBLEM_RESPONSES, problem_doc

router = APIRouter(prefix="/v1/contacts", tags=["contacts"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a contact",
    description="Creates a contact and announces it as `crm.contact.created` on `crm.contacts`.",
    responses={
        409: problem_doc("Email already used; `existing_id` names the contact."),
        **PROBLEM_RESPONSES,
    },
)
async def create_contact(body: ContactCreate, runtime: RuntimeDep, response: Response) -> ContactRead:
    # Concurrent creations share a transaction and a commit (group commit; see shared.batching).
    contact = await runtime.batched(service.create_contacts).submit(body)
    response.headers["Location"] = f"{router.prefix}/{contact.id}"
    return ContactRead.model_validate(contact)


@router.get(
    "/{contact_id}",
    summary="Get a contact",
    responses={404: problem_doc("No such contact."), **PROBLEM_RESPONSES},
)
async def get_contact(contact_id: uuid.UUID, session: ReadSessionDep) -> ContactRead:
    return ContactRead.model_validate(await service.get_contact(session, contact_id))
