"""Helpers for the referrals tests: the app on a test's database, its outbox, and rows made directly.

The factories write through the models, not the API, so that a feature's tests do not depend on another
feature's endpoints; the endpoints' own tests go through HTTP.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.affiliates.models import Affiliate
from services.referrals.app import DEFINITION
from services.referrals.clicks.models import Click
from services.referrals.conversions.models import Conversion
from services.referrals.db import tables
from services.referrals.links.models import Link
from services.referrals.programs.models import Program
from shared.bus.base import EventBus
from shared.db import utc_now
from shared.runtime import ServiceRuntime
from shared.testing.apps import service_client

Api = tuple[httpx.AsyncClient, ServiceRuntime]


@asynccontextmanager
async def referrals_api(
    database_url: str, bus: EventBus, data_dir: Path, *, relay: bool = False, consumers: bool = True
) -> AsyncIterator[Api]:
    # No relay by default: the tests read the outbox itself.
    async with service_client(
        DEFINITION, database_url=database_url, bus=bus, data_dir=data_dir, relay=relay, consumers=consumers
    ) as pair:
        yield pair


@asynccontextmanager
async def session_of(runtime: ServiceRuntime) -> AsyncIterator[AsyncSession]:
    """A session that commits at the end, for arranging rows."""
    async with runtime.database.sessionmaker() as session, session.begin():
        yield session


async def make_program(
    runtime: ServiceRuntime,
    *,
    key: str | None = None,
    currency: str = "EUR",
    attribution_model: str = "last_click",
    window_days: int = 30,
    hold_days: int = 30,
    commission_rules: list[dict[str, Any]] | None = None,
    referral_rewards: dict[str, Any] | None = None,
    count_purchases: bool = False,
) -> Program:
    program = Program(
        key=key or f"program-{secrets.token_hex(4)}",
        name="Partner program",
        currency=currency,
        attribution_model=attribution_model,
        window_days=window_days,
        hold_days=hold_days,
        commission_rules=commission_rules
        if commission_rules is not None
        else [{"goal": "sale", "type": "percent", "percent": "10"}],
        referral_rewards=referral_rewards,
        count_purchases=count_purchases,
    )
    async with session_of(runtime) as session:
        session.add(program)
    return program


async def make_affiliate(
    runtime: ServiceRuntime,
    *,
    kind: str = "partner",
    name: str = "Ada's Reviews",
    email: str | None = None,
    email_hash: str | None = None,
    contact_id: uuid.UUID | None = None,
) -> Affiliate:
    affiliate = Affiliate(kind=kind, name=name, email=email, email_hash=email_hash, contact_id=contact_id)
    async with session_of(runtime) as session:
        session.add(affiliate)
    return affiliate


async def make_link(
    runtime: ServiceRuntime,
    program: Program,
    affiliate: Affiliate,
    *,
    code: str | None = None,
    destination_url: str = "https://shop.example.com/pricing",
) -> Link:
    link = Link(
        code=code or secrets.token_urlsafe(6),
        destination_url=destination_url,
        program_id=program.id,
        affiliate_id=affiliate.id,
    )
    async with session_of(runtime) as session:
        session.add(link)
    return link


async def make_click(
    runtime: ServiceRuntime,
    link: Link,
    *,
    clicked_at: datetime | None = None,
    visitor_id: str | None = None,
    ip_hash: str | None = None,
    is_bot: bool = False,
) -> Click:
    click = Click(
        id=secrets.token_urlsafe(12),
        visitor_id=visitor_id or secrets.token_urlsafe(12),
        link_id=link.id,
        code=link.code,
        program_id=link.program_id,
        affiliate_id=link.affiliate_id,
        clicked_at=clicked_at or utc_now(),
        ip_hash=ip_hash,
        user_agent="Mozilla/5.0",
        referrer=None,
        landing_url=link.destination_url,
        is_bot=is_bot,
    )
    async with session_of(runtime) as session:
        session.add(click)
    return click


def new_conversion(
    program: Program,
    affiliate: Affiliate | None,
    *,
    goal: str = "sale",
    amount: int | None = 10_000,
    currency: str | None = "EUR",
    status: str = "pending",
    review: str = "none",
    occurred_at: datetime | None = None,
    customer_id: str | None = None,
    contact_id: uuid.UUID | None = None,
    customer_email_hash: str | None = None,
    transaction_id: str | None = None,
    link: Link | None = None,
    click: Click | None = None,
) -> Conversion:
    """A conversion not yet added to a session: attributed to `affiliate`, or unattributed without one."""
    return Conversion(
        id=uuid.uuid4(),
        program_id=program.id,
        source="test-tracker",
        transaction_id=transaction_id or f"order-{secrets.token_hex(6)}",
        goal=goal,
        amount=amount,
        currency=currency,
        status=status,
        affiliate_id=affiliate.id if affiliate is not None else None,
        link_id=link.id if link is not None else None,
        click_id=click.id if click is not None else None,
        attributed=affiliate is not None,
        unattributed_reason=None if affiliate is not None else "no_click",
        attribution={},
        customer_id=customer_id,
        contact_id=contact_id,
        customer_email_hash=customer_email_hash,
        review=review,
        fraud_flags=[],
        occurred_at=occurred_at or utc_now(),
    )


async def make_conversion(
    runtime: ServiceRuntime, program: Program, affiliate: Affiliate | None, **fields: Any
) -> Conversion:
    """A conversion row as `new_conversion` makes it (no commissions: see the commissions tests for those)."""
    conversion = new_conversion(program, affiliate, **fields)
    async with session_of(runtime) as session:
        session.add(conversion)
    return conversion


async def outbox_events(runtime: ServiceRuntime, prefix: str = "") -> list[dict[str, Any]]:
    """Staged events whose type starts with `prefix`, oldest first: `type`, `key` and the data."""
    events = tables.outbox_tables.events
    async with runtime.database.sessionmaker() as session:
        rows = await session.execute(
            select(events.c.event_type, events.c.partition_key, events.c.payload)
            .where(events.c.event_type.startswith(prefix))
            .order_by(events.c.id)
        )
        return [{"type": kind, "key": key, **json.loads(payload)} for kind, key, payload in rows]
