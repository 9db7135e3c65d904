"""Exports: the whole contact base as a stream, and everything held about one person.

The stream reads the contacts in pages of `CHUNK`, each page in its own short read, walking a keyset
(oldest first), so memory stays flat however many contacts there are, and no transaction is held open
for the length of a download. A contact written during the walk may or may not be in it; none appears
twice.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.consents.models import ConsentRecord
from services.contacts.contacts.models import Contact, LifecycleTransition, PropertyChange
from services.contacts.contacts.repository import WITH_DETAILS, ContactRepository
from services.contacts.contacts.service import SCALARS, ContactDetails, alive
from services.contacts.entries.repository import EntryRepository
from services.contacts.properties.repository import PropertyRepository
from services.contacts.properties.schemas import ObjectType
from shared.db import Database, read_scope
from shared.pagination import Keyset, PageRequest, SortKey, fetch_page

CHUNK = 500
OLDEST_FIRST = Keyset(SortKey(Contact.created_at), SortKey(Contact.id))
# What the other services hold about a person, and where to read it: a data-access request names them.
ELSEWHERE: list[dict[str, str | None]] = [
    {
        "service": "journeys",
        "holds": "Touchpoints and the timeline of the person's interactions (by contact id).",
        "read_at": "/journeys/v1/contacts/{id}/timeline",
    },
    {
        "service": "referrals",
        "holds": "Referral links, clicks, conversions and rewards attributed to the person.",
        "read_at": "/referrals/v1/conversions?contact_id={id}",
    },
    {
        "service": "kpi",
        "holds": "Aggregates only: counts and sums in which the person is one of many; nothing per person.",
        "read_at": None,
    },
]


async def rendered_in_chunks(
    database: Database, render: Callable[[ContactDetails], str]
) -> AsyncIterator[str]:
    """Every contact not erased, oldest first, rendered by `render`: one string per chunk."""
    after: tuple[Any, ...] | None = None
    while True:
        async with read_scope(database) as session:
            statement = select(Contact).where(Contact.erased_at.is_(None)).options(*WITH_DETAILS)
            page = await fetch_page(session, statement, OLDEST_FIRST, PageRequest(limit=CHUNK, after=after))
            # Rendered inside the read: its end expires what it loaded.
            chunk = "".join(render(ContactDetails.loaded(contact)) for contact in page.items)
            last = OLDEST_FIRST.position_of(page.items[-1]) if page.items else None
        if chunk:
            yield chunk
        if page.next_cursor is None:
            return
        after = last


async def property_keys(database: Database) -> list[str]:
    async with read_scope(database) as session:
        return sorted(await PropertyRepository(session).of_type(ObjectType.CONTACT))


def csv_columns(keys: list[str]) -> list[str]:
    return [
        "id",
        *SCALARS,
        "emails",
        "tags",
        "external_ids",
        "anonymous_ids",
        "marketing_allowed",
        "visits",
        "purchases",
        "revenue_minor",
        "created_at",
        "updated_at",
        *(f"properties.{key}" for key in keys),
    ]


def csv_line(values: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        return ";".join(str(item) for item in value)
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def csv_row(details: ContactDetails, keys: list[str], marketing_allowed: Callable[[Contact], bool]) -> str:
    contact = details.contact
    values = [
        contact.id,
        *(getattr(contact, name) for name in SCALARS),
        details.emails,
        details.tags,
        [f"{ext['system']}:{ext['id']}" for ext in details.external_ids],
        details.anonymous_ids,
        marketing_allowed(contact),
        contact.visits,
        contact.purchases,
        contact.revenue_minor,
        contact.created_at,
        contact.updated_at,
        *(contact.properties.get(key) for key in keys),
    ]
    return csv_line([_cell(value) for value in values])


async def person_data(session: AsyncSession, contact_id: uuid.UUID) -> dict[str, Any]:
    """Everything this service holds about the person, and what the others hold."""
    contact = alive(await ContactRepository(session).get(contact_id), contact_id)

    async def every(model: Any, owner: Any, order: Any) -> list[Any]:
        return list(await session.scalars(select(model).where(owner == contact_id).order_by(order)))

    return {
        "details": ContactDetails.loaded(contact),
        "history": await every(PropertyChange, PropertyChange.contact_id, PropertyChange.changed_at),
        "lifecycle": await every(
            LifecycleTransition, LifecycleTransition.contact_id, LifecycleTransition.changed_at
        ),
        "consents": await every(ConsentRecord, ConsentRecord.contact_id, ConsentRecord.recorded_at),
        "entries": await EntryRepository(session).oldest_first(contact_id),
        "elsewhere": [{**entry, "read_at": _at(entry["read_at"], contact_id)} for entry in ELSEWHERE],
    }


def _at(template: str | None, contact_id: uuid.UUID) -> str | None:
    return template.replace("{id}", str(contact_id)) if template else None
