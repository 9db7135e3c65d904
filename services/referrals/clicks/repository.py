import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.clicks.models import Click, ClickJournal
from services.referrals.links.models import Link
from services.referrals.programs.models import Program
from shared.db import utc_now
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_page

_CLICKS = Click.metadata.tables[Click.__tablename__]
NEWEST_FIRST = Keyset(SortKey(Click.clicked_at, descending=True), SortKey(Click.id, descending=True))


class ClickRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def link_by_code(self, code: str) -> tuple[Link, int] | None:
        """The link with this code and its program's window in days."""
        row = (
            await self.session.execute(
                select(Link, Program.window_days)
                .join(Program, Program.id == Link.program_id)
                .where(Link.code == code)
            )
        ).first()
        return None if row is None else (row[0], row[1])

    async def insert(self, rows: Sequence[dict[str, Any]]) -> set[str]:
        """Insert in one statement; returns the ids inserted. A click already there (a journal applied
        again after a crash between its commit and its bookkeeping) is skipped, so none is doubled."""
        if not rows:
            return set()
        postgres = self.session.get_bind().dialect.name == "postgresql"
        statement = (
            # The table, not the mapped class: a Core executemany, without the ORM's bulk-insert bookkeeping.
            (postgresql.insert if postgres else sqlite.insert)(_CLICKS)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(_CLICKS.c.id)
        )
        return set(await self.session.scalars(statement, list(rows)))

    async def applied_offset(self, name: str) -> int:
        offset = await self.session.scalar(
            select(ClickJournal.applied_offset).where(ClickJournal.name == name)
        )
        return offset or 0

    async def set_applied_offset(self, name: str, offset: int) -> None:
        row = await self.session.get(ClickJournal, name)
        if row is None:
            self.session.add(ClickJournal(name=name, applied_offset=offset))
        else:
            row.applied_offset = offset
            row.updated_at = utc_now()

    async def forget_journal(self, name: str) -> None:
        await self.session.execute(delete(ClickJournal).where(ClickJournal.name == name))

    async def page(
        self,
        page: PageRequest,
        *,
        link_id: uuid.UUID | None = None,
        affiliate_id: uuid.UUID | None = None,
        program_id: uuid.UUID | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Slice[Click]:
        statement = select(Click)
        if link_id is not None:
            statement = statement.where(Click.link_id == link_id)
        if affiliate_id is not None:
            statement = statement.where(Click.affiliate_id == affiliate_id)
        if program_id is not None:
            statement = statement.where(Click.program_id == program_id)
        if since is not None:
            statement = statement.where(Click.clicked_at >= since)
        if until is not None:
            statement = statement.where(Click.clicked_at < until)
        return await fetch_page(self.session, statement, NEWEST_FIRST, page)
