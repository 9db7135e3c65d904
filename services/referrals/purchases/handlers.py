"""Consumer `referrals.purchases`: purchases on `crm.touchpoints`, as sales of the programs that count
them (`service`)."""

from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.purchases import service
from shared.consumer import ConsumerSpec
from shared.events import topics
from shared.events.envelope import Envelope
from shared.events.touchpoints import TouchpointRecorded, TouchpointResolved

PURCHASE_CHANNEL = "purchase"


async def on_touchpoint(session: AsyncSession, envelope: Envelope) -> None:
    """A purchase of a known contact: recorded with one, or resolved to one later (stitching)."""
    event = envelope.event
    assert isinstance(event, TouchpointRecorded | TouchpointResolved)
    if event.channel != PURCHASE_CHANNEL or event.contact_id is None:
        return
    await service.count_purchase(
        session,
        touchpoint_id=event.touchpoint_id,
        contact_id=event.contact_id,
        order_id=event.order_id,
        revenue=event.revenue,
        currency=event.currency,
        occurred_at=event.occurred_at,
    )


PURCHASES_CONSUMER = ConsumerSpec(
    name="referrals.purchases",
    topics=[topics.TOUCHPOINTS],
    handlers={TouchpointRecorded: on_touchpoint, TouchpointResolved: on_touchpoint},
    # Its effects are conversions and commissions, which a replay must not empty nor make again.
    replay_refused="it records conversions and commissions, which are not a view it could rebuild",
)
