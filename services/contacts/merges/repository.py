import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.merges.models import ContactMerge


async def survivor_of(session: AsyncSession, contact_id: uuid.UUID) -> uuid.UUID | None:
    """The contact a merged id lives on in, or None if it was never merged. One step always suffices: a
    merge repoints the merges into the contact it removes (see `merges.service.merge_contacts`)."""
    return await session.scalar(select(ContactMerge.survivor_id).where(ContactMerge.merged_id == contact_id))
