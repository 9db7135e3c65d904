"""What referrals does when contacts says a person changed, merged or was erased. Flushes, never commits.

Erasure keeps the money and strips the person. Conversions, commissions and payouts stay, since they are
the accounts between the business and its affiliates, and a clawback may still need them. What tied them
to the person goes: the contact id, the advertiser's customer id and the email hash on conversions; the
IP hash, user agent, referrer and contact id on the person's clicks and on every click from the same
browser; and the name, email and contact of an affiliate who was that person.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import ColumnElement, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.affiliates.models import Affiliate
from services.referrals.clicks.models import Click
from services.referrals.commissions.models import Commission
from services.referrals.conversions.models import Conversion
from services.referrals.people.models import ContactEmail
from shared.db import utc_now

ERASED_NAME = "(erased)"


async def learn_emails(session: AsyncSession, contact_id: uuid.UUID, email_hashes: Sequence[str]) -> None:
    """The contact's emails are these now (by hash); an address moved from another contact is theirs."""
    await session.execute(
        delete(ContactEmail).where(
            ContactEmail.contact_id == contact_id, ContactEmail.email_hash.not_in(email_hashes)
        )
    )
    if not email_hashes:
        return
    rows = [{"email_hash": hashed, "contact_id": contact_id} for hashed in dict.fromkeys(email_hashes)]
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(ContactEmail).values(rows)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[ContactEmail.email_hash], set_={"contact_id": statement.excluded.contact_id}
        )
    )


async def contact_of_email(session: AsyncSession, email_hash: str) -> uuid.UUID | None:
    """The contact an email hash belongs to, as far as the contacts events have said."""
    return await session.scalar(select(ContactEmail.contact_id).where(ContactEmail.email_hash == email_hash))


async def repoint(session: AsyncSession, merged_id: uuid.UUID, survivor_id: uuid.UUID) -> None:
    """A merge: whatever named the merged contact names the survivor."""
    for model in (Conversion, Click, Affiliate, Commission):
        await session.execute(
            update(model).where(model.contact_id == merged_id).values(contact_id=survivor_id),
            execution_options={"synchronize_session": False},
        )
    await session.execute(
        update(ContactEmail).where(ContactEmail.contact_id == merged_id).values(contact_id=survivor_id)
    )


async def forget(session: AsyncSession, contact_ids: Collection[uuid.UUID]) -> None:
    """Erasure of these contacts (a person and those merged into them); see the module."""
    ids = list(contact_ids)
    email_hashes = list(
        await session.scalars(select(ContactEmail.email_hash).where(ContactEmail.contact_id.in_(ids)))
    )
    of_person: ColumnElement[bool] = Conversion.contact_id.in_(ids)
    if email_hashes:
        of_person = or_(of_person, Conversion.customer_email_hash.in_(email_hashes))
    credited_clicks = select(Conversion.click_id).where(of_person, Conversion.click_id.is_not(None))
    # The person's browser: every click sharing a visitor cookie with a click that is theirs.
    visitors = select(Click.visitor_id).where(or_(Click.contact_id.in_(ids), Click.id.in_(credited_clicks)))
    await session.execute(
        update(Click)
        .where(or_(Click.contact_id.in_(ids), Click.visitor_id.in_(visitors)))
        .values(contact_id=None, ip_hash=None, user_agent=None, referrer=None),
        execution_options={"synchronize_session": False},
    )
    await session.execute(
        update(Conversion)
        .where(of_person)
        .values(contact_id=None, customer_id=None, customer_email_hash=None, updated_at=utc_now()),
        execution_options={"synchronize_session": False},
    )
    await session.execute(
        update(Commission).where(Commission.contact_id.in_(ids)).values(contact_id=None),
        execution_options={"synchronize_session": False},
    )
    affiliate_is_person: ColumnElement[bool] = Affiliate.contact_id.in_(ids)
    if email_hashes:
        affiliate_is_person = or_(affiliate_is_person, Affiliate.email_hash.in_(email_hashes))
    await session.execute(
        update(Affiliate)
        .where(affiliate_is_person)
        .values(name=ERASED_NAME, email=None, email_hash=None, contact_id=None, updated_at=utc_now()),
        execution_options={"synchronize_session": False},
    )
    await session.execute(delete(ContactEmail).where(ContactEmail.contact_id.in_(ids)))
