"""Fault test: the journeys database goes away while events arrive, then comes back.

The consumer must wait the outage out (not dead-letter the events it could not apply), and once the
database is back every event must be on the timeline exactly once.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy.engine import make_url

from services.journeys.app import DEFINITION
from services.journeys.timeline.handlers import TIMELINE_CONSUMER
from shared.bus.embedded import EmbeddedBus
from shared.events import topics
from shared.events.catalog import ContactCreated
from shared.events.envelope import to_message
from shared.testing.apps import service_client
from shared.testing.consumers import wait_until_caught_up
from shared.testing.infra import REPOSITORY, PostgresServer


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, so stopping it disturbs no other test."""
    server = PostgresServer(
        port=int(os.environ.get("CRM_TEST_FAULT_POSTGRES_PORT", "55532")),
        data_dir=REPOSITORY / ".infra" / "fault-postgres",
    )
    server.start()
    yield server
    server.stop()


async def _timeline_sizes(client: httpx.AsyncClient, contact_ids: list[uuid.UUID]) -> list[int]:
    sizes = []
    for contact_id in contact_ids:
        response = await client.get(f"/v1/contacts/{contact_id}/timeline")
        sizes.append(len(response.json()["items"]) if response.status_code == 200 else -1)
    return sizes


def _outage_retries() -> float:
    labels = {"consumer": TIMELINE_CONSUMER.name, "reason": "outage"}
    return REGISTRY.get_sample_value("crm_consumer_retries_total", labels) or 0


@pytest.mark.postgres
async def test_a_database_outage_delays_events_but_never_dead_letters_them(
    own_postgres: PostgresServer, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    database_url = make_url(own_postgres.url).set(database=f"outage_{uuid.uuid4().hex[:8]}")
    contact_ids = [uuid.uuid4() for _ in range(20)]
    messages = [
        to_message(
            ContactCreated(contact_id=c, lifecycle_stage="lead", created_at=datetime.now(UTC)),
            source="/crm/contacts",
        )
        for c in contact_ids
    ]
    async with service_client(
        DEFINITION,
        database_url=database_url.render_as_string(hide_password=False),
        bus=local_bus,
        data_dir=tmp_path,
    ) as (client, runtime):
        await local_bus.publish(messages[:5])
        for _ in range(100):
            if await _timeline_sizes(client, contact_ids[:5]) == [1] * 5:
                break
            await asyncio.sleep(0.1)

        await asyncio.to_thread(own_postgres.stop)
        outage_waits = _outage_retries()
        await local_bus.publish(messages[5:])  # arrive while the database is down
        # More attempts than the bounded retries allow: had they been used, the events would be dead.
        for _ in range(600):
            if _outage_retries() > outage_waits + 2 * runtime.consumer_runners()[0].max_attempts:
                break
            await asyncio.sleep(0.1)
        await asyncio.to_thread(own_postgres.start)

        for _ in range(300):
            if await _timeline_sizes(client, contact_ids) == [1] * 20:
                break
            await asyncio.sleep(0.1)
        await local_bus.publish(messages[:3])  # late redeliveries of already-applied events
        await wait_until_caught_up(
            runtime.database,
            DEFINITION.consumer_tables,
            TIMELINE_CONSUMER.name,
            local_bus,
            [topics.CONTACTS.name],
        )
        sizes = await _timeline_sizes(client, contact_ids)

    assert await local_bus.end_offsets([topics.CONTACTS.dead_letter]) == {(topics.CONTACTS.dead_letter, 0): 0}
    assert sizes == [1] * 20
