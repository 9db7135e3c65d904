import uuid
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.journeys.maps.models import (
    Journey,
    JourneyAnnouncement,
    JourneyContactAlias,
    JourneyContactStage,
    JourneyStageEvent,
    JourneyVersion,
)
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_page

OLDEST_FIRST = Keyset(SortKey(Journey.created_at), SortKey(Journey.id))
_ALIAS_REFS = uuid.UUID("3d0f6a9e-1c2b-4e7d-8a5f-9b6c4d2e1f07")


def alias_ref(contact_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(_ALIAS_REFS, str(contact_id))


class JourneyRepository:
    """Definitions: journeys and their versions."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_key(self, key: str, *, fresh: bool = False) -> Journey | None:
        statement = select(Journey).where(Journey.key == key)
        if fresh:
            statement = statement.execution_options(populate_existing=True)
        found: Journey | None = await self.session.scalar(statement)
        return found

    async def page(self, page: PageRequest) -> Slice[Journey]:
        return await fetch_page(self.session, select(Journey), OLDEST_FIRST, page)

    async def by_ids(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Journey]:
        if not ids:
            return {}
        return {
            journey.id: journey
            for journey in await self.session.scalars(select(Journey).where(Journey.id.in_(ids)))
        }

    async def all_versions(self) -> Sequence[tuple[Journey, JourneyVersion]]:
        """Every journey with every version, oldest version first."""
        rows = await self.session.execute(
            select(Journey, JourneyVersion)
            .join(JourneyVersion, JourneyVersion.journey_id == Journey.id)
            .order_by(Journey.id, JourneyVersion.version)
        )
        return [(journey, version) for journey, version in rows]

    async def delete(self, journey: Journey) -> None:
        # The consumer's rows go too (foreign keys cascade; said here as well for clarity on SQLite).
        for table in (JourneyStageEvent, JourneyContactStage, JourneyVersion):
            await self.session.execute(delete(table).where(table.journey_id == journey.id))
        await self.session.delete(journey)
        await self.session.flush()


class ProgressRepository:
    """The consumer's view: current stages and their history."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def current(self, contact_id: uuid.UUID) -> dict[uuid.UUID, JourneyContactStage]:
        """The contact's current stage per journey id. Read afresh: merges move rows with plain UPDATEs."""
        rows = await self.session.scalars(
            select(JourneyContactStage)
            .where(JourneyContactStage.contact_id == contact_id)
            .execution_options(populate_existing=True)
        )
        return {row.journey_id: row for row in rows}

    async def history(self, contact_id: uuid.UUID) -> set[tuple[uuid.UUID, str, str]]:
        """(journey id, stage key, kind) of the contact's history."""
        rows = await self.session.execute(
            select(JourneyStageEvent.journey_id, JourneyStageEvent.stage_key, JourneyStageEvent.kind).where(
                JourneyStageEvent.contact_id == contact_id
            )
        )
        return {(journey_id, stage_key, kind) for journey_id, stage_key, kind in rows}

    async def history_rows(self, contact_id: uuid.UUID) -> Sequence[JourneyStageEvent]:
        rows = await self.session.scalars(
            select(JourneyStageEvent)
            .where(JourneyStageEvent.contact_id == contact_id)
            .execution_options(populate_existing=True)
        )
        return list(rows)

    def add_history(self, row: JourneyStageEvent) -> None:
        self.session.add(row)

    def set_stage(self, row: JourneyContactStage) -> None:
        self.session.add(row)

    async def announced(self, event_id: str) -> bool:
        found = await self.session.get(JourneyAnnouncement, event_id)
        return found is not None

    def mark_announced(self, event_id: str, at: datetime) -> None:
        self.session.add(JourneyAnnouncement(event_id=event_id, announced_at=at))

    async def forget(self, contact_ids: Collection[uuid.UUID]) -> None:
        for table in (JourneyStageEvent, JourneyContactStage):
            await self.session.execute(delete(table).where(table.contact_id.in_(contact_ids)))

    async def alias(self, contact_id: uuid.UUID) -> JourneyContactAlias | None:
        return await self.session.get(JourneyContactAlias, alias_ref(contact_id), populate_existing=True)

    async def set_alias(self, contact_id: uuid.UUID, survivor_id: uuid.UUID | None) -> None:
        """`contact_id` is now `survivor_id` (None: erased), and so is every contact merged into it."""
        await self.session.execute(
            update(JourneyContactAlias)
            .where(JourneyContactAlias.survivor_id == contact_id)
            .values(survivor_id=survivor_id)
        )
        await self.session.merge(
            JourneyContactAlias(contact_ref=alias_ref(contact_id), survivor_id=survivor_id)
        )
