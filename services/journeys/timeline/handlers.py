"""Build the timeline from the stream, and keep the touchpoints and identity links in step with the
contacts they belong to (merges repoint them, erasures delete them)."""

from sqlalchemy.ext.asyncio import AsyncSession

from services.journeys.db import outbox
from services.journeys.identities import service as identities
from services.journeys.identities.models import ContactIdentityLink
from services.journeys.timeline import service
from services.journeys.timeline.models import TimelineEntry
from services.journeys.touchpoints import service as touchpoints
from shared.consumer import ConsumerSpec
from shared.db import utc_now
from shared.events import topics
from shared.events.catalog import (
    ContactCreated,
    ContactErased,
    ContactMerged,
    ContactUpdated,
    ErasureConfirmed,
)
from shared.events.envelope import Envelope
from shared.events.touchpoints import TouchpointRecorded


async def on_contact_created(session: AsyncSession, envelope: Envelope) -> None:
    event = envelope.event
    assert isinstance(event, ContactCreated)
    await identities.learn_emails(session, event.contact_id, event.email_hashes, envelope.time)
    service.record(
        session,
        envelope,
        contact_id=event.contact_id,
        properties={"lifecycle_stage": event.lifecycle_stage, "source": event.source},
    )


async def on_contact_updated(session: AsyncSession, envelope: Envelope) -> None:
    event = envelope.event
    assert isinstance(event, ContactUpdated)
    if event.email_hashes is not None:  # null: the emails did not change
        await identities.learn_emails(session, event.contact_id, event.email_hashes, envelope.time)
    service.record(
        session,
        envelope,
        contact_id=event.contact_id,
        # As the event has them: values only where they are not personal data.
        properties={
            "changed_fields": list(event.changed_fields),
            "changes": {name: change.model_dump() for name, change in event.changes.items()},
        },
    )


async def on_contact_merged(session: AsyncSession, envelope: Envelope) -> None:
    event = envelope.event
    assert isinstance(event, ContactMerged)
    await service.repoint(session, event.merged_contact_id, event.contact_id)
    await touchpoints.repoint(session, event.merged_contact_id, event.contact_id)
    await identities.merge(session, event.merged_contact_id, event.contact_id, envelope.time)
    service.record(
        session,
        envelope,
        contact_id=event.contact_id,
        properties={"merged_contact_id": str(event.merged_contact_id), "merge_id": str(event.merge_id)},
    )


async def on_contact_erased(session: AsyncSession, envelope: Envelope) -> None:
    event = envelope.event
    assert isinstance(event, ContactErased)
    # The merged ids too: a merge into this contact may not have reached this consumer yet.
    erased = (event.contact_id, *event.merged_contact_ids)
    for contact_id in erased:
        await service.forget(session, contact_id)
    await touchpoints.forget(session, erased)  # before the links it follows go
    await identities.forget(session, erased)
    await outbox.add(
        session,
        ErasureConfirmed(
            receipt_id=event.receipt_id,
            contact_id=event.contact_id,
            service="journeys",
            confirmed_at=utc_now(),
        ),
    )


async def on_touchpoint_recorded(session: AsyncSession, envelope: Envelope) -> None:
    event = envelope.event
    assert isinstance(event, TouchpointRecorded)
    # Whose it is now, not whose the event said: a merge may have moved it since, and an erasure that
    # came first (another topic, so another order) deleted it, and then it must not come back here.
    contact_id = await touchpoints.contact_of(session, event.touchpoint_id)
    if contact_id is None:
        return  # unresolved (it joins a timeline once its person is known), or erased
    service.record(
        session,
        envelope,
        contact_id=contact_id,
        occurred_at=event.occurred_at,
        kind=event.touchpoint_type,
        team=event.team,
        channel=event.channel,
        properties={
            "channel": event.channel,
            "type": event.touchpoint_type,
            "stage": event.stage,
            "team": event.team,
            "campaign": event.campaign,
            "content_id": event.content_id,
            "revenue": event.revenue,
            "currency": event.currency,
            "order_id": event.order_id,
            "score": event.score,
        },
    )


TIMELINE_CONSUMER = ConsumerSpec(
    name="journeys.timeline",
    topics=[topics.CONTACTS, topics.TOUCHPOINTS],
    handlers={
        ContactCreated: on_contact_created,
        ContactUpdated: on_contact_updated,
        ContactMerged: on_contact_merged,
        ContactErased: on_contact_erased,
        TouchpointRecorded: on_touchpoint_recorded,
    },
    owns=[TimelineEntry, ContactIdentityLink],
    watermark=True,
)
