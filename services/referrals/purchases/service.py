"""A purchase reported to journeys (a touchpoint on channel `purchase`) is a sale of each active program
with `count_purchases`, when its buyer is a customer the program already credited to an affiliate (an
attributed conversion of the same contact): a shop that reports orders to journeys need not also post
them. It goes through the postback path as source `journeys:<program key>` (a conversion's transaction id
is unique per source, and one order may be a sale of two programs), so it is idempotent on (source,
transaction id), attributed, fraud-checked and paid like any postback. A purchase of someone no
affiliate brought is not a conversion of the program at all; it would only fill the list with
unattributed sales. Flushes, never commits.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.conversions import service as conversions
from services.referrals.conversions.repository import ConversionRepository
from services.referrals.conversions.schemas import PostbackIn
from services.referrals.programs.models import Program
from shared.errors import DomainError

log = logging.getLogger(__name__)

SOURCE = "journeys"
"""The conversions' source, before `:<program key>`: with the order id (or the touchpoint id), what makes
a purchase one sale of a program."""


async def count_purchase(
    session: AsyncSession,
    *,
    touchpoint_id: uuid.UUID,
    contact_id: uuid.UUID,
    order_id: str | None,
    revenue: int | None,
    currency: str | None,
    occurred_at: datetime,
) -> None:
    programs = await session.scalars(
        select(Program).where(Program.count_purchases.is_(True), Program.status == "active")
    )
    repository = ConversionRepository(session)
    for program in programs:
        if await repository.earliest_attributed(program.id, contact_id=contact_id) is None:
            continue  # no affiliate brought this buyer to this program
        try:
            data = PostbackIn(
                transaction_id=order_id or f"touchpoint:{touchpoint_id}",
                event="sale",
                program=program.key,
                amount=revenue,
                currency=currency,
                contact_id=contact_id,
                occurred_at=occurred_at,
            )
            await conversions.take_postback(
                session,
                conversions.NewPostback(
                    data=data, source=f"{SOURCE}:{program.key}", method="EVENT", authenticated_by="stream"
                ),
                repository,
            )
        except (ValidationError, DomainError) as exc:
            # A purchase the program cannot take (no sale goal, an order id too long) is skipped, not
            # retried: it would fail the same way every time.
            log.warning("purchase %s not counted for program %s: %s", touchpoint_id, program.key, exc)
