import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.links.models import Link
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_page

OLDEST_FIRST = Keyset(SortKey(Link.created_at), SortKey(Link.id))


class LinkRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, link_id: uuid.UUID) -> Link | None:
        return await self.session.get(Link, link_id)

    async def by_code(self, code: str) -> Link | None:
        return await self.session.scalar(select(Link).where(Link.code == code))

    async def id_by_code(self, code: str) -> uuid.UUID | None:
        return await self.session.scalar(select(Link.id).where(Link.code == code))

    async def page(
        self, page: PageRequest, *, program_id: uuid.UUID | None, affiliate_id: uuid.UUID | None
    ) -> Slice[Link]:
        statement = select(Link)
        if program_id is not None:
            statement = statement.where(Link.program_id == program_id)
        if affiliate_id is not None:
            statement = statement.where(Link.affiliate_id == affiliate_id)
        return await fetch_page(self.session, statement, OLDEST_FIRST, page)
