"""Build the timeline from the stream."""

from sqlalchemy.ext.asyncio import AsyncSession

from services.journeys.db import outbox
from services.journeys.identities import service as identities
from services.journeys.identities.models import ContactIdentityLink
from services.journeys.timeline import service
from services.journeys.timeline.models import TimelineEntry
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


TIMELINE_CONSUMER = ConsumerSpec(
    name="journeys.timeline",
    topics=[topics.CONTACTS],
    handlers={
        ContactCreated: on_contact_created,
        ContactUpdated: on_contact_updated,
        ContactMerged: on_contact_merged,
        ContactErased: on_contact_erased,
    },
    owns=[TimelineEntry, ContactIdentityLink],
)
