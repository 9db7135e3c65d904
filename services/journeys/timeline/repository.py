import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.journeys.timeline.models import TIMELINE_ENTRY, TimelineEntry
from shared.consumer import stage_insert


class TimelineRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def append(self, entry: dict[str, Any]) -> None:
        """Queue an entry; the consumer inserts a batch's entries in one statement."""
        stage_insert(self.session, TIMELINE_ENTRY, entry)

    async def for_contact(self, contact_id: uuid.UUID, *, limit: int) -> list[TimelineEntry]:
        result = await self.session.scalars(
            select(TimelineEntry)
            .where(TimelineEntry.contact_id == contact_id)
            .order_by(TimelineEntry.occurred_at, TimelineEntry.id)
            .limit(limit)
        )
        return list(result)
