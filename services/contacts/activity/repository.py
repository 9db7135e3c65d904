import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.contacts.models import Contact
from services.contacts.merges.repository import survivor_of


class ActivityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _locked(self, contact_id: uuid.UUID) -> Contact | None:
        # Read afresh and locked (PostgreSQL), so counters a patch or a merge changes meanwhile are not
        # overwritten; on SQLite a writing transaction holds the database.
        statement = select(Contact).where(Contact.id == contact_id).execution_options(populate_existing=True)
        if self.session.get_bind().dialect.name == "postgresql":
            statement = statement.with_for_update(of=Contact)
        return (await self.session.scalars(statement)).first()

    async def contact_for_update(self, contact_id: uuid.UUID) -> Contact | None:
        """The contact, or the survivor a merge made of it; None for an id contacts never had."""
        contact = await self._locked(contact_id)
        if contact is not None:
            return contact
        survivor = await survivor_of(self.session, contact_id)
        return None if survivor is None else await self._locked(survivor)
