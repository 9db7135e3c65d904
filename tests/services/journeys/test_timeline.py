"""Journeys builds each contact's timeline from the stream, once per event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import REGISTRY

from services.journeys.app import DEFINITION
from services.journeys.timeline.handlers import TIMELINE_CONSUMER
from shared.bus.embedded import EmbeddedBus
from shared.events import topics
from shared.events.catalog import ContactCreated
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
