"""Commissions and referral rewards: what each conversion earns, and every change to it.

The conversions feature calls these three in the transaction that changes the conversion, so a
conversion and its money always commit together.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.conversions.models import Conversion


async def conversion_recorded(session: AsyncSession, conversion: Conversion) -> None:
    """A new conversion: create what it earns under its program's rules (none when unattributed)."""


async def conversion_status_changed(
    session: AsyncSession, conversion: Conversion, old_status: str, reason: str | None
) -> None:
    """The conversion's status moved (already set on `conversion`): approve, or reverse with a clawback."""


async def conversion_reviewed(session: AsyncSession, conversion: Conversion) -> None:
    """A held conversion was reviewed (`conversion.review` is `approved` or `rejected`): release or
    reverse what it earned."""
