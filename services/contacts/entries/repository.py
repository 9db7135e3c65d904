import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.contacts.models import Contact
from services.contacts.deals.models import Deal
from services.contacts.entries.models import ContactEntry
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_page

NEWEST_FIRST = Keyset(
    SortKey(ContactEntry.occurred_at, descending=True), SortKey(ContactEntry.id, descending=True)
)


@dataclass(frozen=True)
class ScoreCount:
    """How many times a contact gave one score on one scale."""

    scale: str
    score: int
    count: int


@dataclass(frozen=True)
class Latest:
    entry_id: uuid.UUID
    score: int
    occurred_at: datetime


class EntryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _postgres(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    async def contact(self, contact_id: uuid.UUID, *, shared_lock: bool = False) -> Contact | None:
        """The contact, without its details. `shared_lock` holds it until the transaction ends
        (PostgreSQL; SQLite has one writer at a time), so an erasure in flight is waited for and seen:
        an entry never lands on a contact whose entries were just erased."""
        statement = select(Contact).where(Contact.id == contact_id).execution_options(populate_existing=True)
        if shared_lock and self._postgres:
            statement = statement.with_for_update(read=True, of=Contact)
        return (await self.session.scalars(statement)).first()

    async def deal_exists(self, deal_id: uuid.UUID) -> bool:
        return await self.session.scalar(select(Deal.id).where(Deal.id == deal_id)) is not None

    async def get(
        self, contact_id: uuid.UUID, entry_id: uuid.UUID, *, for_update: bool = False
    ) -> ContactEntry | None:
        """The contact's entry; `for_update` reads it afresh and locks it (PostgreSQL), so the version
        compared with `If-Match` is the one the UPDATE replaces."""
        statement = select(ContactEntry).where(
            ContactEntry.id == entry_id, ContactEntry.contact_id == contact_id
        )
        if for_update:
            statement = statement.execution_options(populate_existing=True)
            if self._postgres:
                statement = statement.with_for_update()
        return (await self.session.scalars(statement)).first()

    async def page(
        self, contact_id: uuid.UUID, kinds: Collection[str], page: PageRequest
    ) -> Slice[ContactEntry]:
        statement = select(ContactEntry).where(ContactEntry.contact_id == contact_id)
        if kinds:
            statement = statement.where(ContactEntry.kind.in_(kinds))
        return await fetch_page(self.session, statement, NEWEST_FIRST, page)

    async def oldest_first(self, contact_id: uuid.UUID) -> list[ContactEntry]:
        statement = (
            select(ContactEntry)
            .where(ContactEntry.contact_id == contact_id)
            .order_by(ContactEntry.occurred_at, ContactEntry.id)
        )
        return list(await self.session.scalars(statement))

    async def delete_all(self, contact_id: uuid.UUID) -> None:
        await self.session.execute(delete(ContactEntry).where(ContactEntry.contact_id == contact_id))

    async def kind_counts(self, contact_id: uuid.UUID) -> tuple[dict[str, int], datetime | None]:
        """Entries per kind, and when the newest occurred."""
        rows = await self.session.execute(
            select(ContactEntry.kind, func.count(), func.max(ContactEntry.occurred_at))
            .where(ContactEntry.contact_id == contact_id)
            .group_by(ContactEntry.kind)
        )
        counts: dict[str, int] = {}
        newest: datetime | None = None
        for kind, count, last in rows:
            counts[kind] = int(count)
            newest = last if newest is None or last > newest else newest
        return counts, newest

    async def score_counts(self, contact_id: uuid.UUID) -> list[ScoreCount]:
        """Each score given on each scale, counted: a handful of rows however many entries there are."""
        rows = await self.session.execute(
            select(ContactEntry.scale, ContactEntry.score, func.count())
            .where(ContactEntry.contact_id == contact_id, ContactEntry.score.is_not(None))
            .group_by(ContactEntry.scale, ContactEntry.score)
        )
        # The WHERE leaves out entries without a score, and the CHECK ties a scale to every score.
        return [
            ScoreCount(scale, score, int(count))
            for scale, score, count in rows
            if scale is not None and score is not None
        ]

    async def latest_scores(self, contact_id: uuid.UUID) -> dict[str, Latest]:
        """The score given last on each scale (ties by id, as the list orders them)."""
        ranked = (
            select(
                ContactEntry.scale,
                ContactEntry.id,
                ContactEntry.score,
                ContactEntry.occurred_at,
                func.row_number()
                .over(
                    partition_by=ContactEntry.scale,
                    order_by=(ContactEntry.occurred_at.desc(), ContactEntry.id.desc()),
                )
                .label("rank"),
            )
            .where(ContactEntry.contact_id == contact_id, ContactEntry.score.is_not(None))
            .subquery()
        )
        first = select(ranked.c.scale, ranked.c.id, ranked.c.score, ranked.c.occurred_at).where(
            ranked.c.rank == 1
        )
        rows = await self.session.execute(first)
        return {scale: Latest(entry_id, score, at) for scale, entry_id, score, at in rows}
