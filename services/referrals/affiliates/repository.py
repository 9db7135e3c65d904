import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.affiliates.models import Affiliate
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_page

OLDEST_FIRST = Keyset(SortKey(Affiliate.created_at), SortKey(Affiliate.id))


class AffiliateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, affiliate_id: uuid.UUID) -> Affiliate | None:
        return await self.session.get(Affiliate, affiliate_id)

    async def page(self, page: PageRequest) -> Slice[Affiliate]:
        return await fetch_page(self.session, select(Affiliate), OLDEST_FIRST, page)
