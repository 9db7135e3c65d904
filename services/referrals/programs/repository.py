import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.programs.models import Program
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_page

OLDEST_FIRST = Keyset(SortKey(Program.created_at), SortKey(Program.id))


class ProgramRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, program_id: uuid.UUID) -> Program | None:
        return await self.session.get(Program, program_id)

    async def id_by_key(self, key: str) -> uuid.UUID | None:
        return await self.session.scalar(select(Program.id).where(Program.key == key))

    async def page(self, page: PageRequest) -> Slice[Program]:
        return await fetch_page(self.session, select(Program), OLDEST_FIRST, page)
