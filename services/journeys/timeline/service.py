"""Timeline rules. Never commits: entries go out with the consumer's batch."""

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.journeys.db import outbox, tables
from services.journeys.timeline.models import TimelineEntry
from services.journeys.timeline.repository import DealContactRepository, TimelineFilter, TimelineRepository
from services.journeys.touchpoints.models import Touchpoint
from shared.consumer import ConsumerSpec, complete_before
from shared.db import utc_now
from shared.events.deals import DealSnapshot
from shared.events.envelope import Envelope
from shared.events.touchpoints import TouchpointRecorded
from shared.pagination import PageRequest, Slice

_ENTRY_IDS = uuid.UUID("6f1d3c2a-8f0e-4c55-9d59-3b0a3d1e7c11")


def _entry_id(event_id: str, named: uuid.UUID | None = None) -> uuid.UUID:
    """Derived from the event, so a view rebuilt by replay has the same ids as the live one; when one
    event goes on several timelines, from the contact id it named too. Named, not resolved: an entry
    made before a merge and moved by it keeps the id it would have had if the merge came first."""
    return uuid.uuid5(_ENTRY_IDS, event_id if named is None else f"{event_id}/{named}")


def record(
    session: AsyncSession,
    envelope: Envelope,
    *,
    contact_id: uuid.UUID,
    properties: dict[str, Any],
    occurred_at: datetime | None = None,
    kind: str | None = None,
    team: str | None = None,
    channel: str | None = None,
    named: uuid.UUID | None = None,
) -> None:
    """Add the event to the contact's timeline, at `occurred_at` (a touchpoint's own time), else at the
    time the event was made. `kind` is what the `type` filter matches (a touchpoint's own type; by
    default the event type); `team` and `channel` are what those filters match (null: none).
    `named`: for an event that goes on several contacts' timelines (a deal's move), the contact id the
    event gave for this one, which the entry's id derives from."""
    TimelineRepository(session).append(
        {
            "id": _entry_id(envelope.id, named),
            "contact_id": contact_id,
            "event_id": envelope.id,
            "event_type": envelope.type,
            "source": envelope.source,
            "occurred_at": occurred_at or envelope.time,
            "team": team,
            "channel": channel,
            "kind": kind or envelope.type,
            "properties": properties,
            "recorded_at": utc_now(),
        }
    )


def record_learnt(
    session: AsyncSession,
    *,
    event_id: str,
    event_type: str,
    source: str,
    contact_id: uuid.UUID,
    occurred_at: datetime,
    properties: dict[str, Any],
    team: str | None = None,
    channel: str | None = None,
) -> None:
    """Add an event met earlier, which named no one then, to a contact's timeline now that it is known
    to be theirs (a referral click, once a conversion names it): once, however often it is learnt."""
    TimelineRepository(session).append(
        {
            "id": _entry_id(event_id),
            "contact_id": contact_id,
            "event_id": event_id,
            "event_type": event_type,
            "source": source,
            "occurred_at": occurred_at,
            "team": team,
            "channel": channel,
            "kind": event_type,
            "properties": properties,
            "recorded_at": utc_now(),
        },
        unless_present=True,
    )


def record_touchpoint(session: AsyncSession, touchpoint: Touchpoint, *, event_id: str) -> None:
    """Add the touchpoint to its contact's timeline as the entry of its `crm.touchpoint.recorded`
    (`event_id`), whether that event brings it or stitching does later: the entry is made once."""
    assert touchpoint.contact_id is not None
    TimelineRepository(session).append(
        {
            "id": _entry_id(event_id),
            "contact_id": touchpoint.contact_id,
            "event_id": event_id,
            "event_type": TouchpointRecorded.model_fields["type"].default,
            "source": outbox.source,
            "occurred_at": touchpoint.occurred_at,
            "team": touchpoint.team,
            "channel": touchpoint.channel,
            "kind": touchpoint.type,
            "properties": {
                "channel": touchpoint.channel,
                "type": touchpoint.type,
                "stage": touchpoint.stage,
                "team": touchpoint.team,
                "campaign": touchpoint.campaign,
                "content_id": touchpoint.content_id,
                "revenue": touchpoint.revenue,
                "currency": touchpoint.currency,
                "order_id": touchpoint.order_id,
                "score": touchpoint.score,
            },
            "recorded_at": utc_now(),
        },
        unless_present=True,
    )


async def timeline(
    session: AsyncSession, contact_id: uuid.UUID, found: TimelineFilter, page: PageRequest
) -> Slice[TimelineEntry]:
    """Oldest first (`repository.OLDEST_FIRST`), only the entries `found` keeps."""
    return await TimelineRepository(session).for_contact(contact_id, found, page)


async def completeness(session: AsyncSession, consumer: ConsumerSpec) -> dict[str, datetime | None]:
    """Per topic the timeline is built from: the instant before which every event the stream accepted
    is on the timeline (None while unknown). Read before the entries, so that what it claims was
    already committed when they are read."""
    return await complete_before(session, tables.consumer_tables, consumer)


async def forget(session: AsyncSession, contact_id: uuid.UUID) -> None:
    """Erasure: the contact's timeline goes, every entry of it."""
    await TimelineRepository(session).delete_for_contact(contact_id)


async def repoint(session: AsyncSession, merged_id: uuid.UUID, survivor_id: uuid.UUID) -> None:
    """A merge: the merged contact's entries become the survivor's, in their places by time (one that
    both had stays once), and so do its deals; a deal event naming it later goes to the survivor."""
    await TimelineRepository(session).move(merged_id, survivor_id)
    deals = DealContactRepository(session)
    await deals.move(merged_id, survivor_id)
    await deals.set_alias(merged_id, survivor_id)


async def forget_deals(session: AsyncSession, contact_ids: Collection[uuid.UUID]) -> None:
    """Erasure: the people's deal associations go, and a deal event naming them later is put on no
    timeline."""
    deals = DealContactRepository(session)
    await deals.forget(contact_ids)
    for contact_id in contact_ids:
        await deals.set_alias(contact_id, None)


async def learn_deal(session: AsyncSession, event: DealSnapshot) -> dict[uuid.UUID, uuid.UUID]:
    """The deal's contacts after `event`, each with the id the event named it by. The event's
    `contact_ids` replace what was known (a deal's events come in order, on one key), each as the
    contact it is now: one merged since as its survivor, one erased not at all (a merge or erasure
    travels on another topic, so it may have been applied first). An event of an older version does
    not say (null): the contacts known stay."""
    deals = DealContactRepository(session)
    if event.contact_ids is None:
        return {contact_id: contact_id for contact_id in await deals.contacts_of(event.deal_id)}
    gone = await deals.survivors(event.contact_ids)
    current: dict[uuid.UUID, uuid.UUID] = {}
    for named in sorted(event.contact_ids):
        now = gone.get(named, named)
        # Two named ids of one person now: the survivor's own wins, as a later merge would keep it.
        if now is not None and (now not in current or named == now):
            current[now] = named
    await deals.replace(event.deal_id, current)
    return current


async def forget_deal(session: AsyncSession, deal_id: uuid.UUID) -> None:
    """A deal was deleted: it has no contacts any more. Its moves stay on the timelines: they happened."""
    await DealContactRepository(session).drop_deal(deal_id)
