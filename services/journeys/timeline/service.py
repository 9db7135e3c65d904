"""Timeline rules. Flushes, never commits."""

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.journeys.timeline.models import TimelineEntry
from services.journeys.timeline.repository import TimelineRepository
from shared.events.envelope import Envelope


async def record(
    session: AsyncSession, envelope: Envelope, *, contact_id: uuid.UUID, properties: dict[str, Any]
) -> None:
    await TimelineRepository(session).add(
        TimelineEntry(
            contact_id=contact_id,
            event_id=envelope.id,
            event_type=envelope.type,
            source=envelope.source,
            occurred_at=envelope.time,
            properties=properties,
        )
    )


async def timeline(session: AsyncSession, contact_id: uuid.UUID, *, limit: int) -> list[TimelineEntry]:
    return await TimelineRepository(session).for_contact(contact_id, limit=limit)
