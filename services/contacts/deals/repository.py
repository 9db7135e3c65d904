import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import Select, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.companies.models import Company
from services.contacts.contacts.models import Contact
from services.contacts.deals.models import Deal, DealCompany, DealContact, DealStageChange
from services.contacts.pipelines.models import PipelineStage
from shared.db import utc_now
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_page

NEWEST_FIRST = Keyset(SortKey(Deal.created_at, descending=True), SortKey(Deal.id, descending=True))
IN_ORDER = Keyset(SortKey(DealStageChange.id))

Link = type[DealContact] | type[DealCompany]


@dataclass(frozen=True)
class DealFilter:
    pipeline_id: uuid.UUID | None = None
    stage: str | None = None
    owner: str | None = None

    def apply(self, statement: Select[Deal]) -> Select[Deal]:
        if self.pipeline_id is not None:
            statement = statement.where(Deal.pipeline_id == self.pipeline_id)
        if self.stage is not None:
            statement = statement.where(Deal.stage == self.stage)
        if self.owner is not None:
            statement = statement.where(Deal.owner == self.owner)
        return statement


class DealRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, deal_id: uuid.UUID, *, fresh: bool = False) -> Deal | None:
        """`fresh` reads the row again even when the session already holds it."""
        return await self.session.get(Deal, deal_id, populate_existing=fresh)

    async def page(self, where: DealFilter, page: PageRequest) -> Slice[Deal]:
        return await fetch_page(self.session, where.apply(select(Deal)), NEWEST_FIRST, page)

    async def stage(self, pipeline_id: uuid.UUID, key: str) -> PipelineStage | None:
        return await self.session.get(PipelineStage, (pipeline_id, key))

    async def id_by_external_id(self, external_id: str) -> uuid.UUID | None:
        return await self.session.scalar(select(Deal.id).where(Deal.external_id == external_id))

    async def ids_by_external_id(self, external_ids: Collection[str]) -> dict[str, uuid.UUID]:
        if not external_ids:
            return {}
        rows = await self.session.execute(
            select(Deal.external_id, Deal.id).where(Deal.external_id.in_(external_ids))
        )
        return {external_id: deal_id for external_id, deal_id in rows if external_id is not None}

    async def history(self, deal_id: uuid.UUID, page: PageRequest) -> Slice[DealStageChange]:
        statement = select(DealStageChange).where(DealStageChange.deal_id == deal_id)
        return await fetch_page(self.session, statement, IN_ORDER, page)

    async def contact_exists(self, contact_id: uuid.UUID) -> bool:
        return await self.session.scalar(select(Contact.id).where(Contact.id == contact_id)) is not None

    async def company_exists(self, company_id: uuid.UUID) -> bool:
        return await self.session.scalar(select(Company.id).where(Company.id == company_id)) is not None

    async def link(
        self, link: Link, deal_id: uuid.UUID, other_id: uuid.UUID
    ) -> DealContact | DealCompany | None:
        return await self.session.get(link, (deal_id, other_id))

    async def unlink(self, link: Link, deal_id: uuid.UUID, other_id: uuid.UUID) -> bool:
        """True when there was one to remove."""
        other = link.contact_id if link is DealContact else DealCompany.company_id
        removed = await self.session.execute(
            delete(link).where(link.deal_id == deal_id, other == other_id).returning(link.deal_id)
        )
        return removed.first() is not None

    async def contact_ids(self, deal_id: uuid.UUID) -> list[uuid.UUID]:
        """The deal's contacts, sorted by id: what its events carry (`DealSnapshot.contact_ids`)."""
        rows = await self.session.scalars(
            select(DealContact.contact_id)
            .where(DealContact.deal_id == deal_id)
            .order_by(DealContact.contact_id)
        )
        return list(rows)

    async def drop_company(self, company_id: uuid.UUID) -> list[uuid.UUID]:
        """Remove the company from every deal it is associated with, each deal getting a new version (its
        associations are part of it); the deals' ids."""
        removed = await self.session.execute(
            delete(DealCompany).where(DealCompany.company_id == company_id).returning(DealCompany.deal_id)
        )
        deal_ids = list(removed.scalars())
        if deal_ids:
            await self.session.execute(
                update(Deal)
                .where(Deal.id.in_(deal_ids))
                .values(version=Deal.version + 1, updated_at=utc_now())
                .execution_options(synchronize_session=False)
            )
        return deal_ids

    async def links(
        self, deal_ids: Sequence[uuid.UUID]
    ) -> tuple[dict[uuid.UUID, list[uuid.UUID]], dict[uuid.UUID, list[uuid.UUID]]]:
        """Each deal's contact ids and company ids, in the order they were associated: two queries for
        a whole page of deals."""
        contacts: dict[uuid.UUID, list[uuid.UUID]] = {deal_id: [] for deal_id in deal_ids}
        companies: dict[uuid.UUID, list[uuid.UUID]] = {deal_id: [] for deal_id in deal_ids}
        if not deal_ids:
            return contacts, companies
        for deal_id, contact_id in await self.session.execute(
            select(DealContact.deal_id, DealContact.contact_id)
            .where(DealContact.deal_id.in_(deal_ids))
            .order_by(DealContact.created_at, DealContact.contact_id)
        ):
            contacts[deal_id].append(contact_id)
        for deal_id, company_id in await self.session.execute(
            select(DealCompany.deal_id, DealCompany.company_id)
            .where(DealCompany.deal_id.in_(deal_ids))
            .order_by(DealCompany.created_at, DealCompany.company_id)
        ):
            companies[deal_id].append(company_id)
        return contacts, companies
