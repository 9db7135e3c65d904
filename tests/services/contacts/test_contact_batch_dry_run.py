"""POST /v1/contacts/batch/upsert?dry_run=true: the same results as the real run, and nothing kept."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.contacts.app import DEFINITION
from services.contacts.contacts.models import Contact, PropertyChange
from shared.bus.base import EventBus
from shared.events import topics
from shared.runtime import ServiceRuntime
from shared.testing.apps import service_client
from tests.services.contacts.sales_support import outbox_events

Api = tuple[httpx.AsyncClient, ServiceRuntime]
UPSERT = "/v1/contacts/batch/upsert"


@pytest.fixture
async def api(database_url: str, bus: EventBus, tmp_path: Path) -> AsyncIterator[Api]:
    # No relay: the tests publish the outbox themselves, so they know exactly what it held.
    async with service_client(
        DEFINITION, database_url=database_url, bus=bus, data_dir=tmp_path, relay=False
    ) as pair:
        response = await pair[0].post(
            "/v1/properties",
            json={
                "object_type": "contact",
                "key": "plan",
                "label": "Plan",
                "type": "enum",
                "options": ["pro"],
            },
        )
        assert response.status_code == 201, response.text
        yield pair


def _records(known_email: str, new_email: str) -> list[dict[str, Any]]:
    return [
        {"email": known_email, "last_name": "Lovelace", "tags": ["vip"]},  # updated
        {"email": new_email, "first_name": "Bob", "properties": {"plan": "pro"}},  # created
        {"email": new_email, "city": "Leeds"},  # updates the contact the record before creates
        {"email": "carol@example.com", "properties": {"plan": "gold"}},  # a bad option
        {"email": "not-an-email"},  # a bad email
        {"email": known_email},  # unchanged
    ]


def _without_created_ids(body: dict[str, Any], created: set[str]) -> dict[str, Any]:
    """The answer with the ids of contacts the batch created blanked: those differ run to run."""
    return {
        **body,
        "results": [dict(r, id="<created>" if r["id"] in created else r["id"]) for r in body["results"]],
    }


async def _count(runtime: ServiceRuntime, model: Any) -> int:
    async with runtime.database.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _keys_on_the_bus(bus: EventBus, wanted: set[str], until_seen: set[str]) -> list[str]:
    """Keys among `wanted` of every crm.contacts record, read from the start until `until_seen` all came
    by (on a shared Kafka the topic holds other tests' records too)."""
    seen: list[str] = []
    deadline = time.monotonic() + 60
    async with bus.consumer(f"dry-run-{uuid.uuid4().hex[:8]}", [topics.CONTACTS.name]) as consumer:
        while not until_seen <= set(seen) and time.monotonic() < deadline:
            seen += [r.key for r in await consumer.poll(timeout_s=0.5, max_records=500) if r.key in wanted]
    return seen


async def test_a_dry_run_answers_as_the_real_run_and_writes_nothing(api: Api, bus: EventBus) -> None:
    client, runtime = api
    ada = await client.post("/v1/contacts", json={"email": "ada@example.com", "first_name": "Ada"})
    assert ada.status_code == 201, ada.text
    ada_id = ada.json()["id"]
    relay = runtime.relay()
    assert await relay.publish_batch() == 1
    history_before = await _count(runtime, PropertyChange)
    records = _records("ada@example.com", "bob@example.com")

    dry = await client.post(UPSERT, params={"dry_run": "true"}, json={"records": records})
    assert dry.status_code == 200, dry.text
    dry_body = dry.json()
    assert [r["status"] for r in dry_body["results"]] == [
        "updated",
        "created",
        "updated",
        "error",
        "error",
        "unchanged",
    ]
    assert [r["error"]["field"] for r in dry_body["results"] if r["error"]] == ["properties.plan", "email"]
    dry_bob = dry_body["results"][1]["id"]
    assert dry_body["results"][2]["id"] == dry_bob, "a later record sees what an earlier one would write"

    # Nothing kept: no contact, no change, no history, no outbox row, so the relay has nothing to send.
    assert await outbox_events(runtime) == []
    assert await relay.publish_batch() == 0
    assert await _count(runtime, Contact) == 1
    assert await _count(runtime, PropertyChange) == history_before
    assert (await client.get(f"/v1/contacts/{dry_bob}")).status_code == 404
    after_dry = (await client.get(f"/v1/contacts/{ada_id}")).json()
    assert (after_dry["last_name"], after_dry["tags"]) == (None, [])
    assert (await client.get(f"/v1/contacts/{ada_id}/history")).json()["items"][0]["source"] == "api"

    real = await client.post(UPSERT, json={"records": records})
    assert real.status_code == 200, real.text
    real_body = real.json()
    real_bob = real_body["results"][1]["id"]
    assert _without_created_ids(real_body, {real_bob}) == _without_created_ids(dry_body, {dry_bob})
    assert (await client.get(f"/v1/contacts/{real_bob}")).json()["city"] == "Leeds"
    assert (await client.get(f"/v1/contacts/{ada_id}")).json()["last_name"] == "Lovelace"

    # Exactly the real run's events reach the bus: ada updated; bob created, then updated.
    assert await relay.publish_batch() == 3
    keys = await _keys_on_the_bus(bus, {ada_id, real_bob, dry_bob}, until_seen={ada_id, real_bob})
    assert sorted(keys) == sorted([ada_id, ada_id, real_bob, real_bob])


async def test_a_dry_run_keeps_no_answer_for_its_idempotency_key(api: Api) -> None:
    client, runtime = api
    headers = {"Idempotency-Key": f"import-{uuid.uuid4()}"}
    body = {"records": [{"email": "grace@example.com"}]}

    first = await client.post(UPSERT, params={"dry_run": "true"}, json=body, headers=headers)
    again = await client.post(UPSERT, params={"dry_run": "true"}, json=body, headers=headers)
    assert (first.status_code, again.status_code) == (200, 200)
    assert "Idempotent-Replayed" not in again.headers, "a dry run runs again: nothing was done to replay"
    assert await _count(runtime, Contact) == 0

    # The same key then carries the real write, and only that one is kept.
    real = await client.post(UPSERT, json=body, headers=headers)
    assert real.json()["created"] == 1
    replayed = await client.post(UPSERT, json=body, headers=headers)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == real.json()
    assert await _count(runtime, Contact) == 1


async def test_dry_run_takes_only_a_boolean(api: Api) -> None:
    client, _ = api
    response = await client.post(
        UPSERT, params={"dry_run": "perhaps"}, json={"records": [{"email": "a@example.com"}]}
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    [error] = response.json()["errors"]
    assert (error["field"], error["location"]) == ("dry_run", "query")


async def test_the_dry_run_is_documented(api: Api) -> None:
    client, _ = api
    operation = (await client.get("/openapi.json")).json()["paths"][UPSERT]["post"]
    [dry_run] = [p for p in operation["parameters"] if p["name"] == "dry_run"]
    schema = dry_run["schema"]
    assert (dry_run["in"], schema["type"], schema["default"]) == ("query", "boolean", False)
    assert "rolled back" in operation["description"]
    example = operation["responses"]["200"]["content"]["application/json"]["example"]
    assert [r["status"] for r in example["results"]] == ["created", "updated", "error"]
