import uuid
from collections.abc import Collection

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from services.contacts.deals.models import Deal
from services.contacts.pipelines.models import Pipeline
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_page

OLDEST_FIRST = Keyset(SortKey(Pipeline.created_at), SortKey(Pipeline.id))
DEFAULT_KEY = "sales"


class PipelineRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, pipeline_id: uuid.UUID, *, fresh: bool = False) -> Pipeline | None:
        """With its stages; `fresh` reads the rows again even when the session already holds them."""
        statement = select(Pipeline).where(Pipeline.id == pipeline_id).options(selectinload(Pipeline.stages))
        if fresh:
            statement = statement.execution_options(populate_existing=True)
        result: Pipeline | None = await self.session.scalar(statement)
        return result

    async def by_key(self, key: str) -> Pipeline | None:
        statement = select(Pipeline).where(Pipeline.key == key).options(selectinload(Pipeline.stages))
        result: Pipeline | None = await self.session.scalar(statement)
        return result

    async def id_by_key(self, key: str) -> uuid.UUID | None:
        return await self.session.scalar(select(Pipeline.id).where(Pipeline.key == key))

    async def page(self, page: PageRequest) -> Slice[Pipeline]:
        statement = select(Pipeline).options(selectinload(Pipeline.stages))
        return await fetch_page(self.session, statement, OLDEST_FIRST, page)

    async def deals_in(self, pipeline_id: uuid.UUID, stages: Collection[str]) -> dict[str, int]:
        """How many deals are in each of `stages` (those with none are left out)."""
        if not stages:
            return {}
        rows = await self.session.execute(
            select(Deal.stage, func.count())
            .where(Deal.pipeline_id == pipeline_id, Deal.stage.in_(stages))
            .group_by(Deal.stage)
        )
        return dict(rows.all())
