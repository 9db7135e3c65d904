"""Business rules for contacts. Flushes, never commits: the caller's session scope commits."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.contacts.models import Contact
from services.contacts.contacts.repository import ContactRepository
from services.contacts.contacts.schemas import ContactCreate
from services.contacts.db import outbox
from shared.events.catalog import ContactCreated
from shared.web.problems import Conflict, NotFound


async def create_contact(session: AsyncSession, data: ContactCreate) -> Contact:
    repository = ContactRepository(session)
    email = data.email.lower()
    contact = await repository.add_unless_email_taken(
        {
            "email": email,
            "first_name": data.first_name,
            "last_name": data.last_name,
            "phone": data.phone,
            "lifecycle_stage": data.lifecycle_stage.value,
            "source": data.source,
        }
    )
    if contact is None:
        existing = await repository.get_by_email(email)
        raise Conflict(
            f"A contact with email {email} already exists.",
            existing_id=existing.id if existing else "unknown",
        )
    await outbox.add(
        session,
        ContactCreated(
            contact_id=contact.id,
            lifecycle_stage=contact.lifecycle_stage,
            source=contact.source,
            created_at=contact.created_at,
        ),
    )
    return contact


async def get_contact(session: AsyncSession, contact_id: uuid.UUID) -> Contact:
    contact = await ContactRepository(session).get(contact_id)
    if contact is None:
        raise NotFound("Contact", contact_id)
    return contact
