"""Journeys builds each contact's timeline from the stream, once per event."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy import select

from services.journeys.app import DEFINITION
from services.journeys.db import tables
from services.journeys.timeline.handlers import TIMELINE_CONSUMER
from shared.bus.embedded import EmbeddedBus
from shared.events import topics
from shared.events.catalog import (
    ContactConsentChanged,
    ContactCreated,
    ContactErased,
    ContactLifecycleChanged,
    ContactMerged,
    ContactUpdated,
    ValueChange,
)
from shared.events.envelope import to_message
from shared.testing.apps import service_client
from shared.testing.consumers import wait_until_caught_up


def _consumed(outcome: str) -> float:
    labels = {"consumer": TIMELINE_CONSUMER.name, "outcome": outcome}
    return REGISTRY.get_sample_value("crm_events_consumed_total", labels) or 0


async def test_a_contact_created_event_appears_once_on_the_timeline(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    contact_id = uuid.uuid4()
    message = to_message(
        ContactCreated(
            contact_id=contact_id, lifecycle_stage="lead", source="ads", created_at=datetime.now(UTC)
        ),
        source="/crm/contacts",
    )
    applied, duplicates = _consumed("applied"), _consumed("duplicate")
    async with service_client(DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path) as (
        client,
        runtime,
    ):
        await local_bus.publish([message, message])  # delivered twice, as after a relay retry
        await wait_until_caught_up(
            runtime.database,
            DEFINITION.consumer_tables,
            TIMELINE_CONSUMER.name,
            local_bus,
            [topics.CONTACTS.name],
        )
        items = (await client.get(f"/v1/contacts/{contact_id}/timeline")).json()["items"]
        other = (await client.get(f"/v1/contacts/{uuid.uuid4()}/timeline")).json()["items"]

    assert len(items) == 1
    assert items[0]["event_type"] == "crm.contact.created"
    assert items[0]["source"] == "/crm/contacts"
    assert items[0]["event_id"] == message.headers["ce_id"].decode()
    assert items[0]["properties"] == {"lifecycle_stage": "lead", "source": "ads"}
    assert other == []
    assert (_consumed("applied") - applied, _consumed("duplicate") - duplicates) == (1, 1)


async def test_timeline_limit_is_validated(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> None:
    async with service_client(DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path) as (
        client,
        _,
    ):
        response = await client.get(f"/v1/contacts/{uuid.uuid4()}/timeline", params={"limit": 0})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "limit"
    assert response.json()["errors"][0]["location"] == "query"


async def test_the_timeline_pages_oldest_first_and_records_updates(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    contact_id = uuid.uuid4()
    start = datetime(2026, 11, 1, tzinfo=UTC)
    created = ContactCreated(contact_id=contact_id, lifecycle_stage="lead", created_at=start)
    updated = ContactUpdated(
        contact_id=contact_id,
        changed_fields=["first_name", "lifecycle_stage"],
        changes={"lifecycle_stage": ValueChange(old="lead", new="customer")},
        updated_at=start,
    )
    # Seven events, three of them at one instant, so a page boundary falls inside a tie.
    times = [start, start, start, *(start + timedelta(minutes=n) for n in range(1, 5))]
    messages = [to_message(created, source="/crm/contacts", time=times[0])] + [
        to_message(updated, source="/crm/contacts", time=at) for at in times[1:]
    ]
    async with service_client(DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path) as (
        client,
        runtime,
    ):
        await local_bus.publish(messages)
        await wait_until_caught_up(
            runtime.database,
            DEFINITION.consumer_tables,
            TIMELINE_CONSUMER.name,
            local_bus,
            [topics.CONTACTS.name],
        )
        pages: list[dict[str, Any]] = []
        url: str | None = f"/v1/contacts/{contact_id}/timeline?limit=2"
        while url is not None:
            response = await client.get(url)
            assert response.status_code == 200, response.text
            pages.append(response.json())
            link = response.headers.get("link")
            url = link.removeprefix("<").removesuffix('>; rel="next"') if link else None
            assert (url is None) == (pages[-1]["next_cursor"] is None)
        tampered = await client.get(
            f"/v1/contacts/{contact_id}/timeline", params={"cursor": pages[0]["next_cursor"][:-2]}
        )
        too_many = await client.get(f"/v1/contacts/{contact_id}/timeline", params={"limit": 201})

    assert [len(page["items"]) for page in pages] == [2, 2, 2, 1]
    assert all(page["contact_id"] == str(contact_id) for page in pages)
    items = [item for page in pages for item in page["items"]]
    assert sorted(item["event_id"] for item in items) == sorted(m.headers["ce_id"].decode() for m in messages)
    assert [(item["occurred_at"], item["id"]) for item in items] == sorted(
        (item["occurred_at"], item["id"]) for item in items
    )
    update = next(item for item in items if item["event_type"] == "crm.contact.updated")
    assert update["properties"] == {
        "changed_fields": ["first_name", "lifecycle_stage"],
        "changes": {"lifecycle_stage": {"old": "lead", "new": "customer"}},
    }
    assert tampered.status_code == 422
    assert tampered.json()["errors"][0]["field"] == "cursor"
    assert too_many.status_code == 422


async def test_an_erasure_removes_entries_staged_in_the_same_batch_and_is_confirmed(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    contact_id, other_id, receipt_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    start = datetime(2026, 11, 1, tzinfo=UTC)
    # Published together, so one consumer batch stages the creations before it meets the erasure.
    messages = [
        to_message(
            ContactCreated(contact_id=contact_id, lifecycle_stage="lead", created_at=start),
            source="/crm/contacts",
        ),
        to_message(
            ContactCreated(contact_id=other_id, lifecycle_stage="lead", created_at=start),
            source="/crm/contacts",
        ),
        to_message(
            ContactErased(contact_id=contact_id, receipt_id=receipt_id, erased_at=start),
            source="/crm/contacts",
        ),
    ]
    async with service_client(
        DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path, relay=False
    ) as (client, runtime):
        await local_bus.publish(messages)
        await wait_until_caught_up(
            runtime.database,
            DEFINITION.consumer_tables,
            TIMELINE_CONSUMER.name,
            local_bus,
            [topics.CONTACTS.name],
        )
        erased = (await client.get(f"/v1/contacts/{contact_id}/timeline")).json()["items"]
        kept = (await client.get(f"/v1/contacts/{other_id}/timeline")).json()["items"]
        events = tables.outbox_tables.events
        async with runtime.database.sessionmaker() as session:
            confirmations = list(
                await session.scalars(
                    select(events.c.payload).where(events.c.event_type == "crm.erasure.confirmed")
                )
            )
    assert erased == []
    assert len(kept) == 1
    [confirmation] = [json.loads(payload) for payload in confirmations]
    assert (confirmation["receipt_id"], confirmation["service"]) == (str(receipt_id), "journeys")


async def test_an_erasure_that_arrives_before_the_merge_still_erases_the_merged_contacts_entries(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    """The merge is keyed by the merged contact, the erasure by the survivor: on Kafka they may arrive in
    either order. Erased first, the merged contact's entries go by the erasure's `merged_contact_ids`,
    and the merge that follows moves nothing back."""
    survivor, merged, bystander = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    at = datetime(2026, 11, 1, tzinfo=UTC)
    messages = [
        to_message(
            ContactCreated(contact_id=c, lifecycle_stage="lead", created_at=at), source="/crm/contacts"
        )
        for c in (survivor, merged, bystander)
    ]
    messages += [
        to_message(
            ContactErased(
                contact_id=survivor, merged_contact_ids=[merged], receipt_id=uuid.uuid4(), erased_at=at
            ),
            source="/crm/contacts",
        ),
        to_message(
            ContactMerged(
                contact_id=survivor, merged_contact_id=merged, merge_id=uuid.uuid4(), actor="k", merged_at=at
            ),
            source="/crm/contacts",
        ),
    ]
    async with service_client(
        DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path, relay=False
    ) as (client, runtime):
        await local_bus.publish(messages)
        await wait_until_caught_up(
            runtime.database,
            DEFINITION.consumer_tables,
            TIMELINE_CONSUMER.name,
            local_bus,
            [topics.CONTACTS.name],
        )
        timelines = {
            contact: [
                e["event_type"]
                for e in (await client.get(f"/v1/contacts/{contact}/timeline")).json()["items"]
            ]
            for contact in (survivor, merged, bystander)
        }
    assert timelines[merged] == []
    assert timelines[bystander] == ["crm.contact.created"]
    # Only the merge's own entry: the survivor's creation and the merged one's were erased.
    assert timelines[survivor] == ["crm.contact.merged"]


async def test_lifecycle_and_consent_changes_are_on_the_timeline_at_their_time(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    ada = uuid.uuid4()
    at = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    events = [
        ContactCreated(contact_id=ada, lifecycle_stage="lead", created_at=at),
        ContactConsentChanged(
            contact_id=ada,
            kind="consent",
            purpose="email_marketing",
            status="granted",
            source="signup_form",
            marketing_allowed=True,
            changed_at=at + timedelta(minutes=1),
        ),
        ContactLifecycleChanged(
            contact_id=ada,
            from_stage="lead",
            to_stage="mql",
            actor="key-1",
            changed_at=at + timedelta(days=2),
        ),
    ]
    async with service_client(DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path) as (
        client,
        runtime,
    ):
        # Published late, as a relay that was down would: each sits where it happened.
        await local_bus.publish(
            [to_message(event, source="/crm/contacts", time=at + timedelta(days=3)) for event in events]
        )
        await wait_until_caught_up(
            runtime.database,
            DEFINITION.consumer_tables,
            TIMELINE_CONSUMER.name,
            local_bus,
            [topics.CONTACTS.name],
        )
        items = (await client.get(f"/v1/contacts/{ada}/timeline")).json()["items"]
        lifecycle = (
            await client.get(f"/v1/contacts/{ada}/timeline", params={"type": "crm.contact.lifecycle_changed"})
        ).json()["items"]

    assert [(item["event_type"], item["occurred_at"]) for item in items] == [
        ("crm.contact.created", "2026-11-20T09:00:00Z"),
        ("crm.contact.consent_changed", "2026-11-20T09:01:00Z"),
        ("crm.contact.lifecycle_changed", "2026-11-22T09:00:00Z"),
    ]
    assert items[1]["properties"] == {
        "kind": "consent",
        "purpose": "email_marketing",
        "list_key": None,
        "status": "granted",
        "source": "signup_form",
        "marketing_allowed": True,
    }
    assert items[2]["properties"] == {"from_stage": "lead", "to_stage": "mql", "actor": "key-1"}
    assert [item["event_type"] for item in lifecycle] == ["crm.contact.lifecycle_changed"]
