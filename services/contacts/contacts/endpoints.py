import uuid

from fastapi import APIRouter, Response, status

from services.contacts.contacts import service
from services.contacts.contacts.schemas import ContactCreate, ContactRead
from shared.web.deps import SessionDep
from shared.web.problems import PROBLEM_JSON, Problem

router = APIRouter(prefix="/v1/contacts", tags=["contacts"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a contact",
    description="Creates a contact and announces it as `crm.contact.created` on `crm.contacts`.",
    responses={
        409: {
            "model": Problem,
            "description": "Email already used; `existing_id` names the contact.",
            "content": {PROBLEM_JSON: {}},
        },
        422: {
            "model": Problem,
            "description": "Invalid input; `errors` names each field.",
            "content": {PROBLEM_JSON: {}},
        },
    },
)
async def create_contact(body: ContactCreate, session: SessionDep, response: Response) -> ContactRead:
    contact = await service.create_contact(session, body)
    response.headers["Location"] = f"{router.prefix}/{contact.id}"
    return ContactRead.model_validate(contact)


@router.get(
    "/{contact_id}",
    summary="Get a contact",
    responses={404: {"model": Problem, "description": "No such contact.", "content": {PROBLEM_JSON: {}}}},
)
async def get_contact(contact_id: uuid.UUID, session: SessionDep) -> ContactRead:
    return ContactRead.model_validate(await service.get_contact(session, contact_id))
