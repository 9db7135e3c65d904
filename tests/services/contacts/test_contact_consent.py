"""Consent per purpose and mailing-list subscriptions: kept with source and proof, read with every
contact as `marketing_allowed`, announced without the proof."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.contacts.app import DEFINITION
from services.contacts.db import tables
from shared.bus.embedded import EmbeddedBus
from shared.runtime import ServiceRuntime
from shared.testing.apps import service_client

Api = tuple[httpx.AsyncClient, ServiceRuntime]
PROOF = {"method": "double_opt_in", "wording": "Send me news.", "ip_address": "203.0.113.9"}


@pytest.fixture
async def api(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[Api]:
    async with service_client(
        DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path, relay=False
    ) as pair:
        yield pair


async def _consent_events(runtime: ServiceRuntime) -> list[dict[str, Any]]:
    events = tables.outbox_tables.events
    async with runtime.database.sessionmaker() as session:
        rows = await session.scalars(
            select(events.c.payload)
            .where(events.c.event_type == "crm.contact.consent_changed")
            .order_by(events.c.id)
        )
        return [{"raw": bytes(payload).decode(), **json.loads(payload)} for payload in rows]


async def test_marketing_is_allowed_only_with_email_consent_and_without_a_withdrawal_of_processing(
    api: Api,
) -> None:
    client, runtime = api
    contact = (await client.post("/v1/contacts", json={"email": "ada@example.com"})).json()
    url = f"/v1/contacts/{contact['id']}"
    assert contact["marketing_allowed"] is False, "silence is not consent"

    async def consent(purpose: str, status: str) -> dict[str, Any]:
        response = await client.post(
            f"{url}/consents",
            json={"purpose": purpose, "status": status, "source": "signup_form", "proof": PROOF},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    assert (await consent("email_marketing", "granted"))["marketing_allowed"] is True
    assert (await client.get(url)).json()["marketing_allowed"] is True
    listed = (await client.get("/v1/contacts")).json()["items"]
    assert listed[0]["marketing_allowed"] is True, "every read says it"
    assert (await consent("email_marketing", "granted"))["marketing_allowed"] is True  # again: no change
    withdrawn = await consent("processing", "withdrawn")
    assert withdrawn["marketing_allowed"] is False
    assert withdrawn["consents"]["processing"]["status"] == "withdrawn"
    assert (await client.get(url)).json()["marketing_allowed"] is False

    events = await _consent_events(runtime)
    assert [(e["purpose"], e["status"], e["marketing_allowed"]) for e in events] == [
        ("email_marketing", "granted", True),
        ("processing", "withdrawn", False),
    ], "a statement that changes nothing is kept but not announced"
    assert all("203.0.113.9" not in e["raw"] and "Send me" not in e["raw"] for e in events)

    history = (await client.get(f"{url}/consents/history")).json()["items"]
    assert [(h["subject"], h["status"]) for h in history] == [
        ("processing", "withdrawn"),
        ("email_marketing", "granted"),
        ("email_marketing", "granted"),
    ]
    assert history[0]["proof"] == PROOF
    assert history[0]["actor"] == "bootstrap"


async def test_subscriptions_are_per_list_and_idempotent(api: Api) -> None:
    client, runtime = api
    contact = (await client.post("/v1/contacts", json={"email": "ada@example.com"})).json()
    url = f"/v1/contacts/{contact['id']}/subscriptions"
    for _ in range(2):
        response = await client.put(
            f"{url}/product-news", json={"status": "subscribed", "source": "preference_center"}
        )
        assert response.status_code == 200, response.text
    await client.put(f"{url}/webinars", json={"status": "unsubscribed", "source": "email_footer"})
    body = (await client.get(f"/v1/contacts/{contact['id']}")).json()
    assert {key: state["status"] for key, state in body["subscriptions"].items()} == {
        "product-news": "subscribed",
        "webinars": "unsubscribed",
    }
    events = await _consent_events(runtime)
    assert [(e["kind"], e["list_key"], e["status"]) for e in events] == [
        ("subscription", "product-news", "subscribed"),
        ("subscription", "webinars", "unsubscribed"),
    ]


async def test_bad_consent_input_is_named_and_an_unknown_contact_is_a_404(api: Api) -> None:
    client, _ = api
    contact = (await client.post("/v1/contacts", json={"email": "ada@example.com"})).json()
    url = f"/v1/contacts/{contact['id']}/consents"
    bad = await client.post(
        url, json={"purpose": "telepathy", "status": "granted", "source": "x", "proof": PROOF}
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "purpose"
    no_proof = await client.post(url, json={"purpose": "profiling", "status": "granted", "source": "x"})
    assert no_proof.status_code == 422
    assert no_proof.json()["errors"][0]["field"] == "proof"
    missing = await client.post(
        "/v1/contacts/00000000-0000-0000-0000-000000000000/consents",
        json={"purpose": "profiling", "status": "granted", "source": "x", "proof": PROOF},
    )
    assert missing.status_code == 404
    bad_list = await client.put(
        f"/v1/contacts/{contact['id']}/subscriptions/Bad List", json={"status": "subscribed", "source": "x"}
    )
    assert bad_list.status_code == 422
