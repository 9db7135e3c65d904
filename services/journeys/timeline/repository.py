import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.journeys.timeline.models import (
    TIMELINE_ENTRY,
    TimelineContactAlias,
    TimelineDealContact,
    TimelineEntry,
)
from shared.consumer import insert_staged, stage_insert
from shared.events import topics
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_page

OLDEST_FIRST = Keyset(SortKey(TimelineEntry.occurred_at), SortKey(TimelineEntry.id))
_ALIAS_REFS = uuid.UUID("9a4e2c71-5b3d-4f08-a6e1-2d7c8b0f4e53")

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


def alias_ref(contact_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(_ALIAS_REFS, str(contact_id))


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
        # An event on both timelines (a move of a deal both were associated with) stays once.
        await self.session.execute(
            delete(TimelineEntry).where(
                TimelineEntry.contact_id == from_contact,
                TimelineEntry.event_id.in_(
                    select(TimelineEntry.event_id).where(TimelineEntry.contact_id == to_contact)
                ),
            )
        )
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


class DealContactRepository:
    """The deals' contacts as the timeline's consumer knows them, and the contacts that are no more."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def contacts_of(self, deal_id: uuid.UUID) -> list[uuid.UUID]:
        rows = await self.session.scalars(
            select(TimelineDealContact.contact_id)
            .where(TimelineDealContact.deal_id == deal_id)
            .order_by(TimelineDealContact.contact_id)
        )
        return list(rows)

    async def replace(self, deal_id: uuid.UUID, contact_ids: Collection[uuid.UUID]) -> None:
        """The deal's contacts are now `contact_ids`, and only those."""
        known = set(await self.contacts_of(deal_id))
        gone, new = known - set(contact_ids), set(contact_ids) - known
        if gone:
            await self.session.execute(
                delete(TimelineDealContact).where(
                    TimelineDealContact.deal_id == deal_id, TimelineDealContact.contact_id.in_(gone)
                )
            )
        if new:
            await self.session.execute(
                insert(TimelineDealContact),
                [{"deal_id": deal_id, "contact_id": contact_id} for contact_id in sorted(new)],
            )

    async def drop_deal(self, deal_id: uuid.UUID) -> None:
        await self.session.execute(delete(TimelineDealContact).where(TimelineDealContact.deal_id == deal_id))

    async def move(self, from_contact: uuid.UUID, to_contact: uuid.UUID) -> None:
        """`from_contact`'s deals become `to_contact`'s; a deal both had keeps them once."""
        await self.session.execute(
            delete(TimelineDealContact).where(
                TimelineDealContact.contact_id == from_contact,
                TimelineDealContact.deal_id.in_(
                    select(TimelineDealContact.deal_id).where(TimelineDealContact.contact_id == to_contact)
                ),
            )
        )
        await self.session.execute(
            update(TimelineDealContact)
            .where(TimelineDealContact.contact_id == from_contact)
            .values(contact_id=to_contact)
        )

    async def forget(self, contact_ids: Collection[uuid.UUID]) -> None:
        await self.session.execute(
            delete(TimelineDealContact).where(TimelineDealContact.contact_id.in_(contact_ids))
        )

    async def survivors(self, contact_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID | None]:
        """Of `contact_ids`, those that are no more: each with its survivor, or None (erased)."""
        refs = {alias_ref(contact_id): contact_id for contact_id in contact_ids}
        if not refs:
            return {}
        rows = await self.session.execute(
            select(TimelineContactAlias.contact_ref, TimelineContactAlias.survivor_id).where(
                TimelineContactAlias.contact_ref.in_(refs)
            )
        )
        return {refs[ref]: survivor_id for ref, survivor_id in rows}

    async def set_alias(self, contact_id: uuid.UUID, survivor_id: uuid.UUID | None) -> None:
        """`contact_id` is now `survivor_id` (None: erased), and so is every contact merged into it."""
        await self.session.execute(
            update(TimelineContactAlias)
            .where(TimelineContactAlias.survivor_id == contact_id)
            .values(survivor_id=survivor_id)
        )
        await self.session.merge(
            TimelineContactAlias(contact_ref=alias_ref(contact_id), survivor_id=survivor_id)
        )
