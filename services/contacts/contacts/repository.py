import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.contacts.models import Contact


class ContactRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, contact_id: uuid.UUID) -> Contact | None:
        return await self.session.get(Contact, contact_id)

    async def get_by_email(self, email: str) -> Contact | None:
        result = await self.session.scalars(select(Contact).where(Contact.email == email.lower()))
        return result.first()

    async def add(self, contact: Contact) -> Contact:
        self.session.add(contact)
        await self.session.flush()
        return contact
