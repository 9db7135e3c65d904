"""Business rules for contacts. Flushes, never commits: the caller's session scope commits."""

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.contacts.models import Contact
from services.contacts.contacts.repository import ContactRepository
from services.contacts.contacts.schemas import ContactCreate
from services.contacts.db import outbox
from shared.events.catalog import ContactCreated
from shared.web.problems import Conflict, NotFound


async def create_contacts(session: AsyncSession, batch: Sequence[ContactCreate]) -> list[Contact | Conflict]:
    """Create a batch of contacts (see `shared.batching`): one insert and one outbox insert for all.

    An email that is taken, or that an earlier item of the batch takes, is a `Conflict` that names the
    contact holding it; such an item writes nothing.
    """
    repository = ContactRepository(session)
    emails = [data.email.lower() for data in batch]
    first_of_email: dict[str, ContactCreate] = {}
    for email, data in zip(emails, batch, strict=True):
        first_of_email.setdefault(email, data)
    created = await repository.add_unless_email_taken(
        [
            {
                "email": email,
                "first_name": data.first_name,
                "last_name": data.last_name,
                "phone": data.phone,
                "lifecycle_stage": data.lifecycle_stage.value,
                "source": data.source,
            }
            for email, data in first_of_email.items()
        ]
    )
    by_email = {contact.email: contact for contact in created}
    taken = await repository.ids_by_email([email for email in first_of_email if email not in by_email])
    await outbox.add_many(
        session,
        [
            ContactCreated(
                contact_id=contact.id,
                lifecycle_stage=contact.lifecycle_stage,
                source=contact.source,
                created_at=contact.created_at,
            )
            for contact in created
        ],
    )
    outcomes: list[Contact | Conflict] = []
    for email, data in zip(emails, batch, strict=True):
        contact = by_email.get(email)
        if contact is not None and first_of_email[email] is data:
            outcomes.append(contact)
        else:
            holder = contact.id if contact is not None else taken.get(email, "unknown")
            outcomes.append(Conflict(f"A contact with email {email} already exists.", existing_id=holder))
    return outcomes


async def get_contact(session: AsyncSession, contact_id: uuid.UUID) -> Contact:
    contact = await ContactRepository(session).get(contact_id)
    if contact is None:
        raise NotFound("Contact", contact_id)
    return contact
