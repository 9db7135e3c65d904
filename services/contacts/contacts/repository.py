import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.contacts.models import Contact
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_page

NEWEST_FIRST = Keyset(SortKey(Contact.created_at, descending=True), SortKey(Contact.id, descending=True))


class ContactRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, contact_id: uuid.UUID, *, fresh: bool = False) -> Contact | None:
        """`fresh` reads the row again even when the session already holds it."""
        return await self.session.get(Contact, contact_id, populate_existing=fresh)

    async def page(self, page: PageRequest) -> Slice[Contact]:
        return await fetch_page(self.session, select(Contact), NEWEST_FIRST, page)

    async def get_by_email(self, email: str) -> Contact | None:
        result = await self.session.scalars(select(Contact).where(Contact.email == email.lower()))
        return result.first()

    async def add_unless_email_taken(self, rows: Sequence[dict[str, Any]]) -> list[Contact]:
        """Insert in one statement; returns the contacts created (a taken email is skipped)."""
        if not rows:
            return []
        dialect_insert = (
            postgresql.insert if self.session.get_bind().dialect.name == "postgresql" else sqlite.insert
        )
        statement = (
            dialect_insert(Contact).on_conflict_do_nothing(index_elements=[Contact.email]).returning(Contact)
        )
        return list(await self.session.scalars(statement, list(rows)))

    async def ids_by_email(self, emails: Sequence[str]) -> dict[str, uuid.UUID]:
        if not emails:
            return {}
        rows = await self.session.execute(select(Contact.email, Contact.id).where(Contact.email.in_(emails)))
        return dict(rows.all())
