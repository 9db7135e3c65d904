"""Journeys builds each contact's timeline from the stream, once per event."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from services.journeys.app import DEFINITION
from shared.bus.embedded import EmbeddedBus
from shared.events.catalog import ContactCreated
from shared.events.envelope import to_message
from shared.testing.apps import service_client


async def _timeline(
    client: httpx.AsyncClient, contact_id: uuid.UUID, *, expect: int
) -> list[dict[str, object]]:
    for _ in range(100):
        items: list[dict[str, object]] = (await client.get(f"/v1/contacts/{contact_id}/timeline")).json()[
            "items"
        ]
        if len(items) >= expect:
            return items
        await asyncio.sleep(0.05)
    return items


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
    async with service_client(DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path) as (
        client,
        _,
    ):
        await local_bus.publish([message, message])  # delivered twice, as after a relay retry
        items = await _timeline(client, contact_id, expect=1)
        await asyncio.sleep(0.3)  # time for the duplicate to be (wrongly) applied, if it were
        items = (await client.get(f"/v1/contacts/{contact_id}/timeline")).json()["items"]
        other = (await client.get(f"/v1/contacts/{uuid.uuid4()}/timeline")).json()["items"]
        metrics = (await client.get("/metrics")).text

    assert len(items) == 1
    assert items[0]["event_type"] == "crm.contact.created"
    assert items[0]["source"] == "/crm/contacts"
    assert items[0]["event_id"] == message.headers["ce_id"].decode()
    assert items[0]["properties"] == {"lifecycle_stage": "lead", "source": "ads"}
    assert other == []
    for outcome in ("applied", "duplicate"):
        assert f'crm_events_consumed_total{{consumer="journeys.timeline",outcome="{outcome}"}}' in metrics


async def test_timeline_limit_is_validated(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> None:
    async with service_client(DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path) as (
        client,
        _,
    ):
        response = await client.get(f"/v1/contacts/{uuid.uuid4()}/timeline", params={"limit": 0})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "limit"
    assert response.json()["errors"][0]["location"] == "query"
