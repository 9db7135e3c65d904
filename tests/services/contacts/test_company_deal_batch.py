"""Batch upserts of companies and deals with custom properties, over HTTP on SQLite and PostgreSQL: a
result per record, a bad record failing alone and writing nothing, full batches of 1000, the same events
as single writes (on the embedded bus and on Kafka), and the operations in the OpenAPI document."""

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
from services.contacts.companies.models import Company
from services.contacts.deals.models import Deal
from services.contacts.properties.models import CustomValue
from shared.batch import MAX_BATCH_RECORDS
from shared.bus.base import EventBus, Record
from shared.bus.embedded import EmbeddedBus
from shared.events import topics
from shared.events.envelope import from_record
from shared.runtime import ServiceRuntime
from shared.testing.apps import service_client
from tests.services.contacts.sales_support import (
    Api,
    contacts_api,
    custom_values,
    define_property,
    error_fields,
    outbox_events,
)

JSON = dict[str, Any]


async def define_all(client: httpx.AsyncClient) -> None:
    for object_type in ("company", "deal"):
        await define_property(client, object_type, "seats", "number", personal_data=False)
        await define_property(client, object_type, "champion", "string")
    await define_property(client, "company", "tier", "enum", options=["gold", "silver"], personal_data=False)
    await define_property(client, "company", "parent_ref", "string")
    await define_property(
        client, "deal", "forecast", "enum", options=["commit", "best_case"], personal_data=False
    )
    await define_property(client, "contact", "plan", "string")


@pytest.fixture
async def api(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[Api]:
    async with contacts_api(database_url, local_bus, tmp_path) as pair:
        await define_all(pair[0])
        yield pair


async def _upsert(client: httpx.AsyncClient, records: str, batch: list[JSON]) -> JSON:
    response = await client.post(f"/v1/{records}/batch/upsert", json={"records": batch})
    assert response.status_code == 200, response.text
    result: JSON = response.json()
    return result


def _outcomes(result: JSON) -> list[tuple[str, str | None]]:
    """Each record's status, and the field its error names."""
    return [(r["status"], r["error"]["field"] if r["error"] else None) for r in result["results"]]


async def _count(runtime: ServiceRuntime, model: type[Company] | type[Deal] | type[CustomValue]) -> int:
    async with runtime.database.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_company_records_each_get_a_result_and_a_bad_property_fails_its_record_alone(api: Api) -> None:
    client, runtime = api
    known = await client.post(
        "/v1/companies", json={"name": "Known", "domain": "known.example", "properties": {"tier": "gold"}}
    )
    same = await client.post(
        "/v1/companies", json={"name": "Same", "domain": "same.example", "properties": {"tier": "silver"}}
    )
    known_id, same_id = known.json()["id"], same.json()["id"]
    result = await _upsert(
        client,
        "companies",
        [
            {
                "domain": "new.example",
                "name": "New",
                "properties": {"tier": "gold", "champion": "Ada Lovelace"},
            },
            {"domain": "https://www.KNOWN.example/", "properties": {"seats": 30}},
            {"domain": "same.example", "properties": {"tier": "silver"}},
            {"domain": "bad.example", "name": "Bad", "properties": {"tier": "platinum"}},
            {"domain": "known.example", "region": "EMEA", "properties": {"plan": "pro"}},  # a contact's key
            {"domain": "new.example", "properties": {"champion": None, "seats": 5}},  # the first record's
            {"domain": "known.example", "properties": {"forecast": "commit"}},  # a deal's key
        ],
    )
    assert _outcomes(result) == [
        ("created", None),
        ("updated", None),
        ("unchanged", None),
        ("error", "properties.tier"),
        ("error", "properties.plan"),
        ("updated", None),
        ("error", "properties.forecast"),
    ]
    assert (result["created"], result["updated"], result["unchanged"], result["failed"]) == (1, 2, 1, 3)
    ids = [r["id"] for r in result["results"]]
    assert (ids[1], ids[2], ids[5]) == (known_id, same_id, ids[0])
    assert ids[3] is ids[4] is ids[6] is None

    known_now = (await client.get(f"/v1/companies/{known_id}")).json()
    assert (known_now["properties"], known_now["region"]) == ({"tier": "gold", "seats": 30}, None)
    assert (await client.get(f"/v1/companies/{ids[0]}")).json()["properties"] == {"tier": "gold", "seats": 5}
    assert await _count(runtime, Company) == 3, "the bad record created nothing"
    assert await custom_values(runtime, "company") == {
        known_id: {"seats": [30.0], "tier": ["gold"]},
        same_id: {"tier": ["silver"]},
        ids[0]: {"seats": [5.0], "tier": ["gold"]},
    }
    events = await outbox_events(runtime, "crm.company.")
    assert [(e["type"], e["key"]) for e in events[2:]] == [
        ("crm.company.created", ids[0]),
        ("crm.company.updated", known_id),
        ("crm.company.updated", ids[0]),
    ]
    assert events[3]["changes"] == {"properties.seats": {"old": None, "new": 30}}
    assert events[4]["changed_fields"] == ["properties.champion", "properties.seats"]
    assert events[4]["changes"] == {"properties.seats": {"old": None, "new": 5}}
    assert not any(b"Lovelace" in event["raw"] for event in events)


async def test_deal_records_each_get_a_result_and_a_failed_record_keeps_none_of_its_changes(api: Api) -> None:
    client, runtime = api
    for external_id in ("k-1", "k-2"):
        created = await client.post(
            "/v1/deals", json={"name": external_id, "external_id": external_id, "properties": {"seats": 10}}
        )
        assert created.status_code == 201, created.text
    result = await _upsert(
        client,
        "deals",
        [
            {"external_id": "n-1", "name": "New", "properties": {"forecast": "commit"}},
            {"external_id": "k-1", "properties": {"seats": 30}, "stage": "demo"},
            {"external_id": "k-1", "properties": {"seats": 30}},
            # The property would change, then the move fails (no reason): the record keeps neither.
            {"external_id": "k-2", "properties": {"seats": 99}, "stage": "lost"},
            {"external_id": "n-2", "name": "Bad", "properties": {"forecast": "won"}},
            {"name": "No external id", "properties": {"seats": 1}},
            {"external_id": "k-2", "properties": {"parent_ref": "acme"}},  # a company's key
        ],
    )
    assert _outcomes(result) == [
        ("created", None),
        ("updated", None),
        ("unchanged", None),
        ("error", "reason"),
        ("error", "properties.forecast"),
        ("error", "external_id"),
        ("error", "properties.parent_ref"),
    ]
    listed = {deal["external_id"]: deal for deal in (await client.get("/v1/deals")).json()["items"]}
    assert set(listed) == {"k-1", "k-2", "n-1"}
    assert (listed["k-1"]["properties"], listed["k-1"]["stage"]) == ({"seats": 30}, "demo")
    assert (listed["k-2"]["properties"], listed["k-2"]["stage"]) == ({"seats": 10}, "prospecting")
    assert listed["n-1"]["properties"] == {"forecast": "commit"}
    assert await custom_values(runtime, "deal") == {
        listed["k-1"]["id"]: {"seats": [30.0]},
        listed["k-2"]["id"]: {"seats": [10.0]},
        listed["n-1"]["id"]: {"forecast": ["commit"]},
    }
    events = [(e["type"], e["key"]) for e in await outbox_events(runtime, "crm.deal.")]
    assert events[2:] == [
        ("crm.deal.created", listed["n-1"]["id"]),
        ("crm.deal.updated", listed["k-1"]["id"]),
        ("crm.deal.stage_changed", listed["k-1"]["id"]),
    ]


@pytest.mark.parametrize(("records", "key"), [("companies", "domain"), ("deals", "external_id")])
async def test_a_full_batch_is_written_then_found_unchanged_and_one_more_is_refused(
    api: Api, records: str, key: str
) -> None:
    client, runtime = api

    def record(index: int) -> JSON:
        match = f"r{index}.example" if key == "domain" else f"ext-{index}"
        return {
            key: match,
            "name": f"Record {index}",
            "properties": {"seats": index, "champion": f"P{index}"},
        }

    batch = [record(index) for index in range(MAX_BATCH_RECORDS)]
    created = await _upsert(client, records, batch)
    assert created["created"] == MAX_BATCH_RECORDS
    model = Company if records == "companies" else Deal
    assert await _count(runtime, model) == MAX_BATCH_RECORDS
    assert await _count(runtime, CustomValue) == 2 * MAX_BATCH_RECORDS
    again = await _upsert(client, records, batch)
    assert again["unchanged"] == MAX_BATCH_RECORDS
    assert [r["id"] for r in again["results"]] == [r["id"] for r in created["results"]]
    assert len(await outbox_events(runtime, "crm.")) == MAX_BATCH_RECORDS, "no change, no event"

    too_many = await client.post(f"/v1/{records}/batch/upsert", json={"records": [*batch, record(-1)]})
    assert error_fields(too_many) == ["records"]


def _comparable(payload: JSON) -> JSON:
    """An event's data without what differs between two records written the same way."""
    differing = {"company_id", "deal_id", "domain", "created_at", "updated_at", "changed_at", "closed_at"}
    return {name: value for name, value in payload.items() if name not in differing}


async def _records_of(bus: EventBus, keys: set[str], count: int) -> list[Record]:
    """The records of `keys`, read from the start by a group of this test's own (a shared broker also
    holds other tests' records, which are passed over), in the order of each topic."""
    found: list[Record] = []
    deadline = time.monotonic() + 60
    group = f"test-{uuid.uuid4().hex[:8]}"
    async with bus.consumer(group, [topics.CONTACTS.name, topics.DEALS.name]) as consumer:
        while len(found) < count and time.monotonic() < deadline:
            found += [record for record in await consumer.poll(timeout_s=0.5) if record.key in keys]
    return found


async def test_a_batch_announces_what_single_writes_announce_on_both_buses(
    database_url: str, bus: EventBus, tmp_path: Path
) -> None:
    async with service_client(
        DEFINITION, database_url=database_url, bus=bus, data_dir=tmp_path, relay=False
    ) as (client, runtime):
        await define_all(client)
        new = {"name": "Acme", "properties": {"seats": 10, "champion": "Ada Lovelace"}}
        change = {"owner": "owner-2", "properties": {"seats": 20, "champion": None}}
        close = {"stage": "won", "reason": "price"}
        company = (await client.post("/v1/companies", json={**new, "domain": "single.example"})).json()
        assert (await client.patch(f"/v1/companies/{company['id']}", json=change)).status_code == 200
        deal = (await client.post("/v1/deals", json={**new, "external_id": "single"})).json()
        assert (await client.patch(f"/v1/deals/{deal['id']}", json=change)).status_code == 200
        assert (await client.post(f"/v1/deals/{deal['id']}/stage", json=close)).status_code == 200
        single = {"company": company["id"], "deal": deal["id"]}

        created = await _upsert(client, "companies", [{**new, "domain": "batch.example"}])
        updated = await _upsert(client, "companies", [{**change, "domain": "batch.example"}])
        assert _outcomes(created) + _outcomes(updated) == [("created", None), ("updated", None)]
        batched = {"company": created["results"][0]["id"]}
        # A deal record's `stage` is a move, after the record's other changes: as the PATCH, then the POST.
        created = await _upsert(client, "deals", [{**new, "external_id": "batch"}])
        updated = await _upsert(client, "deals", [{**change, **close, "external_id": "batch"}])
        assert _outcomes(created) + _outcomes(updated) == [("created", None), ("updated", None)]
        batched["deal"] = created["results"][0]["id"]

        published = await runtime.relay().publish_batch()
        records = await _records_of(bus, {*single.values(), *batched.values()}, count=published)
    # Each way: a company created and updated; a deal created, updated, moved and won.
    assert published == 2 * (2 + 4)
    assert not any(b"Lovelace" in record.value for record in records)
    by_key: dict[str, list[tuple[str, JSON]]] = {}
    for record in records:
        event = from_record(record).event
        assert record.key is not None
        by_key.setdefault(record.key, []).append((event.event_type(), _comparable(event.payload())))
    for aggregate in ("company", "deal"):
        assert by_key[batched[aggregate]] == by_key[single[aggregate]], aggregate
    assert [kind for kind, _ in by_key[batched["deal"]]] == [
        "crm.deal.created",
        "crm.deal.updated",
        "crm.deal.stage_changed",
        "crm.deal.won",
    ]


async def test_the_openapi_document_has_each_operation_with_its_example(api: Api) -> None:
    client, _ = api
    document = (await client.get("/openapi.json")).json()
    paths = document["paths"]
    for records in ("companies", "deals"):
        search = paths[f"/v1/{records}/search"]["post"]
        assert search["requestBody"]["content"]["application/json"]["example"]["filter"]
        assert "422" in search["responses"]
        upsert = paths[f"/v1/{records}/batch/upsert"]["post"]
        examples = upsert["requestBody"]["content"]["application/json"]["example"]["records"]
        assert any("properties" in example for example in examples)
        single = "company_id" if records == "companies" else "deal_id"
        deleting = paths[f"/v1/{records}/{{{single}}}"]["delete"]
        assert {"204", "404", "412"} <= set(deleting["responses"])
    schemas = document["components"]["schemas"]
    for name in ("CompanyCreate", "DealCreate"):
        assert "properties" in schemas[name]["examples"][0]
    for name in ("CompanyRead", "DealRead"):
        assert "properties" in schemas[name]["required"]
