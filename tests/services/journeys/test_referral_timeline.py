"""Referral activity on the unified timeline: a known contact's conversion, the click that led to it
(at the time it happened, whichever event comes first), and what the conversion earned or lost after.
A crawler's click is on no one's timeline; merges move it all, erasures take it away."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.bus.embedded import EmbeddedBus
from shared.events import topics
from shared.events.base import Event
from shared.events.catalog import ContactErased, ContactMerged
from shared.events.envelope import to_message
from shared.events.referrals import (
    ClickRecorded,
    CommissionCreated,
    CommissionReversed,
    ConversionRecorded,
    ConversionStatusChanged,
)
from shared.runtime import ServiceRuntime
from tests.services.journeys.support import Api, caught_up, contacts_say, journeys_api

CLICKED = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
BOUGHT = CLICKED + timedelta(hours=2)
REFUNDED = BOUGHT + timedelta(days=3)
PROGRAM, LINK, AFFILIATE = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


async def _referrals_say(runtime: ServiceRuntime, bus: EmbeddedBus, *events: Event) -> None:
    await bus.publish([to_message(event, source="/crm/referrals") for event in events])
    await caught_up(runtime, bus, [topics.REFERRALS.name])


async def _timeline(api: Api, contact_id: uuid.UUID, **params: str) -> list[dict[str, Any]]:
    response = await api[0].get(f"/v1/contacts/{contact_id}/timeline", params={"limit": "200", **params})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _click(click_id: str, *, is_bot: bool = False) -> ClickRecorded:
    return ClickRecorded(
        click_id=click_id,
        link_id=LINK,
        code="ada-reviews",
        program_id=PROGRAM,
        affiliate_id=AFFILIATE,
        is_bot=is_bot,
        clicked_at=CLICKED,
    )


def _conversion(conversion_id: uuid.UUID, contact_id: uuid.UUID, click_id: str) -> ConversionRecorded:
    return ConversionRecorded(
        conversion_id=conversion_id,
        program_id=PROGRAM,
        affiliate_id=AFFILIATE,
        click_id=click_id,
        contact_id=contact_id,
        source="tracker",
        transaction_id="order-1",
        goal="sale",
        amount=12_000,
        currency="EUR",
        status="pending",
        attributed=True,
        unattributed_reason=None,
        held_for_review=False,
        occurred_at=BOUGHT,
        recorded_at=BOUGHT,
    )


def _afterwards(conversion_id: uuid.UUID) -> list[Event]:
    commission = {
        "conversion_id": conversion_id,
        "commission_id": uuid.uuid4(),
        "affiliate_id": AFFILIATE,
        "contact_id": None,
        "kind": "commission",
        "amount": 1_200,
        "currency": "EUR",
    }
    return [
        CommissionCreated(**commission, rule="sale:percent:10", hold_until=BOUGHT, created_at=BOUGHT),
        ConversionStatusChanged(
            conversion_id=conversion_id,
            old_status="pending",
            new_status="refunded",
            reason="customer returned it",
            changed_at=REFUNDED,
        ),
        CommissionReversed(**commission, reason="refunded", clawback=False, reversed_at=REFUNDED),
    ]


@pytest.mark.parametrize("click_first", [True, False], ids=["click-first", "conversion-first"])
async def test_a_conversion_brings_its_click_and_its_money_onto_the_contacts_timeline(
    click_first: bool, database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    ada, conversion_id = uuid.uuid4(), uuid.uuid4()
    async with journeys_api(database_url, local_bus, tmp_path) as api:
        _, runtime = api
        clicks: list[Event] = [_click("click-ada"), _click("click-crawler", is_bot=True)]
        conversion: list[Event] = [_conversion(conversion_id, ada, "click-ada"), *_afterwards(conversion_id)]
        for events in (clicks, conversion) if click_first else (conversion, clicks):
            await _referrals_say(runtime, local_bus, *events)
        timeline = await _timeline(api, ada)
        partner_only = await _timeline(api, ada, team="partner")
        sales_only = await _timeline(api, ada, team="sales")

    assert [(item["event_type"], item["occurred_at"]) for item in timeline] == [
        ("crm.click.recorded", "2026-11-20T09:00:00Z"),
        ("crm.conversion.recorded", "2026-11-20T11:00:00Z"),
        ("crm.commission.created", timeline[2]["occurred_at"]),
        ("crm.conversion.status_changed", timeline[3]["occurred_at"]),
        ("crm.commission.reversed", timeline[4]["occurred_at"]),
    ]
    assert timeline[0]["properties"]["click_id"] == "click-ada"
    assert timeline[1]["properties"] | {"conversion_id": None} == {
        "conversion_id": None,
        "program_id": str(PROGRAM),
        "affiliate_id": str(AFFILIATE),
        "click_id": "click-ada",
        "goal": "sale",
        "amount": 12_000,
        "currency": "EUR",
        "status": "pending",
        "attributed": True,
        "unattributed_reason": None,
    }
    assert timeline[3]["properties"]["status"] == "refunded"
    assert timeline[4]["properties"]["reason"] == "refunded"
    assert {item["team"] for item in timeline} == {"partner"}
    assert {item["channel"] for item in timeline} == {"referral"}
    assert partner_only == timeline
    assert sales_only == []


async def test_a_merge_moves_referral_activity_and_an_erasure_takes_it_away(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    ada, old, conversion_id, late_conversion = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with journeys_api(database_url, local_bus, tmp_path) as api:
        _, runtime = api
        await _referrals_say(
            runtime, local_bus, _click("click-old"), _conversion(conversion_id, old, "click-old")
        )
        await contacts_say(
            runtime,
            local_bus,
            ContactMerged(
                contact_id=ada, merged_contact_id=old, merge_id=uuid.uuid4(), actor="k", merged_at=BOUGHT
            ),
        )
        # Referrals still names the old id after the merge: its events travel on another topic.
        await _referrals_say(runtime, local_bus, *_afterwards(conversion_id))
        moved = [item["event_type"] for item in await _timeline(api, ada)]
        old_after_merge = await _timeline(api, old)

        await contacts_say(
            runtime,
            local_bus,
            ContactErased(
                contact_id=ada, merged_contact_ids=[old], receipt_id=uuid.uuid4(), erased_at=REFUNDED
            ),
        )
        # Late events of the erased person's conversions, and a new conversion naming them, stay off.
        await _referrals_say(
            runtime, local_bus, *_afterwards(conversion_id), _conversion(late_conversion, old, "click-old")
        )
        erased = await _timeline(api, ada) + await _timeline(api, old)

    assert sorted(moved) == sorted(
        [
            "crm.click.recorded",
            "crm.conversion.recorded",
            "crm.contact.merged",
            "crm.commission.created",
            "crm.conversion.status_changed",
            "crm.commission.reversed",
        ]
    )
    assert old_after_merge == []
    assert erased == []
