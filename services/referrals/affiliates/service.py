"""Affiliates: partners and referring customers, their email kept with its keyed hash, and their keys."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.affiliates.models import Affiliate
from services.referrals.affiliates.repository import AffiliateRepository
from services.referrals.affiliates.schemas import AffiliateCreate
from services.referrals.db import outbox, tables
from services.referrals.versioned import update_versioned
from shared.auth import keys
from shared.errors import NotFound
from shared.identity import hasher_of
from shared.pagination import PageRequest, Slice


class AffiliateNotFound(NotFound):
    def __init__(self, affiliate_id: object) -> None:
        super().__init__("Affiliate", affiliate_id)


def _email_hash(session: AsyncSession, email: str | None) -> str | None:
    return None if email is None else hasher_of(session).email(email)


async def create_affiliate(session: AsyncSession, data: AffiliateCreate) -> Affiliate:
    affiliate = Affiliate(
        kind=data.kind,
        name=data.name,
        email=data.email,
        email_hash=_email_hash(session, data.email),
        contact_id=data.contact_id,
    )
    session.add(affiliate)
    await session.flush()
    return affiliate


async def get_affiliate(session: AsyncSession, affiliate_id: uuid.UUID) -> Affiliate:
    affiliate = await AffiliateRepository(session).get(affiliate_id)
    if affiliate is None:
        raise AffiliateNotFound(affiliate_id)
    return affiliate


async def list_affiliates(session: AsyncSession, page: PageRequest) -> Slice[Affiliate]:
    """Oldest first."""
    return await AffiliateRepository(session).page(page)


async def update_affiliate(
    session: AsyncSession,
    affiliate_id: uuid.UUID,
    values: Mapping[str, Any],
    *,
    if_match: Collection[str] | None = None,
) -> Affiliate:
    """Set `values` (a new email gets its hash with it); `if_match` as for programs."""
    if "email" in values:
        values = {**values, "email_hash": _email_hash(session, values["email"])}
    return await update_versioned(
        session, Affiliate, affiliate_id, values, if_match=if_match, not_found=AffiliateNotFound
    )


async def create_key(
    session: AsyncSession,
    affiliate_id: uuid.UUID,
    *,
    scopes: Sequence[str],
    name: str | None,
    expires_at: datetime | None,
) -> keys.CreatedKey:
    """An API key bound to the affiliate (`shared.auth.keys`, scopes within `AFFILIATE_SCOPES`),
    announced on `crm.access` as every key is, so every service accepts it."""
    await get_affiliate(session, affiliate_id)
    return await keys.create_key(
        session,
        tables.access,
        outbox,
        scopes=scopes,
        name=name,
        affiliate_id=str(affiliate_id),
        expires_at=expires_at,
    )
