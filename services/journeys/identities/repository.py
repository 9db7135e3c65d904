import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.journeys.identities.models import ContactIdentityLink

Identifier = tuple[str, str]
"""(kind, value) of a `ContactIdentityLink`."""


class IdentityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def holders(self, identifiers: Collection[Identifier]) -> dict[Identifier, uuid.UUID]:
        """The contact each known identifier names, in one query."""
        if not identifiers:
            return {}
        by_kind: dict[str, set[str]] = {}
        for kind, value in identifiers:
            by_kind.setdefault(kind, set()).add(value)
        rows = await self.session.execute(
            select(ContactIdentityLink.kind, ContactIdentityLink.value, ContactIdentityLink.contact_id).where(
                or_(
                    *(
                        and_(ContactIdentityLink.kind == kind, ContactIdentityLink.value.in_(values))
                        for kind, values in by_kind.items()
                    )
                )
            )
        )
        return {(kind, value): contact_id for kind, value, contact_id in rows}

    async def link(self, kind: str, values: Sequence[str], contact_id: uuid.UUID, at: datetime) -> None:
        """Point each value at the contact, unless a later event already pointed it elsewhere: events of
        two contacts come on different partitions, so an email that moved may be seen moving back."""
        await self.link_each(kind, dict.fromkeys(values, at), contact_id)

    async def link_each(self, kind: str, values: Mapping[str, datetime], contact_id: uuid.UUID) -> None:
        """As `link`, each value as of its own time."""
        if not values:
            return
        postgres = self.session.get_bind().dialect.name == "postgresql"
        statement = (postgresql.insert if postgres else sqlite.insert)(ContactIdentityLink)
        statement = statement.on_conflict_do_update(
            index_elements=[ContactIdentityLink.kind, ContactIdentityLink.value],
            set_={"contact_id": statement.excluded.contact_id, "linked_at": statement.excluded.linked_at},
            where=statement.excluded.linked_at >= ContactIdentityLink.linked_at,
        )
        await self.session.execute(
            statement,
            [
                {"kind": kind, "value": value, "contact_id": contact_id, "linked_at": at}
                for value, at in values.items()
            ],
        )

    async def unlink_others(self, kind: str, contact_id: uuid.UUID, keep: Collection[str]) -> None:
        """The contact's links of `kind` other than `keep` go; links since taken by another stay."""
        condition = and_(ContactIdentityLink.kind == kind, ContactIdentityLink.contact_id == contact_id)
        if keep:
            condition = and_(condition, ContactIdentityLink.value.not_in(keep))
        await self.session.execute(delete(ContactIdentityLink).where(condition))

    async def move(self, from_contact: uuid.UUID, to_contact: uuid.UUID) -> None:
        await self.session.execute(
            update(ContactIdentityLink)
            .where(ContactIdentityLink.contact_id == from_contact)
            .values(contact_id=to_contact)
        )

    async def of_contacts(self, contact_ids: Collection[uuid.UUID]) -> list[Identifier]:
        rows = await self.session.execute(
            select(ContactIdentityLink.kind, ContactIdentityLink.value).where(
                ContactIdentityLink.contact_id.in_(contact_ids)
            )
        )
        return [(kind, value) for kind, value in rows]

    async def delete_for(self, contact_ids: Collection[uuid.UUID]) -> None:
        await self.session.execute(
            delete(ContactIdentityLink).where(ContactIdentityLink.contact_id.in_(contact_ids))
        )
