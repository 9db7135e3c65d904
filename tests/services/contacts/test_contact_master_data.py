"""A contact's master data over HTTP: identities, descriptive fields, custom properties, lifecycle and
property history, and what of it reaches the stream (ids and non-personal values only)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.contacts.app import DEFINITION
from services.contacts.contacts.models import Contact, ContactIdentity
from services.contacts.db import tables
from shared.bus.embedded import EmbeddedBus
from shared.runtime import ServiceRuntime
from shared.testing.apps import service_client

Api = tuple[httpx.AsyncClient, ServiceRuntime]

ADA = {
    "email": "Ada@Example.com",
    "emails": ["ada@work.example"],
    "first_name": "Ada",
    "last_name": "Lovelace",
    "country": "gb",
    "phone": "020 7183 8750",
    "mobile_phone": "+44 7700 900123",
    "street": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4LB",
    "birthday": "1815-12-10",
    "job_title": "Analyst",
    "company_name": "Analytical Engines",
    "owner": "user_17",
    "region": "EMEA",
    "lifecycle_stage": "lead",
    "source": "webinar",
    "tags": ["VIP", "newsletter"],
    "external_ids": [{"system": "shopify", "id": "42"}],
    "anonymous_ids": ["anon-1"],
    "properties": {"plan": "pro", "score": 7.5, "nickname": "Addie"},
}
# Values that identify Ada: none may appear in any event.
PERSONAL = ("ada@", "Lovelace", "Ada", "7183", "900123", "James", "SW1Y", "1815", "Addie", "Analyst")


@pytest.fixture
async def api(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[Api]:
    async with service_client(
        DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path, relay=False
    ) as pair:
        client, _ = pair
        for definition in (
            {"key": "plan", "type": "enum", "options": ["free", "pro"], "personal_data": False},
            {"key": "score", "type": "number", "personal_data": False},
            {"key": "nickname", "type": "string"},
            {"key": "interests", "type": "multi_enum", "options": ["ai", "crm", "iot"]},
            {"key": "renewal", "type": "date", "personal_data": False},
            {"key": "beta", "type": "bool", "personal_data": False},
        ):
            response = await client.post(
                "/v1/properties", json={"object_type": "contact", "label": definition["key"], **definition}
            )
            assert response.status_code == 201, response.text
        yield pair


async def _events(runtime: ServiceRuntime, event_type: str | None = None) -> list[dict[str, Any]]:
    events = tables.outbox_tables.events
    statement = select(events.c.event_type, events.c.payload).order_by(events.c.id)
    if event_type is not None:
        statement = statement.where(events.c.event_type == event_type)
    async with runtime.database.sessionmaker() as session:
        rows = await session.execute(statement)
        return [
            {"type": kind, "raw": bytes(payload).decode(), **json.loads(payload)} for kind, payload in rows
        ]


async def _counts(runtime: ServiceRuntime) -> tuple[int, int, int]:
    async with runtime.database.sessionmaker() as session:
        contacts = await session.scalar(select(func.count()).select_from(Contact))
        identities = await session.scalar(select(func.count()).select_from(ContactIdentity))
        events = await session.scalar(select(func.count()).select_from(tables.outbox_tables.events))
    return int(contacts or 0), int(identities or 0), int(events or 0)


async def test_a_contact_holds_identity_descriptive_and_custom_data_and_publishes_none_of_it(
    api: Api,
) -> None:
    client, runtime = api
    response = await client.post("/v1/contacts", json=ADA)
    assert response.status_code == 201, response.text
    ada = response.json()
    assert response.headers["etag"] == '"1"'
    assert ada["email"] == "ada@example.com"
    assert ada["emails"] == ["ada@example.com", "ada@work.example"]
    assert (ada["phone"], ada["mobile_phone"], ada["country"]) == ("+442071838750", "+447700900123", "GB")
    assert ada["tags"] == ["newsletter", "vip"]
    assert ada["external_ids"] == [{"system": "shopify", "id": "42"}]
    assert ada["anonymous_ids"] == ["anon-1"]
    assert ada["properties"] == {"plan": "pro", "score": 7.5, "nickname": "Addie"}
    assert (ada["visits"], ada["purchases"], ada["revenue_minor"], ada["last_activity_at"]) == (0, 0, 0, None)
    assert (await client.get(f"/v1/contacts/{ada['id']}")).json() == ada

    patched = await client.patch(
        f"/v1/contacts/{ada['id']}",
        json={"last_name": "King", "properties": {"score": 9, "nickname": "Countess"}, "region": "UK"},
    )
    assert patched.status_code == 200, patched.text

    [created] = await _events(runtime, "crm.contact.created")
    assert (created["schema_version"], created["owner"], created["region"], created["country"]) == (
        3,
        "user_17",
        "EMEA",
        "GB",
    )
    assert len(created["email_hashes"]) == len(ada["emails"]), "every email, as a keyed hash"
    [updated] = await _events(runtime, "crm.contact.updated")
    assert updated["email_hashes"] is None, "the emails did not change"
    assert updated["changed_fields"] == ["last_name", "properties.nickname", "properties.score", "region"]
    # Values only of fields that are not personal data: the region, and `score` (personal_data: false).
    assert updated["changes"] == {
        "properties.score": {"old": 7.5, "new": 9},
        "region": {"old": "EMEA", "new": "UK"},
    }
    for event in await _events(runtime):
        for personal in (*PERSONAL, "King", "Countess"):
            assert personal not in event["raw"], (event["type"], personal)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"first_name": "No identity"}, "email"),
        ({"email": "bob@example.com", "phone": "12"}, "phone"),
        ({"email": "bob@example.com", "phone": "020 7183 8750"}, "phone"),  # national, no country
        ({"email": "bob@example.com", "country": "XX"}, "country"),
        ({"email": "bob@example.com", "birthday": "2999-01-01"}, "birthday"),
        ({"email": "bob@example.com", "tags": ["no/slashes"]}, "tags.0"),
        (
            {"email": "bob@example.com", "external_ids": [{"system": "Shop Ify", "id": "1"}]},
            "external_ids.0.system",
        ),
        ({"email": "bob@example.com", "emails": ["not-an-email"]}, "emails.0"),
        ({"email": "bob@example.com", "properties": {"unknown": 1}}, "properties.unknown"),
        ({"email": "bob@example.com", "properties": {"score": "high"}}, "properties.score"),
        ({"email": "bob@example.com", "properties": {"score": 10**400}}, "properties.score"),  # no float
        ({"email": "bob@example.com", "properties": {"plan": "gold"}}, "properties.plan"),
        ({"email": "bob@example.com", "properties": {"interests": ["ai", "vr"]}}, "properties.interests"),
        ({"email": "bob@example.com", "properties": {"renewal": "soon"}}, "properties.renewal"),
        ({"email": "bob@example.com", "properties": {"beta": "yes"}}, "properties.beta"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(
    api: Api, body: dict[str, Any], field: str
) -> None:
    client, runtime = api
    before = await _counts(runtime)
    response = await client.post("/v1/contacts", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in {error["field"] for error in response.json()["errors"]}
    assert await _counts(runtime) == before


@pytest.mark.parametrize(
    "taken",
    [
        {"email": "ADA@example.com"},
        {"email": "new@example.com", "emails": ["ada@work.example"]},
        {"email": "new@example.com", "external_ids": [{"system": "shopify", "id": "42"}]},
        {"email": "new@example.com", "anonymous_ids": ["anon-1"]},
    ],
)
async def test_a_taken_identity_is_a_409_naming_its_holder_and_writes_nothing(
    api: Api, taken: dict[str, Any]
) -> None:
    client, runtime = api
    ada = (await client.post("/v1/contacts", json=ADA)).json()
    before = await _counts(runtime)
    response = await client.post("/v1/contacts", json=taken)
    assert response.status_code == 409, response.text
    assert response.json()["existing_id"] == ada["id"]
    assert await _counts(runtime) == before

    other = (await client.post("/v1/contacts", json={"email": "grace@example.com"})).json()
    before = await _counts(runtime)
    response = await client.patch(f"/v1/contacts/{other['id']}", json=taken)
    assert response.status_code == 409, response.text
    assert response.json()["existing_id"] == ada["id"]
    assert await _counts(runtime) == before
    assert (await client.get(f"/v1/contacts/{other['id']}")).json() == other


async def test_a_patch_replaces_identities_and_frees_the_ones_it_drops(api: Api) -> None:
    client, _ = api
    ada = (await client.post("/v1/contacts", json=ADA)).json()
    response = await client.patch(
        f"/v1/contacts/{ada['id']}",
        json={
            "email": "countess@example.com",
            "emails": [],
            "external_ids": [{"system": "stripe", "id": "cus_1"}],
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["emails"] == ["countess@example.com"]
    assert body["external_ids"] == [{"system": "stripe", "id": "cus_1"}]
    assert body["anonymous_ids"] == ["anon-1"]  # not given: kept
    # The dropped identities are free for someone else.
    response = await client.post(
        "/v1/contacts",
        json={
            "email": "ada@example.com",
            "emails": ["ada@work.example"],
            "external_ids": ADA["external_ids"],
        },
    )
    assert response.status_code == 201, response.text


async def test_custom_properties_merge_key_by_key_and_null_clears_one(api: Api) -> None:
    client, _ = api
    ada = (await client.post("/v1/contacts", json=ADA)).json()
    response = await client.patch(
        f"/v1/contacts/{ada['id']}",
        json={
            "properties": {
                "nickname": None,
                "interests": ["iot", "ai"],
                "renewal": "2027-01-31",
                "beta": True,
            }
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["properties"] == {
        "plan": "pro",
        "score": 7.5,
        "interests": ["ai", "iot"],  # in the definition's order
        "renewal": "2027-01-31",
        "beta": True,
    }


async def test_lifecycle_transitions_keep_time_actor_and_reason(api: Api) -> None:
    client, runtime = api
    ada = (await client.post("/v1/contacts", json=ADA)).json()
    url = f"/v1/contacts/{ada['id']}"
    moved = await client.post(
        f"{url}/lifecycle", json={"stage": "sales_qualified_lead", "reason": "Asked for a demo"}
    )
    assert moved.status_code == 200, moved.text
    assert (await client.patch(url, json={"lifecycle_stage": "churned"})).status_code == 200
    stale = await client.post(f"{url}/lifecycle", json={"stage": "customer"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412

    transitions = (await client.get(f"{url}/lifecycle")).json()["items"]
    assert [(t["from_stage"], t["to_stage"], t["reason"]) for t in transitions] == [
        (None, "lead", None),
        ("lead", "sales_qualified_lead", "Asked for a demo"),
        ("sales_qualified_lead", "churned", None),
    ]
    assert {t["actor"] for t in transitions} == {"bootstrap"}
    events = await _events(runtime, "crm.contact.lifecycle_changed")
    assert [(e["from_stage"], e["to_stage"], e["actor"]) for e in events] == [
        ("lead", "sales_qualified_lead", "bootstrap"),
        ("sales_qualified_lead", "churned", "bootstrap"),
    ]
    assert all("demo" not in event["raw"] for event in events), "the reason stays in the service"
    assert (
        await client.get("/v1/contacts/00000000-0000-0000-0000-000000000000/lifecycle")
    ).status_code == 404


async def test_the_history_shows_who_changed_what_and_when_custom_fields_included(api: Api) -> None:
    client, _ = api
    ada = (await client.post("/v1/contacts", json=ADA)).json()
    url = f"/v1/contacts/{ada['id']}"
    await client.patch(url, json={"job_title": "Mathematician", "properties": {"score": 8}})
    await client.patch(url, json={"job_title": "Countess", "tags": ["vip"]})

    history = (await client.get(f"{url}/history")).json()["items"]
    changes = [(h["property"], h["old_value"], h["new_value"]) for h in history]
    assert ("job_title", "Mathematician", "Countess") in changes
    assert ("job_title", "Analyst", "Mathematician") in changes
    assert ("job_title", None, "Analyst") in changes  # creation
    assert ("properties.score", 7.5, 8) in changes
    assert ("tags", ["newsletter", "vip"], ["vip"]) in changes
    assert changes.index(("job_title", "Mathematician", "Countess")) < changes.index(
        ("job_title", "Analyst", "Mathematician")
    ), "newest first"
    assert {(h["actor"], h["source"]) for h in history} == {("bootstrap", "api")}

    only = (await client.get(f"{url}/history", params={"property": "job_title", "limit": 2})).json()
    assert [h["new_value"] for h in only["items"]] == ["Countess", "Mathematician"]
    rest = (
        await client.get(f"{url}/history", params={"property": "job_title", "cursor": only["next_cursor"]})
    ).json()
    assert [h["new_value"] for h in rest["items"]] == ["Analyst"]


async def test_property_definitions_are_listed_checked_and_only_grow_options_in_use(api: Api) -> None:
    client, _ = api
    listed = (await client.get("/v1/properties", params={"object_type": "contact"})).json()["items"]
    assert [p["key"] for p in listed] == ["beta", "interests", "nickname", "plan", "renewal", "score"]
    again = await client.post(
        "/v1/properties", json={"object_type": "contact", "key": "plan", "label": "Plan", "type": "string"}
    )
    assert again.status_code == 409
    assert again.json()["existing_id"] == next(p["id"] for p in listed if p["key"] == "plan")
    no_options = await client.post(
        "/v1/properties", json={"object_type": "contact", "key": "tier", "label": "Tier", "type": "enum"}
    )
    assert no_options.status_code == 422

    await client.post("/v1/contacts", json=ADA)  # holds plan = pro
    removed = await client.patch("/v1/properties/contact/plan", json={"options": ["free"]})
    assert removed.status_code == 422
    assert removed.json()["errors"][0]["field"] == "options"
    grown = await client.patch(
        "/v1/properties/contact/plan", json={"options": ["free", "pro", "team"], "label": "Plan"}
    )
    assert grown.status_code == 200
    assert grown.json()["options"] == ["free", "pro", "team"]
    assert (await client.get("/v1/properties/contact/nope")).status_code == 404
