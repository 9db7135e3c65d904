"""Business rules for contacts. Flushes, never commits: the caller's session scope commits."""

import uuid
from collections.abc import Collection, Sequence

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from services.contacts.contacts.models import Contact
from services.contacts.contacts.repository import ContactRepository
from services.contacts.contacts.schemas import ContactCreate, ContactPatch
from services.contacts.db import outbox
from shared.db import utc_now
from shared.errors import AlreadyExists, NotFound, StaleVersion
from shared.events.catalog import ContactCreated, ContactUpdated, FieldChange
from shared.pagination import PageRequest, Slice

# Fields whose values may go on the stream; the others are personal data (see `ContactUpdated`).
_PUBLISHED_VALUES = frozenset({"lifecycle_stage", "source"})
# Unconditional updates that keep meeting a concurrent writer give up after this many reads.
_UPDATE_ATTEMPTS = 5


class ContactNotFound(NotFound):
    def __init__(self, contact_id: uuid.UUID) -> None:
        super().__init__("Contact", contact_id)


async def create_contacts(
    session: AsyncSession, batch: Sequence[ContactCreate]
) -> list[Contact | AlreadyExists]:
    """Create a batch of contacts (see `shared.batching`): one insert and one outbox insert for all.

    An email that is taken, or that an earlier item of the batch takes, is an `AlreadyExists` naming the
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
    outcomes: list[Contact | AlreadyExists] = []
    for email, data in zip(emails, batch, strict=True):
        contact = by_email.get(email)
        if contact is not None and first_of_email[email] is data:
            outcomes.append(contact)
        else:
            holder = contact.id if contact is not None else taken.get(email, "unknown")
            outcomes.append(
                AlreadyExists(f"A contact with email {email} already exists.", existing_id=holder)
            )
    return outcomes


async def get_contact(session: AsyncSession, contact_id: uuid.UUID) -> Contact:
    contact = await ContactRepository(session).get(contact_id)
    if contact is None:
        raise ContactNotFound(contact_id)
    return contact


async def list_contacts(session: AsyncSession, page: PageRequest) -> Slice[Contact]:
    """Newest first (`repository.NEWEST_FIRST`)."""
    return await ContactRepository(session).page(page)


async def update_contact(
    session: AsyncSession,
    contact_id: uuid.UUID,
    patch: ContactPatch,
    *,
    if_match: Collection[str] | None = None,
) -> Contact:
    """Apply a merge patch and announce what changed as `crm.contact.updated`; nothing changed, no event.

    `if_match` holds the entity tags the caller based the patch on (None: whatever is current). When
    the contact's tag is not among them, or someone writes the contact between this read and this
    write, it is a `StaleVersion` naming the current tag. The second case is caught by the UPDATE
    itself (`version_id_col`), so two writers that read the same version never both succeed.
    """
    repository = ContactRepository(session)
    for attempt in range(_UPDATE_ATTEMPTS):
        contact = await repository.get(contact_id, fresh=attempt > 0)
        if contact is None:
            raise ContactNotFound(contact_id)
        if if_match is not None and contact.etag not in if_match:
            raise StaleVersion("Contact", contact_id, current=contact.etag)
        changes = {
            name: (getattr(contact, name), value)
            for name, value in patch.given().items()
            if getattr(contact, name) != value
        }
        if not changes:
            return contact
        try:
            # A savepoint, so that losing the race leaves the transaction usable to read the winner.
            async with session.begin_nested():
                for name, (_old, new) in changes.items():
                    setattr(contact, name, new)
                contact.updated_at = utc_now()
                await session.flush()
        except StaleDataError:
            continue  # read again: a 412 under a condition, else the patch applies to the new version
        # After the UPDATE: emitting first would take the key's outbox lock before the row's lock.
        await outbox.add(
            session,
            ContactUpdated(
                contact_id=contact.id,
                changed_fields=sorted(changes),
                changes={
                    name: FieldChange(old=old, new=new)
                    for name, (old, new) in changes.items()
                    if name in _PUBLISHED_VALUES
                },
                updated_at=contact.updated_at,
            ),
        )
        return contact
    # Only reached when every attempt lost a race, and then the last read found the contact.
    assert contact is not None
    raise StaleVersion("Contact", contact_id, current=contact.etag)
