"""Build the timeline from the stream, and keep the touchpoints, identity links and deal associations
in step with the contacts they belong to (merges repoint them, erasures delete them)."""

import uuid
from collections.abc import Collection, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from services.journeys.db import outbox
from services.journeys.identities import service as identities
from services.journeys.identities import stitching
from services.journeys.identities.models import ContactIdentityLink
from services.journeys.timeline import referrals, service
from services.journeys.timeline.models import (
    TimelineContactAlias,
    TimelineDealContact,
    TimelineEntry,
    TimelineReferralClick,
    TimelineReferralConversion,
)
from services.journeys.touchpoints import service as touchpoints
from services.journeys.touchpoints.models import Touchpoint
from shared.consumer import ConsumerSpec
from shared.db import utc_now
from shared.events import topics
from shared.events.catalog import (
    ContactConsentChanged,
    ContactCreated,
    ContactErased,
    ContactLifecycleChanged,
    ContactMerged,
    ContactUpdated,
    ErasureConfirmed,
)
from shared.events.deals import (
    DealContactAdded,
    DealContactRemoved,
    DealCreated,
    DealDeleted,
    DealLost,
    DealSnapshot,
    DealStageChanged,
    DealUpdated,
    DealWon,
)
from shared.events.envelope import Envelope
from shared.events.referrals import (
    ClickRecorded,
    CommissionApproved,
    CommissionCreated,
    CommissionPaid,
    CommissionReversed,
    ConversionRecorded,
    ConversionStatusChanged,
    ReferralRewardGranted,
)
from shared.events.touchpoints import TouchpointRecorded


async def on_contact_created(session: AsyncSession, envelope: Envelope) -> None:
    event = envelope.event
    assert isinstance(event, ContactCreated)
    await identities.learn_emails(
        session, event.contact_id, event.email_hashes, envelope.time, new_contact=True
    )
    await _stitch(session, event.contact_id, email_hashes=event.email_hashes)
    service.record(
        session,
        envelope,
        contact_id=event.contact_id,
        occurred_at=event.created_at,
        properties={"lifecycle_stage": event.lifecycle_stage, "source": event.source},
    )


async def on_contact_updated(session: AsyncSession, envelope: Envelope) -> None:
    event = envelope.event
    assert isinstance(event, ContactUpdated)
    if event.email_hashes is not None:  # null: the emails did not change
        await identities.learn_emails(session, event.contact_id, event.email_hashes, envelope.time)
        await _stitch(session, event.contact_id, email_hashes=event.email_hashes)
    service.record(
        session,
        envelope,
        contact_id=event.contact_id,
        occurred_at=event.updated_at,
        # As the event has them: values only where they are not personal data.
        properties={
            "changed_fields": list(event.changed_fields),
            "changes": {name: change.model_dump() for name, change in event.changes.items()},
        },
    )


async def on_lifecycle_changed(session: AsyncSession, envelope: Envelope) -> None:
    event = envelope.event
    assert isinstance(event, ContactLifecycleChanged)
    service.record(
        session,
        envelope,
        contact_id=event.contact_id,
        occurred_at=event.changed_at,
        properties={"from_stage": event.from_stage, "to_stage": event.to_stage, "actor": event.actor},
    )


async def on_consent_changed(session: AsyncSession, envelope: Envelope) -> None:
    event = envelope.event
    assert isinstance(event, ContactConsentChanged)
    service.record(
        session,
        envelope,
        contact_id=event.contact_id,
        occurred_at=event.changed_at,
        # The proof stays in contacts; what changed, and whether marketing may reach the person now.
        properties={
            "kind": event.kind,
            "purpose": event.purpose,
            "list_key": event.list_key,
            "status": event.status,
            "source": event.source,
            "marketing_allowed": event.marketing_allowed,
        },
    )


async def on_contact_merged(session: AsyncSession, envelope: Envelope) -> None:
    event = envelope.event
    assert isinstance(event, ContactMerged)
    await service.repoint(session, event.merged_contact_id, event.contact_id)
    await touchpoints.repoint(session, event.merged_contact_id, event.contact_id)
    await referrals.repoint(session, event.merged_contact_id, event.contact_id)
    await identities.merge(session, event.merged_contact_id, event.contact_id, envelope.time)
    service.record(
        session,
        envelope,
        contact_id=event.contact_id,
        occurred_at=event.merged_at,
        properties={"merged_contact_id": str(event.merged_contact_id), "merge_id": str(event.merge_id)},
    )


async def on_contact_erased(session: AsyncSession, envelope: Envelope) -> None:
    event = envelope.event
    assert isinstance(event, ContactErased)
    # The merged ids too: a merge into this contact may not have reached this consumer yet.
    erased = (event.contact_id, *event.merged_contact_ids)
    for contact_id in erased:
        await service.forget(session, contact_id)
    await service.forget_deals(session, erased)
    await referrals.forget(session, erased)
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
    # As it is now, not as the event said: a merge may have moved it since, stitching resolved it, and
    # an erasure that came first (another topic, so another order) deleted it; then it must not return.
    touchpoint = await touchpoints.current(session, event.touchpoint_id)
    if touchpoint is None:
        return  # erased
    if touchpoint.contact_id is None:
        # Stitching may have linked one of its identifiers while it was being recorded, too late for
        # the recording to see and too early to see it; if so it is attached now, else it waits.
        contact_id = await touchpoints.resolve_now(session, touchpoint)
        if contact_id is not None:
            hashes = [touchpoint.email_hash] if touchpoint.email_hash is not None else []
            await _stitch(session, contact_id, email_hashes=hashes, carriers=[touchpoint])
        return
    service.record_touchpoint(session, touchpoint, event_id=envelope.id)
    await _stitch(session, touchpoint.contact_id, carriers=[touchpoint])


async def on_deal_changed(session: AsyncSession, envelope: Envelope) -> None:
    """Every deal event says who the deal's contacts are now; a stage change goes on each one's
    timeline. Won and lost come with a stage change that is there already, so they add no entry."""
    event = envelope.event
    assert isinstance(event, DealSnapshot)
    contacts = await service.learn_deal(session, event)
    if not isinstance(event, DealStageChanged):
        return
    for contact_id, named in sorted(contacts.items()):
        service.record(
            session,
            envelope,
            contact_id=contact_id,
            occurred_at=event.changed_at,
            team="sales",
            named=named,
            # Ids and codes: no deal name, note or reason text is on the stream to begin with.
            properties={
                "deal_id": str(event.deal_id),
                "pipeline_id": str(event.pipeline_id),
                "from_stage": event.from_stage,
                "stage": event.stage,
                "status": event.status,
                "amount": event.amount,
                "currency": event.currency,
            },
        )


async def on_deal_deleted(session: AsyncSession, envelope: Envelope) -> None:
    event = envelope.event
    assert isinstance(event, DealDeleted)
    await service.forget_deal(session, event.deal_id)


async def _stitch(
    session: AsyncSession,
    contact_id: uuid.UUID,
    *,
    email_hashes: Collection[str] = (),
    carriers: Sequence[Touchpoint] = (),
) -> None:
    """Stitch (`stitching.stitch`): the touchpoints it attaches join the contact's timeline, and are
    announced as resolved."""
    attached = await stitching.stitch(session, contact_id, email_hashes=email_hashes, carriers=carriers)
    for touchpoint in attached:
        service.record_touchpoint(session, touchpoint, event_id=touchpoint.event_id)
    await outbox.add_many(
        session, [touchpoints.resolution(touchpoint, contact_id) for touchpoint in attached]
    )


TIMELINE_CONSUMER = ConsumerSpec(
    name="journeys.timeline",
    topics=[topics.CONTACTS, topics.TOUCHPOINTS, topics.DEALS, topics.REFERRALS],
    handlers={
        ContactCreated: on_contact_created,
        ContactUpdated: on_contact_updated,
        ContactLifecycleChanged: on_lifecycle_changed,
        ContactConsentChanged: on_consent_changed,
        ContactMerged: on_contact_merged,
        ContactErased: on_contact_erased,
        TouchpointRecorded: on_touchpoint_recorded,
        DealCreated: on_deal_changed,
        DealUpdated: on_deal_changed,
        DealStageChanged: on_deal_changed,
        DealWon: on_deal_changed,
        DealLost: on_deal_changed,
        DealContactAdded: on_deal_changed,
        DealContactRemoved: on_deal_changed,
        DealDeleted: on_deal_deleted,
        ClickRecorded: referrals.learn_click,
        ConversionRecorded: referrals.learn_conversion,
        ConversionStatusChanged: referrals.follow_up,
        CommissionCreated: referrals.follow_up,
        CommissionApproved: referrals.follow_up,
        CommissionPaid: referrals.follow_up,
        CommissionReversed: referrals.follow_up,
        ReferralRewardGranted: referrals.follow_up,
    },
    owns=[
        TimelineEntry,
        ContactIdentityLink,
        TimelineDealContact,
        TimelineContactAlias,
        TimelineReferralClick,
        TimelineReferralConversion,
    ],
    watermark=True,
)
