"""Exports: the whole base streamed as NDJSON or CSV, and one person's data-access export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.contacts.app import DEFINITION
from services.contacts.exports import service as exports
from shared.bus.embedded import EmbeddedBus
from shared.runtime import ServiceRuntime
from shared.testing.apps import service_client

Api = tuple[httpx.AsyncClient, ServiceRuntime]


@pytest.fixture
async def api(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[Api]:
    async with service_client(
        DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path, relay=False
    ) as pair:
        yield pair


async def test_the_whole_base_streams_in_chunks_as_ndjson_and_csv(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = api
    monkeypatch.setattr(exports, "CHUNK", 3)  # several pages from a few contacts
    await client.post(
        "/v1/properties",
        json={
            "object_type": "contact",
            "key": "plan",
            "label": "Plan",
            "type": "enum",
            "options": ["free", "pro"],
        },
    )
    records = [
        {
            "email": f"p{index}@example.com",
            "first_name": f"Person {index}",
            "tags": ["a", "b"],
            "properties": {"plan": "pro"},
        }
        for index in range(8)
    ]
    results = (await client.post("/v1/contacts/batch/upsert", json={"records": records})).json()["results"]
    ids = [result["id"] for result in results]
    erased = ids.pop()
    await client.post(f"/v1/contacts/{erased}/erasure")

    response = await client.get("/v1/contacts/export")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(ids), "every contact once, the erased one left out"
    assert lines[0] == (await client.get(f"/v1/contacts/{lines[0]['id']}")).json()

    response = await client.get("/v1/contacts/export", params={"format": "csv"})
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert sorted(row["id"] for row in rows) == sorted(ids)
    assert {(row["tags"], row["properties.plan"], row["marketing_allowed"]) for row in rows} == {
        ("a;b", "pro", "False")
    }
    assert (await client.get("/v1/contacts/export", params={"format": "xml"})).status_code == 422


async def test_a_person_export_holds_everything_here_and_names_what_is_elsewhere(api: Api) -> None:
    client, _ = api
    ada = (await client.post("/v1/contacts", json={"email": "ada@example.com", "first_name": "Ada"})).json()
    url = f"/v1/contacts/{ada['id']}"
    await client.patch(url, json={"lifecycle_stage": "customer"})
    await client.post(
        f"{url}/consents",
        json={
            "purpose": "profiling",
            "status": "withdrawn",
            "source": "support_call",
            "proof": {"method": "verbal"},
        },
    )
    rating = await client.post(
        f"{url}/entries",
        json={"kind": "rating", "score": 4, "scale": "csat", "occurred_at": "2025-06-01T10:00:00Z"},
    )
    note = await client.post(f"{url}/entries", json={"kind": "note", "body": "Ada asked for a callback."})
    response = await client.get(f"{url}/export")
    assert response.status_code == 200, response.text
    data = response.json()
    # Every entry as it reads on its own, oldest first by when it occurred.
    assert data["entries"] == [rating.json(), note.json()]
    assert data["contact"] == (await client.get(url)).json()
    assert ("lifecycle_stage", "subscriber", "customer") in [
        (h["property"], h["old_value"], h["new_value"]) for h in data["history"]
    ]
    assert [t["to_stage"] for t in data["lifecycle"]] == ["subscriber", "customer"]
    assert [c["subject"] for c in data["consents"]] == ["profiling"]
    assert {entry["service"] for entry in data["elsewhere"]} == {"journeys", "referrals", "kpi"}
    assert f"/journeys/v1/contacts/{ada['id']}/timeline" in [entry["read_at"] for entry in data["elsewhere"]]
    await client.post(f"{url}/erasure")
    assert (await client.get(f"{url}/export")).status_code == 410
