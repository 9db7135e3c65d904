import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.journeys.touchpoints.models import Touchpoint


class TouchpointRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, touchpoint_id: uuid.UUID) -> Touchpoint | None:
        # Read afresh: a consumer's batch moves and deletes touchpoints with plain UPDATE and DELETE.
        return await self.session.get(Touchpoint, touchpoint_id, populate_existing=True)

    async def by_message_ids(self, message_ids: Collection[str]) -> dict[str, Touchpoint]:
        if not message_ids:
            return {}
        found = await self.session.scalars(select(Touchpoint).where(Touchpoint.message_id.in_(message_ids)))
        return {
            touchpoint.message_id: touchpoint for touchpoint in found if touchpoint.message_id is not None
        }

    async def insert(self, rows: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
        """Insert in one statement; returns the ids inserted. A row whose `message_id` is taken (by a
        concurrent request: the service looked before) is skipped; on PostgreSQL the insert waits for
        that request's outcome, so the same message is never recorded twice."""
        if not rows:
            return set()
        postgres = self.session.get_bind().dialect.name == "postgresql"
        statement = (
            (postgresql.insert if postgres else sqlite.insert)(Touchpoint)
            .on_conflict_do_nothing(index_elements=[Touchpoint.message_id])
            .returning(Touchpoint.id)
        )
        return set(await self.session.scalars(statement, list(rows)))

    async def move(self, from_contact: uuid.UUID, to_contact: uuid.UUID) -> None:
        await self.session.execute(
            update(Touchpoint).where(Touchpoint.contact_id == from_contact).values(contact_id=to_contact)
        )

    async def attach(
        self,
        contact_id: uuid.UUID,
        *,
        externals: Collection[tuple[str, str]] = (),
        anonymous_ids: Collection[str] = (),
        email_hashes: Collection[str] = (),
    ) -> list[Touchpoint]:
        """Give the unresolved touchpoints that name any of these identifiers to the contact, in one
        statement; returns them. Touchpoints resolved to someone already stay theirs."""
        named = _naming(email_hashes=email_hashes, externals=externals, anonymous_ids=anonymous_ids)
        if not named:
            return []
        attached = await self.session.scalars(
            update(Touchpoint)
            .where(Touchpoint.contact_id.is_(None), or_(*named))
            .values(contact_id=contact_id)
            .returning(Touchpoint),
            # Objects of these rows already in the session are refreshed, not returned as they were.
            execution_options={"synchronize_session": False, "populate_existing": True},
        )
        return list(attached)

    async def delete_matching(
        self,
        contact_ids: Collection[uuid.UUID],
        *,
        email_hashes: Collection[str] = (),
        externals: Collection[tuple[str, str]] = (),
        anonymous_ids: Collection[str] = (),
    ) -> None:
        """Delete the touchpoints of these contacts, and the unresolved ones that name any of these
        identifiers (a touchpoint resolved to someone else stays theirs, even from a shared browser)."""
        named = _naming(email_hashes=email_hashes, externals=externals, anonymous_ids=anonymous_ids)
        condition: ColumnElement[bool] = Touchpoint.contact_id.in_(contact_ids)
        if named:
            condition = or_(condition, and_(Touchpoint.contact_id.is_(None), or_(*named)))
        await self.session.execute(delete(Touchpoint).where(condition))

    async def anonymous_ids_of(self, contact_ids: Collection[uuid.UUID]) -> set[str]:
        """The anonymous ids the contacts' touchpoints carry: the browsers known to be theirs."""
        rows = await self.session.scalars(
            select(Touchpoint.anonymous_id)
            .where(Touchpoint.contact_id.in_(contact_ids), Touchpoint.anonymous_id.is_not(None))
            .distinct()
        )
        return {value for value in rows if value is not None}


def _naming(
    *, email_hashes: Collection[str], externals: Collection[tuple[str, str]], anonymous_ids: Collection[str]
) -> list[ColumnElement[bool]]:
    """Conditions matching a touchpoint that names any of the identifiers (one per kind given)."""
    named: list[ColumnElement[bool]] = []
    if email_hashes:
        named.append(Touchpoint.email_hash.in_(email_hashes))
    if externals:
        named.append(tuple_(Touchpoint.external_system, Touchpoint.external_id).in_(externals))
    if anonymous_ids:
        named.append(Touchpoint.anonymous_id.in_(anonymous_ids))
    return named
