"""Collect the other services' erasure confirmations onto their receipts."""

from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.erasure import service
from services.contacts.erasure.models import ErasureConfirmation
from shared.consumer import ConsumerSpec
from shared.events import topics
from shared.events.catalog import ErasureConfirmed
from shared.events.envelope import Envelope


async def on_erasure_confirmed(session: AsyncSession, envelope: Envelope) -> None:
    event = envelope.event
    assert isinstance(event, ErasureConfirmed)
    await service.confirm(session, event.receipt_id, event.service, event.confirmed_at)


ERASURE_CONSUMER = ConsumerSpec(
    name="contacts.erasures",
    topics=[topics.PRIVACY],
    handlers={ErasureConfirmed: on_erasure_confirmed},
    owns=[ErasureConfirmation],
)
