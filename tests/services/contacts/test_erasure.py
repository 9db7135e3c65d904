"""Erasure: the person's data gone here at once, 410 afterwards, no personal data left in any table or
event, and each service's confirmation collected on the receipt."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from services.contacts.app import DEFINITION
from shared.bus.embedded import EmbeddedBus
from shared.runtime import ServiceRuntime
from shared.testing.apps import service_client
from tests.services.support import embedded_client

Api = tuple[httpx.AsyncClient, ServiceRuntime]
ADA = {
    "email": "ada.erased@example.com",
    "emails": ["countess.erased@example.com"],
    "first_name": "Augusta",
    "last_name": "Byronic",
    "phone": "+442071838750",
    "city": "Marylebone",
    "owner": "user_17",
    "region": "EMEA",
    "lifecycle_stage": "lead",
    "tags": ["poetry"],
    "external_ids": [{"system": "shop", "id": "ada-42"}],
    "anonymous_ids": ["anon-ada"],
    "properties": {"nickname": "Lady Byronic"},
}
PERSONAL = ("ada.erased", "countess.erased", "Augusta", "Byronic", "7183", "Marylebone", "ada-42", "anon-ada")


@pytest.fixture
async def api(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[Api]:
    async with service_client(
        DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path, relay=False
    ) as pair:
        yield pair


async def _everything_stored(runtime: ServiceRuntime) -> str:
    """Every row of every table of the service, as text."""
    dumped = []
    async with runtime.database.engine.connect() as connection:
        for table in DEFINITION.metadata.sorted_tables:
            rows = await connection.execute(text(f'SELECT * FROM "{table.name}"'))
            dumped += [f"{table.name}: {tuple(row)!r}" for row in rows]
    return "\n".join(dumped)


async def test_an_erased_contact_reads_410_and_leaves_no_personal_data_anywhere(api: Api) -> None:
    client, runtime = api
    await client.post(
        "/v1/properties",
        json={"object_type": "contact", "key": "nickname", "label": "Nickname", "type": "string"},
    )
    ada = (await client.post("/v1/contacts", json=ADA)).json()
    url = f"/v1/contacts/{ada['id']}"
    await client.patch(url, json={"last_name": "Byronic-King", "job_title": "Augusta's analyst"})
    await client.post(
        f"{url}/consents",
        json={
            "purpose": "email_marketing",
            "status": "granted",
            "source": "signup_form",
            "proof": {"method": "checkbox", "wording": "Augusta agrees", "ip_address": "203.0.113.7"},
        },
    )
    await client.post(
        f"{url}/entries",
        json={
            "kind": "review",
            "body": "Augusta praised the Analytical Engine",
            "score": 5,
            "scale": "five_star",
        },
    )
    before = await _everything_stored(runtime)
    assert all(value in before for value in (*PERSONAL, "Analytical")), "the test data must be there"

    erased = await client.post(f"{url}/erasure")
    assert erased.status_code == 202, erased.text
    receipt = erased.json()
    assert {s["service"]: s["status"] for s in receipt["services"]} == {
        "contacts": "confirmed",
        "journeys": "pending",
        "referrals": "pending",
        "kpi": "pending",
    }
    assert receipt["complete"] is False
    assert erased.headers["location"].endswith(f"/v1/erasures/{receipt['id']}")
    assert (await client.get(f"/v1/erasures/{receipt['id']}")).json() == receipt
    again = await client.post(f"{url}/erasure")
    assert again.json()["id"] == receipt["id"], "asked again, the same receipt"

    for response in (
        await client.get(url),
        await client.patch(url, json={"first_name": "Back"}),
        await client.get(f"{url}/history"),
        await client.get(f"{url}/lifecycle"),
        await client.get(f"{url}/consents"),
        await client.get(f"{url}/entries"),
    ):
        assert response.status_code == 410, response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get("/v1/contacts")).json()["items"] == []
    assert (await client.post("/v1/contacts/search", json={"with_total": True})).json()["total"] == 0

    stored = await _everything_stored(runtime)
    leaks = [value for value in (*PERSONAL, "203.0.113.7", "Lady", "Analytical") if value in stored]
    assert not leaks, f"personal data left after erasure: {leaks}"
    # What the KPIs count stays, without the person.
    assert "user_17" in stored
    assert "EMEA" in stored
    # The identities are free again.
    assert (await client.post("/v1/contacts", json={"email": ADA["email"]})).status_code == 201


async def test_every_service_confirms_on_the_receipt(tmp_path: Path) -> None:
    async with embedded_client(tmp_path) as client:
        created = await client.post("/contacts/v1/contacts", json={"email": "grace@example.com"})
        contact_id = created.json()["id"]
        timeline = f"/journeys/v1/contacts/{contact_id}/timeline"
        await _until(lambda: client.get(timeline), lambda body: len(body["items"]) == 1)

        receipt = (await client.post(f"/contacts/v1/contacts/{contact_id}/erasure")).json()
        confirmed = await _until(
            lambda: client.get(f"/contacts/v1/erasures/{receipt['id']}"),
            lambda body: (
                {"journeys", "referrals"}
                <= {s["service"] for s in body["services"] if s["status"] == "confirmed"}
            ),
        )
        # Every service that holds personal data confirms; kpi keeps none yet and has not.
        assert [s["service"] for s in confirmed["services"] if s["status"] == "confirmed"] == [
            "contacts",
            "journeys",
            "referrals",
        ]
        assert (await client.get(timeline)).json()["items"] == [], "journeys erased the timeline"


async def _until(fetch: Any, done: Any, timeout_s: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        response = await fetch()
        body: dict[str, Any] = response.json()
        if done(body):
            return body
        assert time.monotonic() < deadline, f"not reached in {timeout_s} s: {body}"
        await asyncio.sleep(0.05)
