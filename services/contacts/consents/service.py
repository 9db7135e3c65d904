"""Consent per purpose and mailing-list subscriptions. Flushes, never commits.

Every statement is kept as a `ConsentRecord` with its source and proof; the latest per purpose and per
list is also kept on the contact, so that every read of a contact says whether marketing may reach it.
A change of status is announced as `crm.contact.consent_changed` (without the proof, which may hold an
address or the wording a person signed).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.consents.models import ConsentRecord
from services.contacts.consents.schemas import (
    ConsentChange,
    ConsentStatus,
    ConsentSummary,
    Purpose,
    SubscriptionChange,
)
from services.contacts.contacts.models import Contact
from services.contacts.contacts.repository import ContactRepository
from services.contacts.contacts.service import Author, alive
from services.contacts.db import outbox
from shared.db import utc_now
from shared.events.catalog import ContactConsentChanged
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_page

NEWEST_FIRST = Keyset(
    SortKey(ConsentRecord.recorded_at, descending=True), SortKey(ConsentRecord.id, descending=True)
)


def marketing_allowed(contact: Contact) -> bool:
    """Email marketing granted, processing not withdrawn. Silence is not consent."""
    consents = contact.consents or {}
    granted = consents.get(Purpose.EMAIL_MARKETING, {}).get("status") == ConsentStatus.GRANTED
    withdrawn = consents.get(Purpose.PROCESSING, {}).get("status") == ConsentStatus.WITHDRAWN
    return granted and not withdrawn


def summary(contact: Contact) -> ConsentSummary:
    return ConsentSummary.model_validate(
        {
            "marketing_allowed": marketing_allowed(contact),
            "consents": contact.consents or {},
            "subscriptions": contact.subscriptions or {},
        }
    )


async def _locked(session: AsyncSession, contact_id: uuid.UUID) -> Contact:
    return alive(await ContactRepository(session).get(contact_id, fresh=True, for_update=True), contact_id)


async def _record(
    session: AsyncSession,
    contact: Contact,
    *,
    kind: str,
    subject: str,
    status: str,
    source: str,
    proof: dict[str, Any],
    author: Author,
) -> None:
    now = utc_now()
    session.add(
        ConsentRecord(
            id=uuid.uuid4(),
            contact_id=contact.id,
            kind=kind,
            subject=subject,
            status=status,
            recorded_at=now,
            source=source,
            proof=proof,
            actor=author.actor,
        )
    )
    column = "consents" if kind == "consent" else "subscriptions"
    current: dict[str, Any] = dict(getattr(contact, column) or {})
    changed = current.get(subject, {}).get("status") != status
    current[subject] = {"status": status, "changed_at": now.isoformat(), "source": source}
    setattr(contact, column, current)
    contact.updated_at = now
    await session.flush()
    if changed:
        await outbox.add(
            session,
            ContactConsentChanged(
                contact_id=contact.id,
                kind=kind,
                purpose=subject if kind == "consent" else None,
                list_key=subject if kind == "subscription" else None,
                status=status,
                source=source,
                marketing_allowed=marketing_allowed(contact),
                changed_at=now,
            ),
        )


async def record_consent(
    session: AsyncSession, contact_id: uuid.UUID, change: ConsentChange, author: Author
) -> ConsentSummary:
    contact = await _locked(session, contact_id)
    await _record(
        session,
        contact,
        kind="consent",
        subject=change.purpose.value,
        status=change.status.value,
        source=change.source,
        proof=change.proof.model_dump(exclude_none=True),
        author=author,
    )
    return summary(contact)


async def set_subscription(
    session: AsyncSession, contact_id: uuid.UUID, list_key: str, change: SubscriptionChange, author: Author
) -> ConsentSummary:
    contact = await _locked(session, contact_id)
    await _record(
        session,
        contact,
        kind="subscription",
        subject=list_key,
        status=change.status.value,
        source=change.source,
        proof=change.proof.model_dump(exclude_none=True) if change.proof else {},
        author=author,
    )
    return summary(contact)


async def get_summary(session: AsyncSession, contact_id: uuid.UUID) -> ConsentSummary:
    return summary(alive(await ContactRepository(session).get(contact_id), contact_id))


async def history(session: AsyncSession, contact_id: uuid.UUID, page: PageRequest) -> Slice[ConsentRecord]:
    alive(await ContactRepository(session).get(contact_id), contact_id)
    statement = select(ConsentRecord).where(ConsentRecord.contact_id == contact_id)
    return await fetch_page(session, statement, NEWEST_FIRST, page)
