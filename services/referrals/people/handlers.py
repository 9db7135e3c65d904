"""Consumer `referrals.people`: the contacts events referrals needs to match, move and erase people."""

from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.db import outbox
from services.referrals.people import service
from services.referrals.people.models import ContactEmail
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
    await service.learn_emails(session, event.contact_id, event.email_hashes)


async def on_contact_updated(session: AsyncSession, envelope: Envelope) -> None:
    event = envelope.event
    assert isinstance(event, ContactUpdated)
    if event.email_hashes is not None:  # null: the emails did not change
        await service.learn_emails(session, event.contact_id, event.email_hashes)


async def on_contact_merged(session: AsyncSession, envelope: Envelope) -> None:
    event = envelope.event
    assert isinstance(event, ContactMerged)
    await service.repoint(session, event.merged_contact_id, event.contact_id)


async def on_contact_erased(session: AsyncSession, envelope: Envelope) -> None:
    event = envelope.event
    assert isinstance(event, ContactErased)
    # The merged ids too: a merge into this contact may not have reached this consumer yet.
    await service.forget(session, (event.contact_id, *event.merged_contact_ids))
    await outbox.add(
        session,
        ErasureConfirmed(
            receipt_id=event.receipt_id,
            contact_id=event.contact_id,
            service="referrals",
            confirmed_at=utc_now(),
        ),
    )


PEOPLE_CONSUMER = ConsumerSpec(
    name="referrals.people",
    topics=[topics.CONTACTS],
    handlers={
        ContactCreated: on_contact_created,
        ContactUpdated: on_contact_updated,
        ContactMerged: on_contact_merged,
        ContactErased: on_contact_erased,
    },
    owns=[ContactEmail],
)
