import uuid
from collections import defaultdict
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Label, Select, and_, delete, func, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from services.contacts.contacts.matching import canonical_email
from services.contacts.contacts.models import (
    Contact,
    ContactIdentity,
    ContactTag,
    LifecycleTransition,
    PropertyChange,
)
from services.contacts.contacts.schemas import EMAIL
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_page, fetch_row_page

NEWEST_FIRST = Keyset(SortKey(Contact.created_at, descending=True), SortKey(Contact.id, descending=True))
# Every read of a whole contact loads these with it, in one query each for a whole page.
WITH_DETAILS = (selectinload(Contact.identities), selectinload(Contact.tags))

Identity = tuple[str, str]
"""(namespace, value) of a `ContactIdentity`."""


class ContactRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _postgres(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    async def get(
        self, contact_id: uuid.UUID, *, fresh: bool = False, for_update: bool = False
    ) -> Contact | None:
        """With identities and tags. `fresh` reads the row again even when the session holds it;
        `for_update` locks it until the transaction ends (PostgreSQL)."""
        statement = select(Contact).where(Contact.id == contact_id).options(*WITH_DETAILS)
        if fresh:
            statement = statement.execution_options(populate_existing=True)
        if for_update and self._postgres:
            statement = statement.with_for_update(of=Contact)
        return (await self.session.scalars(statement)).first()

    async def many(self, contact_ids: Collection[uuid.UUID], *, for_update: bool = False) -> list[Contact]:
        statement = select(Contact).where(Contact.id.in_(contact_ids)).options(*WITH_DETAILS)
        if for_update and self._postgres:
            # In id order, so two batches locking overlapping contacts cannot deadlock.
            statement = statement.order_by(Contact.id).with_for_update(of=Contact)
        return list(await self.session.scalars(statement.execution_options(populate_existing=True)))

    async def page(self, page: PageRequest, statement: Select[Any] | None = None) -> Slice[Contact]:
        base = statement if statement is not None else select(Contact).where(Contact.erased_at.is_(None))
        return await fetch_page(self.session, base.options(*WITH_DETAILS), NEWEST_FIRST, page)

    async def search_page(self, statement: Select[Any], keyset: Keyset, page: PageRequest) -> Slice[Contact]:
        """A page of a search: `statement` selects contacts (and may join what its sort needs). The sort
        keys are selected beside each contact, labelled as the keyset reads them back."""
        sort_columns = [
            key.column if isinstance(key.column, Label) else key.column.label(key.column.key)
            for key in keyset.keys
        ]
        rows = await fetch_row_page(
            self.session, statement.add_columns(*sort_columns).options(*WITH_DETAILS), keyset, page
        )
        return Slice([row[0] for row in rows.items], rows.next_cursor)

    async def count(self, condition: ColumnElement[bool]) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(Contact).where(condition)) or 0)

    async def holders(self, identities: Collection[Identity]) -> dict[Identity, uuid.UUID]:
        """The contact holding each identity that is taken."""
        if not identities:
            return {}
        rows = await self.session.execute(
            select(ContactIdentity.namespace, ContactIdentity.value, ContactIdentity.contact_id).where(
                _any_of(identities)
            )
        )
        return {(namespace, value): contact_id for namespace, value, contact_id in rows}

    async def claim_identities(self, rows: Sequence[dict[str, Any]]) -> set[Identity]:
        """Insert identities in one statement; returns those claimed (one already taken is skipped).

        On PostgreSQL, a concurrent transaction claiming the same identity makes this wait for its
        outcome, so two writers never both get one."""
        if not rows:
            return set()
        rows = [
            {**row, "canonical": canonical_email(row["value"]) if row["namespace"] == EMAIL else None}
            for row in rows
        ]
        dialect_insert = postgresql.insert if self._postgres else sqlite.insert
        statement = (
            dialect_insert(ContactIdentity)
            .on_conflict_do_nothing(index_elements=[ContactIdentity.namespace, ContactIdentity.value])
            .returning(ContactIdentity.namespace, ContactIdentity.value)
        )
        return {(namespace, value) for namespace, value in await self.session.execute(statement, list(rows))}

    async def release_identities(self, identities: Collection[Identity]) -> None:
        if identities:
            await self.session.execute(delete(ContactIdentity).where(_any_of(identities)))

    async def insert_contacts(self, rows: Sequence[dict[str, Any]]) -> list[Contact]:
        if not rows:
            return []
        return list(await self.session.scalars(insert(Contact).returning(Contact), list(rows)))

    async def add_tags(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(ContactTag), list(rows))

    async def remove_tags(self, pairs: Collection[tuple[uuid.UUID, str]]) -> None:
        if pairs:
            by_tag: dict[str, list[uuid.UUID]] = defaultdict(list)
            for contact_id, tag in pairs:
                by_tag[tag].append(contact_id)
            await self.session.execute(
                delete(ContactTag).where(
                    or_(
                        *(
                            and_(ContactTag.tag == tag, ContactTag.contact_id.in_(ids))
                            for tag, ids in by_tag.items()
                        )
                    )
                )
            )

    async def add_transitions(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(LifecycleTransition), list(rows))

    async def add_history(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(PropertyChange), list(rows))

    async def transitions(self, contact_id: uuid.UUID, page: PageRequest) -> Slice[LifecycleTransition]:
        return await fetch_page(
            self.session,
            select(LifecycleTransition).where(LifecycleTransition.contact_id == contact_id),
            TRANSITIONS_OLDEST_FIRST,
            page,
        )

    async def history(
        self, contact_id: uuid.UUID, page: PageRequest, prop: str | None = None
    ) -> Slice[PropertyChange]:
        statement = select(PropertyChange).where(PropertyChange.contact_id == contact_id)
        if prop is not None:
            statement = statement.where(PropertyChange.property == prop)
        return await fetch_page(self.session, statement, HISTORY_NEWEST_FIRST, page)


def _any_of(identities: Collection[Identity]) -> ColumnElement[bool]:
    """Identities as one `IN` per namespace: a thousand pairs OR-ed one by one would be an expression
    deeper than SQLite parses (its limit is 1000), and an `IN` uses the primary key's index."""
    by_namespace: dict[str, list[str]] = defaultdict(list)
    for namespace, value in identities:
        by_namespace[namespace].append(value)
    return or_(
        *(
            and_(ContactIdentity.namespace == namespace, ContactIdentity.value.in_(values))
            for namespace, values in by_namespace.items()
        )
    )


TRANSITIONS_OLDEST_FIRST = Keyset(SortKey(LifecycleTransition.changed_at), SortKey(LifecycleTransition.id))
HISTORY_NEWEST_FIRST = Keyset(
    SortKey(PropertyChange.changed_at, descending=True), SortKey(PropertyChange.id, descending=True)
)
