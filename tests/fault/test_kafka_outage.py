"""Fault test: the Kafka broker stops while contacts are being created, then comes back.

Every contact the API accepted must reach the journeys timeline exactly once: the outbox keeps events
while the broker is away (no loss), and the consumer drops redeliveries by event id (no double effect).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from services.contacts.db import tables as contacts_tables
from services.contacts.settings import ContactsSettings
from services.journeys.app import DEFINITION as JOURNEYS
from services.journeys.settings import JourneysSettings
from services.journeys.timeline.handlers import TIMELINE_CONSUMER
from shared.bus.kafka import KafkaBus
from shared.db import Database, read_scope
from shared.events import topics
from shared.testing.apps import ADMIN_HEADERS
from shared.testing.consumers import wait_until_caught_up
from shared.testing.distributed import distributed_env
from shared.testing.infra import REPOSITORY, KafkaBroker
from shared.testing.processes import wait_until
from tests.conftest import Launcher


@pytest.fixture
def own_broker() -> Iterator[KafkaBroker]:
    """A broker of this test's own, so stopping it disturbs no other test."""
    broker = KafkaBroker(
        port=int(os.environ.get("CRM_TEST_FAULT_KAFKA_PORT", "19192")),
        data_dir=REPOSITORY / ".infra" / "fault-kafka",
    )
    broker.reset()
    broker.start()
    yield broker
    broker.reset()


class ContactWriter(threading.Thread):
    """Creates contacts at a steady pace until told to stop; remembers what the API answered."""

    def __init__(self, contacts_url: str) -> None:
        super().__init__(daemon=True)
        self.contacts_url = contacts_url
        self.stop_writing = threading.Event()
        self.accepted: list[str] = []
        self.failures: list[str] = []

    def run(self) -> None:
        with httpx.Client(timeout=30, headers=ADMIN_HEADERS) as client:
            n = 0
            while not self.stop_writing.is_set():
                n += 1
                response = client.post(
                    f"{self.contacts_url}/v1/contacts", json={"email": f"p{n}@outage.example"}
                )
                if response.status_code == 201:
                    self.accepted.append(response.json()["id"])
                else:
                    self.failures.append(f"{response.status_code}: {response.text}")
                time.sleep(0.05)


def _timeline_sizes(journeys_url: str, contact_ids: list[str]) -> dict[str, int]:
    with httpx.Client(timeout=30, headers=ADMIN_HEADERS) as client:
        return {
            contact_id: len(client.get(f"{journeys_url}/v1/contacts/{contact_id}/timeline").json()["items"])
            for contact_id in contact_ids
        }


@pytest.mark.e2e
@pytest.mark.kafka
@pytest.mark.postgres
def test_a_broker_outage_delays_events_but_never_drops_or_doubles_them(
    postgres_url: str, own_broker: KafkaBroker, tmp_path: Path, launch: Launcher
) -> None:
    env = distributed_env(postgres_url, own_broker.bootstrap, tmp_path)
    urls = launch(env, "contacts", "journeys")
    writer = ContactWriter(urls["contacts"])
    writer.start()

    wait_until(lambda: len(writer.accepted) >= 10, timeout_s=60, message="no contacts accepted")
    own_broker.stop()
    accepted_before_outage = len(writer.accepted)
    # Readiness rests on the database: the API stays in its Service while the bus is away.
    wait_until(
        lambda: httpx.get(f"{urls['contacts']}/readyz", timeout=10).json().get("status") == "degraded",
        timeout_s=30,
        message="contacts never reported the bus as degraded",
    )
    assert httpx.get(f"{urls['contacts']}/readyz", timeout=10).status_code == 200
    wait_until(
        lambda: len(writer.accepted) >= accepted_before_outage + 20,
        timeout_s=60,
        message="the API stopped accepting contacts while the broker was away",
    )
    own_broker.start()
    wait_until(lambda: len(writer.accepted) >= accepted_before_outage + 40, timeout_s=60)
    writer.stop_writing.set()
    writer.join()

    assert writer.failures == [], "the API must keep accepting contacts while the broker is away"
    contact_ids = writer.accepted

    # Positive evidence that everything settled: the contacts outbox is empty (all published), and the
    # journeys consumer's stored positions reached the end of the topic (all applied or skipped).
    asyncio.run(_settled(env, own_broker.bootstrap))
    sizes = _timeline_sizes(urls["journeys"], contact_ids)
    assert sorted(set(sizes.values())) == [1], {k: v for k, v in sizes.items() if v != 1}
    journeys_log = (tmp_path / "journeys.log").read_text()
    assert "sent to DLQ" not in journeys_log


async def _settled(env: dict[str, str], bootstrap: str) -> None:
    contacts = Database(ContactsSettings(database_url=env["CRM_CONTACTS_DATABASE_URL"]).database_url or "")
    journeys = Database(JourneysSettings(database_url=env["CRM_JOURNEYS_DATABASE_URL"]).database_url or "")
    bus = KafkaBus(bootstrap)
    try:
        for _ in range(600):
            async with read_scope(contacts) as session:
                events = contacts_tables.outbox_tables.events
                if not await session.scalar(select(func.count()).select_from(events)):
                    break
            await asyncio.sleep(0.2)
        else:
            raise TimeoutError("the contacts outbox never emptied")
        await wait_until_caught_up(
            journeys,
            JOURNEYS.consumer_tables,
            TIMELINE_CONSUMER.name,
            bus,
            [topics.CONTACTS.name],
            timeout_s=120,
        )
    finally:
        await bus.stop()
        await contacts.dispose()
        await journeys.dispose()
