import uuid
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.journeys.timeline.models import TIMELINE_ENTRY, TimelineEntry
from shared.consumer import insert_staged, stage_insert
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_page

OLDEST_FIRST = Keyset(SortKey(TimelineEntry.occurred_at), SortKey(TimelineEntry.id))


class TimelineRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def append(self, entry: dict[str, Any], *, unless_present: bool = False) -> None:
        """Queue an entry; the consumer inserts a batch's entries in one statement. `unless_present`:
        an entry of the same event already there (or queued) stays, and this one is dropped."""
        stage_insert(self.session, TIMELINE_ENTRY, entry, unless_present=unless_present)

    async def delete_for_contact(self, contact_id: uuid.UUID) -> None:
        # Entries staged earlier in the same consumer batch are inserted first, so they go too.
        await insert_staged(self.session)
        await self.session.execute(delete(TimelineEntry).where(TimelineEntry.contact_id == contact_id))

    async def move(self, from_contact: uuid.UUID, to_contact: uuid.UUID) -> None:
        await insert_staged(self.session)
        await self.session.execute(
            update(TimelineEntry)
            .where(TimelineEntry.contact_id == from_contact)
            .values(contact_id=to_contact)
        )

    async def for_contact(self, contact_id: uuid.UUID, page: PageRequest) -> Slice[TimelineEntry]:
        # Served by ix_timeline_entry_contact_time (contact_id, occurred_at, id).
        statement = select(TimelineEntry).where(TimelineEntry.contact_id == contact_id)
        return await fetch_page(self.session, statement, OLDEST_FIRST, page)
