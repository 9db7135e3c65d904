"""Duplicate candidates: other contacts that may be the same person, each with a score and its reasons.

Three rules, each a reason with its own weight:
- `email`: an address that reaches the same mailbox (`matching.canonical_email`: case, `+tags`, and the
  dots Gmail ignores); exact repeats cannot happen, emails are unique identities;
- `phone`: the same phone number (E.164, so formatting never hides a match), as phone or mobile;
- `name_and_company`: names at least `NAME_THRESHOLD` alike (accents, case and order aside) at the same
  company, by name or by association.
Reasons combine as independent evidence: 1 - Π(1 - weight).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.companies.models import CompanyContact
from services.contacts.contacts.matching import name_similarity
from services.contacts.contacts.models import Contact, ContactIdentity
from services.contacts.contacts.repository import ContactRepository
from services.contacts.contacts.schemas import EMAIL
from services.contacts.contacts.service import alive

EMAIL_WEIGHT = 0.95
PHONE_WEIGHT = 0.8
NAME_WEIGHT = 0.75
NAME_THRESHOLD = 0.85
# At most this many colleagues are compared by name: a company of thousands is not a duplicate hunt.
COLLEAGUES_COMPARED = 500


@dataclass(frozen=True)
class Reason:
    rule: str
    detail: str
    weight: float


@dataclass
class Candidate:
    contact: Contact
    reasons: list[Reason] = field(default_factory=list)

    @property
    def score(self) -> float:
        unlikely = 1.0
        for reason in self.reasons:
            unlikely *= 1.0 - reason.weight
        return round(1.0 - unlikely, 4)


async def find_duplicates(session: AsyncSession, contact_id: uuid.UUID, limit: int) -> list[Candidate]:
    """The contacts that may be the same person as this one, the likeliest first."""
    contact = alive(await ContactRepository(session).get(contact_id), contact_id)
    return (await candidates_for(session, contact))[:limit]


async def candidates_for(session: AsyncSession, contact: Contact) -> list[Candidate]:
    found: dict[uuid.UUID, Candidate] = {}

    async def load(ids: set[uuid.UUID]) -> dict[uuid.UUID, Contact]:
        ids -= {contact.id}
        if not ids:
            return {}
        rows = await session.scalars(select(Contact).where(Contact.id.in_(ids), Contact.erased_at.is_(None)))
        return {row.id: row for row in rows}

    def add(other: Contact, reason: Reason) -> None:
        found.setdefault(other.id, Candidate(other)).reasons.append(reason)

    mine = {i.canonical: i.value for i in contact.identities if i.namespace == EMAIL and i.canonical}
    if mine:
        rows = (
            await session.execute(
                select(ContactIdentity.contact_id, ContactIdentity.value, ContactIdentity.canonical).where(
                    ContactIdentity.canonical.in_(mine), ContactIdentity.contact_id != contact.id
                )
            )
        ).all()
        others = await load({row.contact_id for row in rows})
        for other_id, value, canonical in rows:
            if other_id in others and canonical is not None:
                detail = f"{value} reaches the same mailbox as {mine[canonical]}"
                add(others[other_id], Reason("email", detail, EMAIL_WEIGHT))

    phones = {number for number in (contact.phone, contact.mobile_phone) if number}
    if phones:
        ids = await session.scalars(
            select(Contact.id).where(or_(Contact.phone.in_(phones), Contact.mobile_phone.in_(phones)))
        )
        for other in (await load(set(ids))).values():
            shared = sorted(phones & {other.phone, other.mobile_phone})
            add(other, Reason("phone", f"the same phone number {', '.join(shared)}", PHONE_WEIGHT))

    if contact.first_name or contact.last_name:
        for other, company in await _colleagues(session, contact):
            similarity = name_similarity(
                (contact.first_name, contact.last_name), (other.first_name, other.last_name)
            )
            if similarity >= NAME_THRESHOLD:
                detail = f"names {similarity:.0%} alike, both at {company}"
                add(other, Reason("name_and_company", detail, round(NAME_WEIGHT * similarity, 4)))

    return sorted(found.values(), key=lambda candidate: (-candidate.score, str(candidate.contact.id)))


async def _colleagues(session: AsyncSession, contact: Contact) -> list[tuple[Contact, str]]:
    """Contacts at the same company: the same company name (any case), or an association with one of
    this contact's companies."""
    conditions = []
    if contact.company_name:
        # Served by ix_contact_company_name_lower.
        conditions.append(func.lower(Contact.company_name) == contact.company_name.lower())
    companies = select(CompanyContact.company_id).where(CompanyContact.contact_id == contact.id)
    colleagues = select(CompanyContact.contact_id).where(CompanyContact.company_id.in_(companies))
    conditions.append(Contact.id.in_(colleagues))
    rows = await session.scalars(
        select(Contact)
        .where(or_(*conditions), Contact.id != contact.id, Contact.erased_at.is_(None))
        .limit(COLLEAGUES_COMPARED)
    )
    return [(row, row.company_name or contact.company_name or "an associated company") for row in rows]
