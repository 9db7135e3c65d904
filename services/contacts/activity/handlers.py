"""Count touchpoints on the contacts they belong to."""

from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.activity import service
from shared.consumer import ConsumerSpec
from shared.events import topics
from shared.events.envelope import Envelope
from shared.events.touchpoints import TouchpointRecorded, TouchpointResolved
from shared.settings import platform_of


async def on_touchpoint(session: AsyncSession, envelope: Envelope) -> None:
    """A touchpoint counts once: when it is recorded with its contact, or, recorded while its person was
    unknown, when it is resolved to the contact later."""
    event = envelope.event
    assert isinstance(event, TouchpointRecorded | TouchpointResolved)
    await service.count(session, event, platform_of(session).reporting_currency)


ACTIVITY_CONSUMER = ConsumerSpec(
    name="contacts.activity",
    topics=[topics.TOUCHPOINTS],
    handlers={TouchpointRecorded: on_touchpoint, TouchpointResolved: on_touchpoint},
    # It owns no table: the counters are columns of `contact`, which merges sum and erasures keep.
    replay_refused=(
        "its counters live on the contacts, which merges sum and erased contacts keep; replaying "
        "crm.touchpoints would count every touchpoint again, and emptying them would lose what "
        "merged and erased contacts hold"
    ),
)
