"""Helpers for the commissions, rewards and `/v1/me` tests: conversions recorded, changed and reviewed
through the calls the conversions feature makes, in one transaction each, as it makes them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.affiliates.models import Affiliate
from services.referrals.commissions import service
from services.referrals.commissions.approval import approve_due
from services.referrals.commissions.models import Commission, CommissionLedgerEntry
from services.referrals.conversions.models import Conversion
from services.referrals.programs.models import Program
from shared.runtime import ServiceRuntime
from tests.services.referrals.support import (
    make_click,
    make_link,
    make_program,
    new_conversion,
    session_of,
)

WORLD_AT = datetime(2026, 10, 5, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_background_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests run the approval sweep themselves, at a `now` of their choosing."""
    monkeypatch.setenv("CRM_REFERRALS_APPROVAL_SWEEP_SECONDS", "0")


async def record(
    runtime: ServiceRuntime, program: Program, affiliate: Affiliate | None, **fields: Any
) -> Conversion:
    """A new conversion and what it earns, committed together."""
    conversion = new_conversion(program, affiliate, **fields)
    await record_again(runtime, conversion, new=True)
    return conversion


async def record_again(runtime: ServiceRuntime, conversion: Conversion, *, new: bool = False) -> None:
    """`conversion_recorded` for a conversion (a retry, unless `new`)."""
    async with session_of(runtime) as session:
        if new:
            session.add(conversion)
            await session.flush()
        else:
            conversion = await _fresh(session, conversion.id)
        await service.conversion_recorded(session, conversion)


async def change_status(
    runtime: ServiceRuntime, conversion_id: uuid.UUID, status: str, reason: str | None = None
) -> None:
    async with session_of(runtime) as session:
        conversion = await _fresh(session, conversion_id)
        old = conversion.status
        conversion.status = status
        await service.conversion_status_changed(session, conversion, old, reason)


async def review(runtime: ServiceRuntime, conversion_id: uuid.UUID, verdict: str) -> None:
    async with session_of(runtime) as session:
        conversion = await _fresh(session, conversion_id)
        conversion.review = verdict
        await service.conversion_reviewed(session, conversion)


async def _fresh(session: AsyncSession, conversion_id: uuid.UUID) -> Conversion:
    conversion = await session.get(Conversion, conversion_id)
    assert conversion is not None
    return conversion


async def earned(runtime: ServiceRuntime, conversion_id: uuid.UUID) -> dict[str, Commission]:
    """The conversion's commissions and rewards by kind."""
    async with runtime.database.sessionmaker() as session:
        rows = await session.scalars(select(Commission).where(Commission.conversion_id == conversion_id))
        return {row.kind: row for row in rows}


async def ledger(runtime: ServiceRuntime, commission_id: uuid.UUID) -> list[tuple[str, int]]:
    async with runtime.database.sessionmaker() as session:
        rows = await session.scalars(
            select(CommissionLedgerEntry)
            .where(CommissionLedgerEntry.commission_id == commission_id)
            .order_by(CommissionLedgerEntry.at, CommissionLedgerEntry.id)
        )
        return [(row.entry, row.amount) for row in rows]


async def affiliate_key(client: httpx.AsyncClient, affiliate: Affiliate) -> dict[str, str]:
    """Headers with a `referrals:read` key bound to the affiliate, made as a tenant's admin makes one."""
    created = await client.post(
        "/v1/keys", json={"scopes": ["referrals:read"], "affiliate_id": str(affiliate.id)}
    )
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['key']}"}


async def affiliate_world(
    client: httpx.AsyncClient, runtime: ServiceRuntime, affiliate: Affiliate
) -> dict[str, str]:
    """One affiliate's rows of each kind: its ids by the path parameter that names them."""
    program = await make_program(runtime, hold_days=0)
    link = await make_link(runtime, program, affiliate)
    click = await make_click(runtime, link, clicked_at=WORLD_AT)
    conversion = await record(runtime, program, affiliate, link=link, click=click, occurred_at=WORLD_AT)
    await approve_due(runtime.database, WORLD_AT + timedelta(days=1))
    payout = await client.post("/v1/payouts", json={"affiliate_id": str(affiliate.id)})
    assert payout.status_code == 201, payout.text
    return {
        "program_id": str(program.id),
        "affiliate_id": str(affiliate.id),
        "code": link.code,
        "link_id": str(link.id),
        "click_id": click.id,
        "conversion_id": str(conversion.id),
        "commission_id": str((await earned(runtime, conversion.id))["commission"].id),
        "payout_id": payout.json()["id"],
    }
