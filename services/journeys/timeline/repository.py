import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.journeys.timeline.models import TIMELINE_ENTRY, TimelineEntry
from shared.consumer import insert_staged, stage_insert
from shared.events import topics
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_page

OLDEST_FIRST = Keyset(SortKey(TimelineEntry.occurred_at), SortKey(TimelineEntry.id))

# Entries of these event types have a touchpoint's own type as their `kind`; asked for by event type,
# they are found by `event_type` instead.
_TOUCHPOINT_EVENT_TYPES = frozenset(topics.TOUCHPOINTS.event_types)


@dataclass(frozen=True)
class TimelineFilter:
    """Which entries a timeline read keeps: any of the values given per field (none given: any), every
    field given, and `since <= occurred_at < until`."""

    teams: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None


def _any_of(column: InstrumentedAttribute[Any], values: tuple[str, ...]) -> ColumnElement[bool]:
    # One value as an equality, which every planner matches to the filter's index.
    return column == values[0] if len(values) == 1 else column.in_(values)


def _filtered(statement: Select[Any], found: TimelineFilter) -> Select[Any]:
    if found.teams:
        statement = statement.where(_any_of(TimelineEntry.team, found.teams))
    if found.channels:
        statement = statement.where(_any_of(TimelineEntry.channel, found.channels))
    if found.types:
        kinds = tuple(t for t in found.types if t not in _TOUCHPOINT_EVENT_TYPES)
        events = tuple(t for t in found.types if t in _TOUCHPOINT_EVENT_TYPES)
        matches = [_any_of(TimelineEntry.kind, kinds)] if kinds else []
        matches += [_any_of(TimelineEntry.event_type, events)] if events else []
        statement = statement.where(or_(*matches))
    if found.since is not None:
        statement = statement.where(TimelineEntry.occurred_at >= found.since)
    if found.until is not None:
        statement = statement.where(TimelineEntry.occurred_at < found.until)
    return statement


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

    async def for_contact(
        self, contact_id: uuid.UUID, found: TimelineFilter, page: PageRequest
    ) -> Slice[TimelineEntry]:
        # Served by ix_timeline_entry_contact_time (contact_id, occurred_at, id), or, with one team,
        # channel or type, by that filter's (contact_id, <filter>, occurred_at, id) index.
        statement = _filtered(select(TimelineEntry).where(TimelineEntry.contact_id == contact_id), found)
        return await fetch_page(self.session, statement, OLDEST_FIRST, page)
