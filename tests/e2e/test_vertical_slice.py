"""The vertical slice end to end, through real processes: a contact created on contacts shows up on
its journeys timeline. Once embedded (`crm dev`), once distributed (four processes, PostgreSQL, Kafka)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from services.contacts.db import tables as contacts_tables
from services.contacts.settings import ContactsSettings
from shared.db import Database, read_scope
from shared.testing.apps import ADMIN_HEADERS
from shared.testing.distributed import SERVICE_NAMES, distributed_env
from shared.testing.processes import CrmProcess, free_port, wait_until
from tests.conftest import Launcher


async def _outbox_rows(database_url: str) -> int:
    normalized = ContactsSettings(database_url=database_url).database_url
    assert normalized is not None
    database = Database(normalized)
    try:
        async with read_scope(database) as session:
            return int(
                await session.scalar(select(func.count()).select_from(contacts_tables.outbox_tables.events))
                or 0
            )
    finally:
        await database.dispose()


def _create_and_follow(contacts: str, journeys: str, headers: dict[str, str] = ADMIN_HEADERS) -> None:
    created = httpx.post(
        f"{contacts}/v1/contacts",
        json={"email": "grace@example.com", "source": "e2e"},
        headers=headers,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    contact_id = created.json()["id"]

    def timeline() -> list[dict[str, object]]:
        items: list[dict[str, object]] = httpx.get(
            f"{journeys}/v1/contacts/{contact_id}/timeline", headers=headers, timeout=10
        ).json()["items"]
        return items

    wait_until(lambda: timeline(), timeout_s=60, message="the contact never reached the journeys timeline")
    [entry] = timeline()
    assert entry["event_type"] == "crm.contact.created"
    assert entry["properties"] == {"lifecycle_stage": "subscriber", "source": "e2e"}


@pytest.mark.e2e
def test_embedded_mode_serves_every_service_and_carries_the_event(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with CrmProcess(
        ["dev", "--port", str(port), "--data-dir", str(tmp_path / "var")],
        env={},
        log_path=tmp_path / "dev.log",
        health_url=f"{base}/healthz",
    ) as process:
        for service in SERVICE_NAMES:
            assert httpx.get(f"{base}/{service}/docs", timeout=10).status_code == 200
            assert httpx.get(f"{base}/{service}/readyz", timeout=10).json()["status"] == "ready"
        # No CRM_BOOTSTRAP_API_KEY: `crm dev` made an admin key in the data folder and printed it.
        key = (tmp_path / "var" / "bootstrap-api-key").read_text().strip()
        assert httpx.get(f"{base}/contacts/v1/keys", timeout=10).status_code == 401
        _create_and_follow(f"{base}/contacts", f"{base}/journeys", {"Authorization": f"Bearer {key}"})
    log = process.tail(200)
    assert key in log
    assert f"{base}/contacts/docs" in log, "crm dev should print where the docs are"
    assert (tmp_path / "var" / "events.sqlite").exists()
    assert (tmp_path / "var" / "contacts.sqlite").exists()


@pytest.mark.e2e
@pytest.mark.kafka
@pytest.mark.postgres
def test_distributed_mode_on_postgres_and_kafka(
    postgres_url: str, kafka_bootstrap: str, tmp_path: Path, launch: Launcher
) -> None:
    env = distributed_env(postgres_url, kafka_bootstrap, tmp_path)
    urls = launch(env, *SERVICE_NAMES)
    for url in urls.values():
        ready = httpx.get(f"{url}/readyz", timeout=15)
        assert ready.status_code == 200, ready.text
    _create_and_follow(urls["contacts"], urls["journeys"])


@pytest.mark.e2e
@pytest.mark.kafka
@pytest.mark.postgres
def test_relay_and_consumers_as_separate_workers(
    postgres_url: str, kafka_bootstrap: str, tmp_path: Path, launch: Launcher
) -> None:
    env = distributed_env(postgres_url, kafka_bootstrap, tmp_path)
    env.update({"CRM_CONTACTS_RUN_RELAY": "false", "CRM_JOURNEYS_RUN_CONSUMERS": "false"})
    urls = launch(env, "contacts", "journeys")
    created = httpx.post(
        f"{urls['contacts']}/v1/contacts", json={"email": "w@example.com"}, headers=ADMIN_HEADERS, timeout=10
    )
    assert created.status_code == 201, created.text
    contact_id = created.json()["id"]
    timeline_url = f"{urls['journeys']}/v1/contacts/{contact_id}/timeline"

    # The web processes say which workers they run: no relay on contacts, no consumer on journeys.
    contacts_workers = (tmp_path / "contacts.log").read_text()
    assert (
        "contacts: workers running: contacts:bus-probe, contacts:housekeeping, contacts:contacts.erasures, "
        "contacts:contacts.activity, contacts:contacts.access\n" in contacts_workers
    )
    journeys_workers = (tmp_path / "journeys.log").read_text()
    assert (
        "journeys: workers running: journeys:bus-probe, journeys:housekeeping, journeys:relay\n"
        in journeys_workers
    )
    assert asyncio.run(_outbox_rows(env["CRM_CONTACTS_DATABASE_URL"])) == 1, "nothing may have relayed it"

    workers = [
        CrmProcess(["relay", "contacts"], env=env, log_path=tmp_path / "relay.log"),
        CrmProcess(["consume", "journeys"], env=env, log_path=tmp_path / "consume.log"),
    ]
    try:
        for worker in workers:
            worker.start(timeout_s=60)
        wait_until(
            lambda: httpx.get(timeline_url, headers=ADMIN_HEADERS, timeout=10).json()["items"],
            timeout_s=60,
            message="the workers did not carry the event to the timeline",
        )
    finally:
        for worker in workers:
            worker.stop()
    assert len(httpx.get(timeline_url, headers=ADMIN_HEADERS, timeout=10).json()["items"]) == 1
