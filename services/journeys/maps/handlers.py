"""Keep each contact's stage per journey from the stream (consumer `journeys.maps`).

Touchpoints count once their person is known: `crm.touchpoint.recorded` with a contact, or
`crm.touchpoint.resolved` when stitching names the person later. Either is applied to whoever the
touchpoint belongs to now (a merge may have moved it, an erasure deleted it). Contact events enter
stages by their creation and lifecycle stage; merges and erasures move and delete what is kept here.
"""

from sqlalchemy.ext.asyncio import AsyncSession

from services.journeys.maps import progress
from services.journeys.maps.models import JourneyContactAlias, JourneyContactStage, JourneyStageEvent
from services.journeys.maps.rules import (
    Fact,
    contact_created_fact,
    contact_updated_fact,
    lifecycle_changed_fact,
    touchpoint_fact,
)
from services.journeys.touchpoints import service as touchpoints
from shared.consumer import ConsumerSpec
from shared.events import topics
from shared.events.catalog import (
    ContactCreated,
    ContactErased,
    ContactLifecycleChanged,
    ContactMerged,
    ContactUpdated,
)
from shared.events.envelope import Envelope
from shared.events.touchpoints import TouchpointRecorded, TouchpointResolved


async def on_touchpoint(session: AsyncSession, envelope: Envelope) -> None:
    event = envelope.event
    assert isinstance(event, TouchpointRecorded | TouchpointResolved)
    touchpoint = await touchpoints.current(session, event.touchpoint_id)
    if touchpoint is None or touchpoint.contact_id is None:
        return  # erased, or unresolved (its `resolved` event will come)
    await progress.apply(
        session, envelope, contact_id=touchpoint.contact_id, fact=touchpoint_fact(event), at=event.occurred_at
    )


async def _contact_fact(session: AsyncSession, envelope: Envelope, fact: Fact | None) -> None:
    contact_id = getattr(envelope.event, "contact_id")  # noqa: B009 (every contact event has one)
    if fact is not None:
        await progress.apply(session, envelope, contact_id=contact_id, fact=fact, at=envelope.time)


async def on_contact_created(session: AsyncSession, envelope: Envelope) -> None:
    assert isinstance(envelope.event, ContactCreated)
    await _contact_fact(session, envelope, contact_created_fact(envelope.event))


async def on_lifecycle_changed(session: AsyncSession, envelope: Envelope) -> None:
    assert isinstance(envelope.event, ContactLifecycleChanged)
    await _contact_fact(session, envelope, lifecycle_changed_fact(envelope.event))


async def on_contact_updated(session: AsyncSession, envelope: Envelope) -> None:
    assert isinstance(envelope.event, ContactUpdated)
    await _contact_fact(session, envelope, contact_updated_fact(envelope.event))


async def on_contact_merged(session: AsyncSession, envelope: Envelope) -> None:
    event = envelope.event
    assert isinstance(event, ContactMerged)
    await progress.merge(session, event.merged_contact_id, event.contact_id)


async def on_contact_erased(session: AsyncSession, envelope: Envelope) -> None:
    event = envelope.event
    assert isinstance(event, ContactErased)
    # The merged ids too: a merge into this contact may not have reached this consumer yet.
    await progress.forget(session, (event.contact_id, *event.merged_contact_ids))


MAPS_CONSUMER = ConsumerSpec(
    name="journeys.maps",
    topics=[topics.CONTACTS, topics.TOUCHPOINTS],
    handlers={
        ContactCreated: on_contact_created,
        ContactUpdated: on_contact_updated,
        ContactLifecycleChanged: on_lifecycle_changed,
        ContactMerged: on_contact_merged,
        ContactErased: on_contact_erased,
        TouchpointRecorded: on_touchpoint,
        TouchpointResolved: on_touchpoint,
    },
    # The definitions are not the view (the API writes them), nor are the announcements (kept so a
    # rebuild announces no entry twice): replay leaves both.
    owns=[JourneyStageEvent, JourneyContactStage, JourneyContactAlias],
)
