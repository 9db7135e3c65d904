"""The contact counters fed by `crm.touchpoints`, on SQLite and PostgreSQL: visits by the 30-minute rule,
purchases and revenue in the reporting currency and per other currency, the latest activity; merged ids
count for the survivor, unknown and erased contacts are skipped, nothing counts twice, and `crm replay`
refuses to count it all again."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.contacts.activity.handlers import ACTIVITY_CONSUMER
from services.contacts.app import DEFINITION
from services.contacts.contacts.models import Contact
from services.journeys.app import DEFINITION as JOURNEYS
from shared.bus.base import EventBus, Message
from shared.bus.embedded import EmbeddedBus
from shared.events import topics
from shared.events.envelope import to_message
from shared.events.touchpoints import TouchpointRecorded, TouchpointResolved
from shared.replay import ReplayRefused, replay_consumer
from shared.runtime import ServiceRuntime
from shared.testing.apps import service_client
from shared.testing.consumers import wait_until_caught_up
from tests.services.contacts.sales_support import Api, contacts_api, create_contact, problem

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture
async def api(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[Api]:
    async with contacts_api(database_url, local_bus, tmp_path) as pair:
        yield pair


def touchpoint(
    contact_id: object, channel: str, kind: str, minutes: float = 0, **fields: Any
) -> TouchpointRecorded:
    """A touchpoint `minutes` after T0, as journeys announces it."""
    at = T0 + timedelta(minutes=minutes)
    return TouchpointRecorded.model_validate(
        {
            "touchpoint_id": uuid.uuid4(),
            "contact_id": contact_id,
            "anonymous_id": None,
            "channel": channel,
            "touchpoint_type": kind,
            "stage": None,
            "team": None,
            "campaign": None,
            "content_id": None,
            "utm_source": None,
            "utm_medium": None,
            "utm_campaign": None,
            "utm_term": None,
            "utm_content": None,
            "revenue": None,
            "currency": None,
            "order_id": None,
            "score": None,
            "occurred_at": at,
            "received_at": at,
            **fields,
        }
    )


async def journeys_say(
    runtime: ServiceRuntime, bus: EmbeddedBus, *events: TouchpointRecorded | TouchpointResolved | Message
) -> list[Message]:
    """Publish touchpoint events as journeys would, and wait until the counters consumer settled them."""
    messages = [
        event if isinstance(event, Message) else to_message(event, source="/crm/journeys") for event in events
    ]
    await bus.publish(messages)
    await wait_until_caught_up(
        runtime.database, DEFINITION.consumer_tables, ACTIVITY_CONSUMER.name, bus, [topics.TOUCHPOINTS.name]
    )
    return messages


async def stored(runtime: ServiceRuntime, contact_id: str) -> Contact:
    async with runtime.database.sessionmaker() as session:
        contact = await session.scalar(select(Contact).where(Contact.id == uuid.UUID(contact_id)))
        assert contact is not None
        return contact


def counters(contact: dict[str, Any]) -> tuple[Any, ...]:
    return (
        contact["visits"],
        contact["purchases"],
        contact["revenue_minor"],
        contact["revenue_by_currency"],
        contact["last_activity_at"],
    )


async def test_visits_purchases_revenue_and_the_latest_activity_follow_the_rules(
    api: Api, local_bus: EmbeddedBus
) -> None:
    client, runtime = api
    ada = await create_contact(client)
    before = await client.get(f"/v1/contacts/{ada}")
    events = [
        touchpoint(ada, "web", "page_view", 0),  # a visit: the first web activity
        touchpoint(ada, "web", "page_view", 10),  # the same visit
        touchpoint(ada, "web", "form_submitted", 35),  # web activity, not a page view
        touchpoint(ada, "web", "page_view", 50),  # 15 minutes after the form: the same visit
        touchpoint(ada, "web", "page_view", 80),  # 30 minutes after: a new visit
        touchpoint(ada, "web", "page_view", -120),  # arrives late, older than the latest: no visit
        touchpoint(ada, "purchase", "order_completed", 85, revenue=12900, currency="EUR"),
        touchpoint(ada, "purchase", "order_completed", 86, revenue=500, currency="USD"),
        touchpoint(ada, "purchase", "order_completed", 87, revenue=250, currency="USD"),
        touchpoint(ada, "purchase", "subscription_renewed", 88),  # a purchase without revenue
        touchpoint(ada, "email", "page_view", 200),  # not web: the latest activity, no visit
        touchpoint(None, "purchase", "order_completed", 300, revenue=99, currency="EUR"),  # unresolved
    ]
    published = await journeys_say(runtime, local_bus, *events)
    # The relay sent the euro purchase again (the same CloudEvents id, a new offset): it counts once.
    await journeys_say(runtime, local_bus, published[6], published[6])

    # The unresolved purchase, stitched to Ada later: it counts now, once.
    resolved = TouchpointResolved.model_validate(
        events[-1].model_dump(exclude={"type"}) | {"contact_id": ada}
    )
    await journeys_say(runtime, local_bus, resolved)

    after = await client.get(f"/v1/contacts/{ada}")
    assert counters(after.json()) == (2, 5, 12999, {"USD": 750}, "2026-11-20T14:00:00Z")
    assert after.headers["etag"] != before.headers["etag"], "the counters are part of the contact's version"
    assert (await stored(runtime, ada)).last_web_activity_at == T0 + timedelta(minutes=80)


async def test_the_reporting_currency_is_a_setting(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with service_client(
        DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path, reporting_currency="usd"
    ) as (client, runtime):
        ada = await create_contact(client)
        await journeys_say(
            runtime,
            local_bus,
            touchpoint(ada, "purchase", "order_completed", revenue=500, currency="USD"),
            touchpoint(ada, "purchase", "order_completed", revenue=12900, currency="EUR"),
        )
        contact = (await client.get(f"/v1/contacts/{ada}")).json()
    assert (contact["purchases"], contact["revenue_minor"], contact["revenue_by_currency"]) == (
        2,
        500,
        {"EUR": 12900},
    )


async def test_merged_ids_count_for_the_survivor_and_unknown_or_erased_contacts_are_skipped(
    api: Api, local_bus: EmbeddedBus
) -> None:
    client, runtime = api
    ada, augusta, gone = [await create_contact(client) for _ in range(3)]
    await journeys_say(
        runtime,
        local_bus,
        touchpoint(ada, "web", "page_view", 0),
        touchpoint(ada, "purchase", "order_completed", 1, revenue=100, currency="USD"),
        touchpoint(augusta, "web", "page_view", 5),
        touchpoint(augusta, "purchase", "order_completed", 6, revenue=50, currency="USD"),
        touchpoint(augusta, "purchase", "order_completed", 7, revenue=10, currency="EUR"),
        touchpoint(gone, "web", "page_view", 8),
    )
    merged = await client.post(f"/v1/contacts/{ada}/merge", json={"merge_id": augusta})
    assert merged.status_code == 200, merged.text
    assert counters(merged.json()["contact"]) == (2, 3, 10, {"USD": 150}, "2026-11-20T09:07:00Z")
    assert (await client.post(f"/v1/contacts/{gone}/erasure")).status_code == 202

    await journeys_say(
        runtime,
        local_bus,
        touchpoint(augusta, "web", "page_view", 20),  # 15 minutes after Augusta's last: no visit
        touchpoint(augusta, "web", "page_view", 55),  # 35 minutes after that one: a visit, for Ada
        touchpoint(uuid.uuid4(), "purchase", "order_completed", revenue=1, currency="EUR"),
        touchpoint(gone, "purchase", "order_completed", revenue=1, currency="EUR"),
    )

    assert counters((await client.get(f"/v1/contacts/{ada}")).json()) == (
        3,
        3,
        10,
        {"USD": 150},
        "2026-11-20T09:55:00Z",
    )
    problem(await client.get(f"/v1/contacts/{gone}"), 410)
    tombstone = await stored(runtime, gone)
    # The counts stay for the KPIs over the past; when the person was active is erased with them.
    assert (tombstone.visits, tombstone.purchases, tombstone.revenue_minor) == (1, 0, 0)
    assert (tombstone.last_activity_at, tombstone.last_web_activity_at) == (None, None)
    dead_letters = await local_bus.end_offsets([topics.TOUCHPOINTS.dead_letter])
    assert sum(dead_letters.values()) == 0, "skipped, not dead-lettered"


async def test_a_replay_is_refused_rather_than_counting_again(
    api: Api, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from services.cli import app

    client, runtime = api
    ada = await create_contact(client)
    await journeys_say(
        runtime, local_bus, touchpoint(ada, "purchase", "order_completed", revenue=100, currency="EUR")
    )
    [runner] = [r for r in runtime.consumer_runners() if r.spec.name == ACTIVITY_CONSUMER.name]
    with pytest.raises(ReplayRefused, match=r"contacts\.activity cannot be replayed"):
        await replay_consumer(runner)
    assert counters((await client.get(f"/v1/contacts/{ada}")).json())[:3] == (0, 1, 100)

    env = {"CRM_DATA_DIR": str(tmp_path / "cli"), "CRM_BUS": "embedded"}
    refused = CliRunner().invoke(app, ["replay", "contacts", "contacts.activity"], env=env)
    assert refused.exit_code == 1
    assert "contacts.activity cannot be replayed" in refused.output


async def _until(
    fetch: Callable[[], Awaitable[dict[str, Any]]], done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while not done(found := await fetch()):
        assert time.monotonic() < deadline, f"not reached in 120 s: {found}"
        await asyncio.sleep(0.05)
    return found


async def test_touchpoints_posted_to_journeys_count_on_the_contact_on_either_bus(
    bus: EventBus, tmp_path: Path
) -> None:
    """Contacts and journeys, each on its own database, joined by the bus: journeys learns the contact's
    email from contacts' events, resolves touchpoints sent by email, and contacts counts them."""
    async with (
        service_client(
            DEFINITION, database_url=f"sqlite:///{tmp_path / 'contacts.sqlite'}", bus=bus, data_dir=tmp_path
        ) as (contacts, _),
        service_client(
            JOURNEYS, database_url=f"sqlite:///{tmp_path / 'journeys.sqlite'}", bus=bus, data_dir=tmp_path
        ) as (journeys, _),
    ):
        created = await contacts.post("/v1/contacts", json={"email": "ada@example.com"})
        assert created.status_code == 201, created.text
        ada = created.json()["id"]
        # Journeys knows her email once her creation is on her timeline.
        await _until(
            lambda: _json(journeys.get(f"/v1/contacts/{ada}/timeline")),
            lambda timeline: len(timeline["items"]) == 1,
        )

        def sent(minutes: int, **fields: Any) -> dict[str, Any]:
            at = T0 + timedelta(minutes=minutes)
            return {"email": "ADA@example.com", "occurred_at": at.isoformat(), **fields}

        batch = await journeys.post(
            "/v1/touchpoints/batch",
            json={
                "records": [
                    sent(0, channel="web", type="page_view"),
                    sent(10, channel="web", type="page_view"),
                    sent(45, channel="web", type="page_view"),
                    sent(50, channel="purchase", type="order_completed", revenue=12900, currency="EUR"),
                    sent(55, channel="purchase", type="order_completed", revenue=500, currency="USD"),
                    {**sent(60, channel="web", type="page_view"), "email": "someone@example.com"},
                ]
            },
        )
        assert batch.status_code == 200, batch.text
        assert batch.json()["created"] == 6
        counted = await _until(
            lambda: _json(contacts.get(f"/v1/contacts/{ada}")), lambda contact: contact["purchases"] == 2
        )

    assert counters(counted) == (2, 2, 12900, {"USD": 500}, "2026-11-20T09:55:00Z")


async def _json(response: Awaitable[httpx.Response]) -> dict[str, Any]:
    answer = await response
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body
