import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.journeys.timeline.models import TimelineEntry


class TimelineRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, entry: TimelineEntry) -> None:
        self.session.add(entry)
        await self.session.flush()

    async def for_contact(self, contact_id: uuid.UUID, *, limit: int) -> list[TimelineEntry]:
        result = await self.session.scalars(
            select(TimelineEntry)
            .where(TimelineEntry.contact_id == contact_id)
            .order_by(TimelineEntry.occurred_at, TimelineEntry.id)
            .limit(limit)
        )
        return list(result)
