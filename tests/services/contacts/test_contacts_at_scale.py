"""Twenty thousand contacts upserted in batches: a search by a custom property finds exactly the expected
set, and a cursor walk over all of them returns each exactly once while other writes go on."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.contacts.app import DEFINITION
from shared.bus.embedded import EmbeddedBus
from shared.runtime import ServiceRuntime
from shared.testing.apps import service_client

Api = tuple[httpx.AsyncClient, ServiceRuntime]
TOTAL = 20_000
BATCH = 1_000
PLANS = ("free", "starter", "pro", "enterprise")


def _score(index: int) -> int:
    return (index * 7919) % 1000


@pytest.fixture
async def api(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[Api]:
    async with service_client(
        DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path, relay=False
    ) as pair:
        yield pair


async def _search(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/contacts/search", json=body)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def test_twenty_thousand_contacts_searched_and_walked_exactly_once(api: Api) -> None:
    client, _ = api
    for definition in (
        {"key": "score", "type": "number", "personal_data": False},
        {"key": "plan", "type": "enum", "options": list(PLANS), "personal_data": False},
    ):
        response = await client.post(
            "/v1/properties", json={"object_type": "contact", "label": "x", **definition}
        )
        assert response.status_code == 201, response.text

    ids: dict[int, str] = {}
    for start in range(0, TOTAL, BATCH):
        records = [
            {
                "email": f"person{index}@example.com",
                "external_ids": [{"system": "shop", "id": str(index)}],
                "properties": {"score": _score(index), "plan": PLANS[index % len(PLANS)]},
            }
            for index in range(start, start + BATCH)
        ]
        response = await client.post("/v1/contacts/batch/upsert", json={"records": records})
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["created"], body["failed"]) == (BATCH, 0), body["results"][:3]
        ids.update({start + result["index"]: result["id"] for result in body["results"]})
    assert len(set(ids.values())) == TOTAL

    # A custom-property search finds exactly the contacts seeded to match, by count and by walking it.
    expected = {
        ids[index]
        for index in range(TOTAL)
        if PLANS[index % len(PLANS)] == "enterprise" and 900 <= _score(index) <= 949
    }
    query = {
        "filter": {
            "and": [
                {"field": "properties.plan", "op": "eq", "value": "enterprise"},
                {"field": "properties.score", "op": "between", "value": [900, 949]},
            ]
        },
        "sort": {"field": "properties.score", "direction": "desc"},
        "limit": 200,
        "with_total": True,
    }
    found: list[str] = []
    page = await _search(client, query)
    assert page["total"] == len(expected)
    while True:
        found += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        page = await _search(client, {**query, "cursor": page["next_cursor"], "with_total": False})
    assert sorted(found) == sorted(expected)

    # Walk every contact while others are created and changed between pages.
    writing = asyncio.Event()
    written: list[str] = []

    async def write_meanwhile() -> None:
        index = 0
        while not writing.is_set():
            created = await client.post("/v1/contacts", json={"email": f"new{uuid.uuid4().hex}@example.com"})
            assert created.status_code == 201, created.text
            written.append(created.json()["id"])
            changed = await client.patch(
                f"/v1/contacts/{ids[index]}", json={"properties": {"score": 1000 + index}}
            )
            assert changed.status_code == 200, changed.text
            index += 1
            await asyncio.sleep(0)

    writer = asyncio.create_task(write_meanwhile())
    walked: list[str] = []
    try:
        page = await _search(client, {"limit": 200})
        while True:
            walked += [item["id"] for item in page["items"]]
            if page["next_cursor"] is None:
                break
            page = await _search(client, {"limit": 200, "cursor": page["next_cursor"]})
    finally:
        writing.set()
        await writer
    assert written, "writes went on during the walk"
    assert len(walked) == len(set(walked)), "no contact twice"
    assert set(ids.values()) <= set(walked), "every contact that existed before the walk, once"
    assert set(walked) - set(ids.values()) <= set(written)
