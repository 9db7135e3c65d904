"""Erasure: a person's data removed here for good, every other service told, a receipt to follow it.

What stays of an erased contact is a tombstone that holds no personal data: its id, when it was created
and erased, and what the KPIs count (lifecycle stage, owner, region, source, the counters), so totals
over the past do not change. Identities, tags, custom values, property history, lifecycle reasons,
consent records and entries (notes, reviews, ratings, feedback: free text about the person) are
deleted. Reads of the contact answer 410. Events never carried personal data, so the log needs no
rewriting (see `shared.events.catalog`); the scores announced stay counted, without the person.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.consents.models import ConsentRecord
from services.contacts.contacts.models import (
    ContactIdentity,
    ContactTag,
    LifecycleTransition,
    PropertyChange,
)
from services.contacts.contacts.repository import ContactRepository
from services.contacts.contacts.service import Author, ContactNotFound
from services.contacts.db import outbox
from services.contacts.entries.models import ContactEntry
from services.contacts.erasure.models import ErasureConfirmation, ErasureReceipt
from services.contacts.merges.models import ContactMerge
from services.contacts.properties.models import CustomValue
from services.contacts.properties.schemas import ObjectType
from shared.db import utc_now
from shared.errors import NotFound
from shared.events.catalog import ContactErased, ErasureConfirmed

SERVICE = "contacts"
# Every service that holds data about people, and so must confirm.
CONFIRMING_SERVICES = ("contacts", "journeys", "referrals", "kpi")
# Columns that may identify the person; the others (stage, owner, region, source, counters) stay.
PERSONAL_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "phone",
    "mobile_phone",
    "street",
    "city",
    "postal_code",
    "state",
    "country",
    "birthday",
    "job_title",
    "company_name",
    "last_activity_at",
    "last_web_activity_at",
)


class ReceiptNotFound(NotFound):
    def __init__(self, receipt_id: uuid.UUID) -> None:
        super().__init__("Erasure receipt", receipt_id)


async def erase_contact(session: AsyncSession, contact_id: uuid.UUID, author: Author) -> ErasureReceipt:
    """Erase the contact and announce it as `crm.contact.erased`; asked again, the same receipt."""
    contact = await ContactRepository(session).get(contact_id, fresh=True, for_update=True)
    if contact is None:
        raise ContactNotFound(contact_id)
    if contact.erased_at is not None:
        receipt = await session.scalar(select(ErasureReceipt).where(ErasureReceipt.contact_id == contact_id))
        assert receipt is not None
        return receipt
    now = utc_now()
    for name in PERSONAL_COLUMNS:
        setattr(contact, name, None)
    contact.properties, contact.consents, contact.subscriptions = {}, {}, {}
    contact.erased_at = contact.updated_at = now
    for table, owner in (
        (ContactIdentity, ContactIdentity.contact_id),
        (ContactTag, ContactTag.contact_id),
        (PropertyChange, PropertyChange.contact_id),
        (LifecycleTransition, LifecycleTransition.contact_id),
        (ConsentRecord, ConsentRecord.contact_id),
        (ContactEntry, ContactEntry.contact_id),
    ):
        await session.execute(delete(table).where(owner == contact_id))
    await session.execute(
        delete(CustomValue).where(
            CustomValue.object_type == ObjectType.CONTACT.value, CustomValue.object_id == contact_id
        )
    )
    # What the merges into it kept of the merged contacts is this person's data too.
    # The rules that matched, the decisions and the counts stay; what named the person goes.
    merges = list(await session.scalars(select(ContactMerge).where(ContactMerge.survivor_id == contact_id)))
    for merge in merges:
        merge.merged_snapshot = merge.reason = None
        merge.matched = [{**reason, "detail": "erased"} for reason in merge.matched]
    merged_ids = [merge.merged_id for merge in merges]
    receipt = ErasureReceipt(id=uuid.uuid4(), contact_id=contact_id, requested_at=now, actor=author.actor)
    session.add(receipt)
    await session.flush()
    session.add(ErasureConfirmation(receipt_id=receipt.id, service=SERVICE, confirmed_at=now))
    await session.flush()
    await outbox.add(
        session,
        ContactErased(
            contact_id=contact_id, merged_contact_ids=merged_ids, receipt_id=receipt.id, erased_at=now
        ),
    )
    # On the stream as well, like every other service's: the receipt's confirmations are a view of the
    # stream, and `crm replay` rebuilds them from it.
    await outbox.add(
        session,
        ErasureConfirmed(receipt_id=receipt.id, contact_id=contact_id, service=SERVICE, confirmed_at=now),
    )
    return receipt


async def get_receipt(
    session: AsyncSession, receipt_id: uuid.UUID
) -> tuple[ErasureReceipt, dict[str, ErasureConfirmation]]:
    receipt = await session.get(ErasureReceipt, receipt_id)
    if receipt is None:
        raise ReceiptNotFound(receipt_id)
    rows = await session.scalars(
        select(ErasureConfirmation).where(ErasureConfirmation.receipt_id == receipt_id)
    )
    return receipt, {row.service: row for row in rows}


async def confirm(session: AsyncSession, receipt_id: uuid.UUID, service: str, confirmed_at: datetime) -> None:
    """Record a service's confirmation; a repeat, or one for a receipt this service never issued, is
    ignored (the consumer's processed-event log already drops redelivered records)."""
    if await session.get(ErasureReceipt, receipt_id) is None:
        return
    if await session.get(ErasureConfirmation, (receipt_id, service)) is None:
        session.add(ErasureConfirmation(receipt_id=receipt_id, service=service, confirmed_at=confirmed_at))
        await session.flush()
