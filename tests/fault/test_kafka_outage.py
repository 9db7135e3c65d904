"""Fault test: the Kafka broker stops while contacts are being created, then comes back.

Every contact the API accepted must reach the journeys timeline exactly once: the outbox keeps events
while the broker is away (no loss), and the consumer drops redeliveries by event id (no double effect).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

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
        with httpx.Client(timeout=30) as client:
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
    with httpx.Client(timeout=30) as client:
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

    time.sleep(2)
    own_broker.stop()
    accepted_before_outage_ended = len(writer.accepted)
    time.sleep(4)
    written_during_outage = len(writer.accepted) - accepted_before_outage_ended
    own_broker.start()
    time.sleep(2)
    writer.stop_writing.set()
    writer.join()

    assert writer.failures == [], "the API must keep accepting contacts while the broker is away"
    assert written_during_outage > 10, "the outage should have overlapped real traffic"
    contact_ids = writer.accepted

    wait_until(
        lambda: all(size >= 1 for size in _timeline_sizes(urls["journeys"], contact_ids).values()),
        timeout_s=120,
        interval_s=1,
        message="some accepted contacts never reached the journeys timeline",
    )
    time.sleep(3)  # give any redelivered duplicate the chance to (wrongly) show up
    sizes = _timeline_sizes(urls["journeys"], contact_ids)
    assert sorted(set(sizes.values())) == [1], {k: v for k, v in sizes.items() if v != 1}
    journeys_log = (tmp_path / "journeys.log").read_text()
    assert "sent to DLQ" not in journeys_log
