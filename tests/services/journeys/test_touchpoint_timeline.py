"""Touchpoints on the unified timeline: a resolved touchpoint joins its contact's timeline at the time it
occurred, on either bus and either database; a merge moves touchpoints to the survivor, an erasure
deletes the person's touchpoints, even those journeys had not resolved."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select

from services.journeys.db import tables
from services.journeys.identities.models import ContactIdentityLink
from services.journeys.timeline.models import TimelineEntry
from shared.bus.base import EventBus
from shared.bus.embedded import EmbeddedBus
from shared.db import session_scope
from shared.events import topics
from shared.events.catalog import ContactCreated, ContactErased, ContactMerged
from shared.events.envelope import to_message
from shared.replay import replay_consumer
from shared.runtime import ServiceRuntime
from tests.services.journeys.support import (
    Api,
    caught_up,
    contacts_say,
    everything_stored,
    hasher,
    journeys_api,
    outbox_events,
    publish_staged,
    touchpoint_count,
)

AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _touchpoint(**fields: Any) -> dict[str, Any]:
    return {"occurred_at": AT.isoformat(), "channel": "web", "type": "page_view", **fields}


async def _record(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/touchpoints", json=body)
    assert response.status_code == 201, response.text
    recorded: dict[str, Any] = response.json()
    return recorded


async def _timeline(api: Api, contact_id: object) -> list[dict[str, Any]]:
    response = await api[0].get(f"/v1/contacts/{contact_id}/timeline", params={"limit": 200})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _settled(runtime: ServiceRuntime, bus: EventBus, timeout_s: float = 120) -> None:
    """Every event journeys staged is on the bus, and its own consumer has applied everything there."""
    events = tables.outbox_tables.events
    deadline = time.monotonic() + timeout_s
    while True:
        async with runtime.database.sessionmaker() as session:
            if not await session.scalar(select(func.count()).select_from(events)):
                break
        assert time.monotonic() < deadline, "the relay did not publish the outbox"
        await asyncio.sleep(0.05)
    await caught_up(runtime, bus, [topics.CONTACTS.name, topics.TOUCHPOINTS.name])


async def _until(
    fetch: Callable[[], Awaitable[list[dict[str, Any]]]],
    done: Callable[[list[dict[str, Any]]], bool],
    timeout_s: float = 120,
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while not done(found := await fetch()):
        assert time.monotonic() < deadline, f"not reached in {timeout_s} s: {found}"
        await asyncio.sleep(0.05)
    return found


async def test_a_touchpoint_joins_its_contacts_timeline_in_time_order_on_either_bus(
    database_url: str, bus: EventBus, tmp_path: Path
) -> None:
    ada = uuid.uuid4()
    async with journeys_api(database_url, bus, tmp_path, relay=True) as api:
        client, _ = api
        created = ContactCreated(contact_id=ada, lifecycle_stage="lead", created_at=AT)
        await bus.publish([to_message(created, source="/crm/contacts", time=AT)])
        purchase = await _record(
            client,
            _touchpoint(
                contact_id=str(ada),
                occurred_at=(AT + timedelta(days=2)).isoformat(),
                channel="purchase",
                type="order_completed",
                stage="purchase",
                team="sales",
                revenue=12900,
                currency="eur",
                order_id="10482",
                properties={"coupon": "ADA10"},
            ),
        )
        # Before the contact was created: a visit that contacts only learnt of later.
        visit = await _record(
            client,
            _touchpoint(
                contact_id=str(ada), occurred_at=(AT - timedelta(days=1)).isoformat(), campaign="launch"
            ),
        )
        await _record(client, _touchpoint(anonymous_id="stranger"))
        # Waited for by what must show, not by the consumer's positions: on a broker shared with other
        # runs the group may start at offsets committed by them, past partitions this test never writes.
        timeline = await _until(lambda: _timeline(api, ada), lambda items: len(items) >= 3)

    assert [(item["event_type"], item["occurred_at"]) for item in timeline] == [
        ("crm.touchpoint.recorded", visit["occurred_at"]),
        ("crm.contact.created", "2026-11-20T09:00:00Z"),
        ("crm.touchpoint.recorded", purchase["occurred_at"]),
    ]
    assert timeline[2]["source"] == "/crm/journeys"
    assert timeline[2]["properties"] == {
        "channel": "purchase",
        "type": "order_completed",
        "stage": "purchase",
        "team": "sales",
        "campaign": None,
        "content_id": None,
        "revenue": 12900,
        "currency": "EUR",
        "order_id": "10482",
        "score": None,
    }
    assert timeline[0]["properties"]["campaign"] == "launch"


async def test_a_merge_moves_touchpoints_and_an_erasure_deletes_the_persons_touchpoints(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    ada, old, grace = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with journeys_api(database_url, local_bus, tmp_path, relay=True) as api:
        client, runtime = api
        ada_hash = hasher(runtime).email("ada@example.com")
        await contacts_say(
            runtime,
            local_bus,
            ContactCreated(contact_id=ada, lifecycle_stage="lead", email_hashes=[ada_hash], created_at=AT),
        )
        of_old = await _record(client, _touchpoint(contact_id=str(old), anonymous_id="ada-laptop"))
        by_email = await _record(client, _touchpoint(email="ada@example.com", anonymous_id="ada-phone"))
        # Ada's browser before she was known, an address journeys cannot resolve yet, and the shared
        # family computer, where Grace is known by her id.
        before_known = await _record(client, _touchpoint(anonymous_id="ada-laptop"))
        shared = await _record(client, _touchpoint(contact_id=str(grace), anonymous_id="ada-phone"))
        await _settled(runtime, local_bus)
        # `before_known` may be resolved as it is recorded or stitched just after: the relay runs.
        assert by_email["contact_id"] == str(ada)

        await contacts_say(
            runtime,
            local_bus,
            ContactMerged(
                contact_id=ada, merged_contact_id=old, merge_id=uuid.uuid4(), actor="k", merged_at=AT
            ),
        )
        moved = (await client.get(f"/v1/touchpoints/{of_old['id']}")).json()
        ada_timeline = [item["event_type"] for item in await _timeline(api, ada)]
        old_timeline = await _timeline(api, old)

        await contacts_say(
            runtime,
            local_bus,
            ContactErased(contact_id=ada, merged_contact_ids=[old], receipt_id=uuid.uuid4(), erased_at=AT),
        )
        gone = [
            (await client.get(f"/v1/touchpoints/{t['id']}")).status_code
            for t in (of_old, by_email, before_known)
        ]
        kept = await client.get(f"/v1/touchpoints/{shared['id']}")
        erased_timeline = await _timeline(api, ada)
        stored = await everything_stored(runtime)

    assert moved["contact_id"] == str(ada)
    # Three touchpoints: the laptop's anonymous one was stitched to `old`, whose touchpoint named that
    # browser, and moved to Ada with the rest of `old`'s history.
    assert sorted(ada_timeline) == sorted(
        ["crm.contact.created", "crm.contact.merged"] + 3 * ["crm.touchpoint.recorded"]
    )
    assert old_timeline == []
    assert gone == [404, 404, 404]
    assert kept.status_code == 200
    assert kept.json()["contact_id"] == str(grace)
    assert erased_timeline == []
    for trace in (ada_hash, "ada-laptop", str(old)):
        assert trace not in stored, trace


async def test_a_touchpoint_event_that_comes_after_the_erasure_stays_off_the_timeline(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    """The erasure travels on crm.contacts, the touchpoint on crm.touchpoints: either may come first."""
    ada = uuid.uuid4()
    async with journeys_api(database_url, local_bus, tmp_path) as api:
        client, runtime = api
        await _record(client, _touchpoint(contact_id=str(ada)))
        [staged] = await outbox_events(runtime, "crm.touchpoint.")
        await contacts_say(
            runtime, local_bus, ContactErased(contact_id=ada, receipt_id=uuid.uuid4(), erased_at=AT)
        )
        await publish_staged(runtime, local_bus, "crm.touchpoint.recorded")
        timeline = await _timeline(api, ada)
        stored = await touchpoint_count(runtime)

    assert json.loads(staged["raw"])["contact_id"] == str(ada)
    assert timeline == []
    assert stored == 0


async def _view(runtime: ServiceRuntime) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    async with runtime.database.sessionmaker() as session:
        entries = await session.execute(
            select(
                TimelineEntry.id,
                TimelineEntry.contact_id,
                TimelineEntry.event_type,
                TimelineEntry.occurred_at,
                TimelineEntry.properties,
            ).order_by(TimelineEntry.id)
        )
        links = await session.execute(
            select(
                ContactIdentityLink.kind,
                ContactIdentityLink.value,
                ContactIdentityLink.contact_id,
                ContactIdentityLink.linked_at,
            ).order_by(ContactIdentityLink.kind, ContactIdentityLink.value)
        )
        return [tuple(row) for row in entries], [tuple(row) for row in links]


async def test_a_replay_rebuilds_the_touchpoint_entries_and_identity_links_as_they_were(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    ada, old = uuid.uuid4(), uuid.uuid4()
    async with journeys_api(database_url, local_bus, tmp_path, relay=True) as (client, runtime):
        email = hasher(runtime).email
        await contacts_say(
            runtime,
            local_bus,
            ContactCreated(
                contact_id=ada, lifecycle_stage="lead", email_hashes=[email("ada@example.com")], created_at=AT
            ),
            ContactCreated(
                contact_id=old, lifecycle_stage="lead", email_hashes=[email("ada@old.example")], created_at=AT
            ),
        )
        await _record(client, _touchpoint(email="ada@example.com"))
        await _record(client, _touchpoint(contact_id=str(old), channel="purchase", type="order_completed"))
        await _record(client, _touchpoint(anonymous_id="stranger"))
        await _settled(runtime, local_bus)
        await contacts_say(
            runtime,
            local_bus,
            ContactMerged(
                contact_id=ada, merged_contact_id=old, merge_id=uuid.uuid4(), actor="k", merged_at=AT
            ),
        )
        live = await _view(runtime)

    async with journeys_api(database_url, local_bus, tmp_path, consumers=False) as (_, runtime):
        async with session_scope(runtime.database) as session:  # a view gone wrong
            await session.execute(delete(TimelineEntry))
            await session.execute(delete(ContactIdentityLink))
        [runner] = [r for r in runtime.consumer_runners() if r.spec.name == "journeys.timeline"]
        await replay_consumer(runner)
        rebuilt = await _view(runtime)

    entries, links = live
    assert [(row[1], row[2]) for row in entries].count((ada, "crm.touchpoint.recorded")) == 2
    assert {(kind, contact) for kind, _value, contact, _at in links} == {
        ("email_hash", ada),
        ("merged_contact", ada),
    }
    assert rebuilt == live
