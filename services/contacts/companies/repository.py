import uuid
from collections.abc import Collection

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.companies.models import Company, CompanyContact
from services.contacts.contacts.models import Contact
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_page

NEWEST_FIRST = Keyset(SortKey(Company.created_at, descending=True), SortKey(Company.id, descending=True))
# A company's contacts in the order they were associated; `contact_id` is unique within one company.
ASSOCIATED_FIRST = Keyset(SortKey(CompanyContact.created_at), SortKey(CompanyContact.contact_id))


class CompanyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, company_id: uuid.UUID, *, fresh: bool = False) -> Company | None:
        """`fresh` reads the row again even when the session already holds it."""
        return await self.session.get(Company, company_id, populate_existing=fresh)

    async def exists(self, company_id: uuid.UUID) -> bool:
        return await self.session.scalar(select(Company.id).where(Company.id == company_id)) is not None

    async def page(self, page: PageRequest) -> Slice[Company]:
        return await fetch_page(self.session, select(Company), NEWEST_FIRST, page)

    async def id_by_domain(self, domain: str) -> uuid.UUID | None:
        return await self.session.scalar(select(Company.id).where(Company.domain == domain))

    async def ids_by_domain(self, domains: Collection[str]) -> dict[str, uuid.UUID]:
        if not domains:
            return {}
        rows = await self.session.execute(
            select(Company.domain, Company.id).where(Company.domain.in_(domains))
        )
        return {domain: company_id for domain, company_id in rows if domain is not None}

    async def contact_exists(self, contact_id: uuid.UUID) -> bool:
        return await self.session.scalar(select(Contact.id).where(Contact.id == contact_id)) is not None

    async def association(self, company_id: uuid.UUID, contact_id: uuid.UUID) -> CompanyContact | None:
        return await self.session.get(CompanyContact, (company_id, contact_id))

    async def remove_association(self, company_id: uuid.UUID, contact_id: uuid.UUID) -> bool:
        """True when there was one to remove."""
        removed = await self.session.execute(
            delete(CompanyContact)
            .where(CompanyContact.company_id == company_id, CompanyContact.contact_id == contact_id)
            .returning(CompanyContact.contact_id)
        )
        return removed.first() is not None

    async def contacts_page(self, company_id: uuid.UUID, page: PageRequest) -> Slice[CompanyContact]:
        statement = select(CompanyContact).where(CompanyContact.company_id == company_id)
        return await fetch_page(self.session, statement, ASSOCIATED_FIRST, page)
