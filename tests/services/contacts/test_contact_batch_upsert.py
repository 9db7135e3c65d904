"""POST /v1/contacts/batch/upsert: one result per record, one bad record failing only itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.contacts.app import DEFINITION
from services.contacts.contacts.models import Contact
from services.contacts.db import tables
from shared.bus.embedded import EmbeddedBus
from shared.runtime import ServiceRuntime
from shared.testing.apps import service_client

Api = tuple[httpx.AsyncClient, ServiceRuntime]


@pytest.fixture
async def api(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[Api]:
    async with service_client(
        DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path, relay=False
    ) as pair:
        response = await pair[0].post(
            "/v1/properties",
            json={"object_type": "contact", "key": "score", "label": "Score", "type": "number"},
        )
        assert response.status_code == 201, response.text
        yield pair


async def _upsert(client: httpx.AsyncClient, *records: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/contacts/batch/upsert", json={"records": list(records)})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _event_types(runtime: ServiceRuntime) -> list[tuple[str, str]]:
    events = tables.outbox_tables.events
    async with runtime.database.sessionmaker() as session:
        rows = await session.execute(
            select(events.c.event_type, events.c.partition_key).order_by(events.c.id)
        )
        return [(kind, key) for kind, key in rows]


async def test_each_record_gets_its_own_result_and_a_bad_one_fails_only_itself(api: Api) -> None:
    client, runtime = api
    ada = (await client.post("/v1/contacts", json={"email": "ada@example.com", "first_name": "Ada"})).json()
    grace = (
        await client.post(
            "/v1/contacts",
            json={"email": "grace@example.com", "external_ids": [{"system": "crm", "id": "g"}]},
        )
    ).json()
    before = await _event_types(runtime)

    body = await _upsert(
        client,
        {"email": "ADA@example.com", "last_name": "Lovelace"},  # updated
        {"email": "grace@example.com"},  # unchanged
        {"email": "alan@example.com", "properties": {"score": 3}},  # created
        {"email": "not-an-email"},  # invalid
        {"email": "bob@example.com", "properties": {"score": "high"}},  # invalid property
        {"first_name": "Nobody"},  # nothing to match on
        {"email": "ada@example.com", "external_ids": [{"system": "crm", "id": "g"}]},  # two contacts
        {"email": "carol@example.com", "nickname": "C"},  # unknown field
    )
    statuses = [(result["index"], result["status"]) for result in body["results"]]
    assert statuses == [
        (0, "updated"),
        (1, "unchanged"),
        (2, "created"),
        (3, "error"),
        (4, "error"),
        (5, "error"),
        (6, "error"),
        (7, "error"),
    ]
    assert (body["created"], body["updated"], body["unchanged"], body["failed"]) == (1, 1, 1, 5)
    results = body["results"]
    assert results[0]["id"] == ada["id"]
    assert results[1]["id"] == grace["id"]
    assert [results[i]["error"]["field"] for i in (3, 4, 5, 7)] == [
        "email",
        "properties.score",
        "email",
        "nickname",
    ]
    assert results[6]["error"]["code"] == "conflict"
    assert results[6]["error"]["existing_id"] in {ada["id"], grace["id"]}

    alan_id = results[2]["id"]
    assert (await client.get(f"/v1/contacts/{alan_id}")).json()["properties"] == {"score": 3}
    assert (await client.get(f"/v1/contacts/{ada['id']}")).json()["last_name"] == "Lovelace"
    new_events = (await _event_types(runtime))[len(before) :]
    assert sorted(new_events) == sorted(
        [("crm.contact.updated", ada["id"]), ("crm.contact.created", alan_id)]
    ), "only the written records are announced"
    async with runtime.database.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Contact)) == 3


async def test_records_sharing_an_identity_apply_in_order(api: Api) -> None:
    client, _ = api
    body = await _upsert(
        client,
        {"email": "ada@example.com", "first_name": "Ada", "properties": {"score": 1}},
        {"email": "ada@example.com", "properties": {"score": 2}},
        {"emails": ["ada@example.com"], "external_ids": [{"system": "shop", "id": "7"}]},
        {"external_ids": [{"system": "shop", "id": "7"}], "last_name": "Lovelace"},
    )
    statuses = [result["status"] for result in body["results"]]
    assert statuses == ["created", "updated", "updated", "updated"], body
    assert len({result["id"] for result in body["results"]}) == 1
    ada = (await client.get(f"/v1/contacts/{body['results'][0]['id']}")).json()
    assert (ada["first_name"], ada["last_name"], ada["properties"]) == ("Ada", "Lovelace", {"score": 2})
    assert ada["external_ids"] == [{"system": "shop", "id": "7"}]


async def test_an_upsert_adds_identities_and_never_drops_or_repoints_them(api: Api) -> None:
    client, _ = api
    ada = (
        await client.post(
            "/v1/contacts",
            json={
                "email": "ada@example.com",
                "emails": ["ada@work.example"],
                "external_ids": [{"system": "shop", "id": "1"}],
            },
        )
    ).json()
    body = await _upsert(
        client, {"email": "ada@work.example", "external_ids": [{"system": "stripe", "id": "cus_1"}]}
    )
    assert body["results"][0] == {"index": 0, "status": "updated", "id": ada["id"], "error": None}
    after = (await client.get(f"/v1/contacts/{ada['id']}")).json()
    assert after["email"] == "ada@example.com", "matching by a secondary email keeps the primary"
    assert after["emails"] == ["ada@example.com", "ada@work.example"]
    assert after["external_ids"] == [{"system": "shop", "id": "1"}, {"system": "stripe", "id": "cus_1"}]

    history = (
        await client.get(f"/v1/contacts/{ada['id']}/history", params={"property": "external_ids"})
    ).json()
    assert history["items"][0]["source"] == "batch"


async def test_the_batch_itself_is_bounded(api: Api) -> None:
    client, _ = api
    too_many = await client.post(
        "/v1/contacts/batch/upsert", json={"records": [{"email": f"p{i}@example.com"} for i in range(1001)]}
    )
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["field"] == "records"
    empty = await client.post("/v1/contacts/batch/upsert", json={"records": []})
    assert empty.status_code == 422
    not_objects = await client.post("/v1/contacts/batch/upsert", json={"records": [1]})
    assert not_objects.status_code == 422


async def test_a_full_batch_of_a_thousand_is_created_then_found_again(api: Api) -> None:
    client, _ = api
    records = [
        {
            "email": f"p{index}@example.com",
            "external_ids": [{"system": "shop", "id": str(index)}],
            "tags": ["t"],
        }
        for index in range(1000)
    ]
    first = await _upsert(client, *records)
    assert (first["created"], first["failed"]) == (1000, 0)
    again = await _upsert(client, *(dict(record, tags=["u"]) for record in records))
    assert (again["updated"], again["failed"]) == (1000, 0), again["results"][:3]
    assert [r["id"] for r in again["results"]] == [r["id"] for r in first["results"]]
