"""Purchases reported to journeys count as sales of the programs that say so, for buyers an affiliate
brought: once per order, whatever the replays, credited like a repeat purchase of a known customer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from services.referrals.app import DEFINITION
from services.referrals.commissions.models import Commission
from services.referrals.conversions.models import Conversion
from shared.bus.embedded import EmbeddedBus
from shared.events import topics
from shared.events.base import Event
from shared.events.envelope import to_message
from shared.events.touchpoints import TouchpointRecorded, TouchpointResolved
from shared.runtime import ServiceRuntime
from shared.testing.consumers import wait_until_caught_up
from tests.services.referrals.postback_support import post, postback_key
from tests.services.referrals.support import (
    make_affiliate,
    make_conversion,
    make_program,
    referrals_api,
)

BOUGHT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


async def _journeys_say(runtime: ServiceRuntime, bus: EmbeddedBus, *events: Event) -> None:
    await bus.publish([to_message(event, source="/crm/journeys") for event in events])
    await wait_until_caught_up(
        runtime.database, DEFINITION.consumer_tables, "referrals.purchases", bus, [topics.TOUCHPOINTS.name]
    )


def _purchase(
    contact_id: uuid.UUID | None, order_id: str | None, *, channel: str = "purchase", resolved: bool = False
) -> Event:
    facts = {
        "touchpoint_id": uuid.uuid4(),
        "anonymous_id": "browser-1",
        "channel": channel,
        "touchpoint_type": "order_completed",
        "stage": None,
        "team": None,
        "campaign": None,
        "content_id": None,
        "utm_source": None,
        "utm_medium": None,
        "utm_campaign": None,
        "utm_term": None,
        "utm_content": None,
        "revenue": 5_000,
        "currency": "EUR",
        "order_id": order_id,
        "score": None,
        "occurred_at": BOUGHT,
        "received_at": BOUGHT,
    }
    if resolved:
        assert contact_id is not None
        return TouchpointResolved(**facts, contact_id=contact_id)
    return TouchpointRecorded(**facts, contact_id=contact_id)


async def test_a_purchase_of_a_customer_an_affiliate_brought_is_a_sale_once(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    brought, stranger, stitched_later = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with referrals_api(database_url, local_bus, tmp_path) as (_, runtime):
        counting = await make_program(
            runtime,
            key="counting",
            count_purchases=True,
            hold_days=0,
            commission_rules=[{"goal": "sale", "type": "percent", "percent": "10"}],
        )
        not_counting = await make_program(runtime, key="postbacks-only")
        affiliate = await make_affiliate(runtime)
        # Both buyers signed up through the affiliate (a lead), in both programs.
        for program in (counting, not_counting):
            for contact_id in (brought, stitched_later):
                await make_conversion(
                    runtime,
                    program,
                    affiliate,
                    goal="lead",
                    amount=None,
                    contact_id=contact_id,
                    occurred_at=BOUGHT - timedelta(days=3),
                )
        await _journeys_say(
            runtime,
            local_bus,
            _purchase(brought, "order-1"),
            _purchase(brought, "order-1"),  # the shop reported the same order twice
            _purchase(stranger, "order-2"),  # nobody brought this buyer
            _purchase(None, "order-3"),  # not yet known ...
            _purchase(stitched_later, "order-3", resolved=True),  # ... and stitched to a contact later
            _purchase(brought, "order-4", channel="web"),  # not a purchase
        )
        async with runtime.database.sessionmaker() as session:
            sales = list(
                await session.scalars(select(Conversion).where(Conversion.source.startswith("journeys:")))
            )
            commissions = list(
                await session.scalars(
                    select(Commission).where(Commission.conversion_id.in_([sale.id for sale in sales]))
                )
            )

    assert sorted((sale.transaction_id, sale.contact_id) for sale in sales) == sorted(
        [("order-1", brought), ("order-3", stitched_later)]
    )
    for sale in sales:
        assert (sale.program_id, sale.goal, sale.amount, sale.currency) == (counting.id, "sale", 5_000, "EUR")
        assert sale.source == "journeys:counting"
        assert (sale.affiliate_id, sale.attribution["rule"]) == (affiliate.id, "customer")
        assert sale.occurred_at == BOUGHT
    assert sorted(commission.amount for commission in commissions) == [500, 500]


async def test_a_postback_naming_a_new_customer_id_and_a_known_contact_is_credited_by_the_contact(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    ada = uuid.uuid4()
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program = await make_program(runtime, key="shop")
        affiliate = await make_affiliate(runtime)
        await make_conversion(
            runtime,
            program,
            affiliate,
            goal="sale",
            contact_id=ada,
            customer_id="crm-side-id",
            occurred_at=BOUGHT - timedelta(days=3),
        )
        key = await postback_key(client)
        # The billing system knows Ada by an id of its own, which no conversion carried before.
        answer = await post(
            client,
            key,
            {
                "customer_id": "billing-77",
                "contact_id": str(ada),
                "transaction_id": "renewal-1",
                "program": "shop",
            },
        )

    assert answer.status_code == 201, answer.text
    conversion = answer.json()["conversion"]
    assert (conversion["affiliate_id"], conversion["attributed"]) == (str(affiliate.id), True)
