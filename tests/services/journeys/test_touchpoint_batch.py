"""`POST /v1/touchpoints/batch` through the real ASGI app, on SQLite and PostgreSQL: a result per record,
one bad record failing only itself, repeats recorded once, and the size limits."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.bus.embedded import EmbeddedBus
from shared.events.catalog import ContactCreated
from tests.services.journeys.support import (
    Api,
    contacts_say,
    error_fields,
    hasher,
    journeys_api,
    outbox_events,
    problem,
    touchpoint_count,
)

AT = (datetime.now(UTC) - timedelta(hours=1)).isoformat()


def _visit(**fields: Any) -> dict[str, Any]:
    return {"occurred_at": AT, "channel": "web", "type": "page_view", "anonymous_id": "visitor-1", **fields}


@pytest.fixture
async def api(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[Api]:
    async with journeys_api(database_url, local_bus, tmp_path) as pair:
        yield pair


async def test_a_batch_answers_per_record_and_one_bad_record_fails_only_itself(
    api: Api, local_bus: EmbeddedBus
) -> None:
    client, runtime = api
    ada = uuid.uuid4()
    await contacts_say(
        runtime,
        local_bus,
        ContactCreated(
            contact_id=ada,
            lifecycle_stage="lead",
            email_hashes=[hasher(runtime).email("ada@example.com")],
            created_at=datetime.now(UTC),
        ),
    )
    earlier = await client.post("/v1/touchpoints", json=_visit(message_id="m-0"))
    assert earlier.status_code == 201, earlier.text

    records = [
        _visit(message_id="m-1"),
        _visit(occurred_at=(datetime.now(UTC) + timedelta(days=2)).isoformat()),
        _visit(message_id="m-0"),  # recorded by an earlier request
        _visit(message_id="m-1", type="repeat"),  # earlier in this batch
        {"occurred_at": AT, "channel": "web", "type": "page_view"},  # names no one
        _visit(anonymous_id=None, email="ada@example.com", channel="purchase", revenue=500, currency="USD"),
        _visit(revenue=500),
    ]
    response = await client.post("/v1/touchpoints/batch", json={"records": records})
    assert response.status_code == 200, response.text
    answer = response.json()

    results = answer["results"]
    assert [r["index"] for r in results] == list(range(len(records)))
    assert [r["status"] for r in results] == [
        "created",
        "error",
        "unchanged",
        "unchanged",
        "error",
        "created",
        "error",
    ]
    assert [r["error"]["field"] for r in results if r["error"]] == ["occurred_at", "contact_id", "currency"]
    assert "24 hours ahead" in results[1]["error"]["message"]
    assert results[2]["id"] == earlier.json()["id"]
    assert results[3]["id"] == results[0]["id"]
    assert (answer["created"], answer["unchanged"], answer["failed"], answer["updated"]) == (2, 2, 3, 0)
    purchase = (await client.get(f"/v1/touchpoints/{results[5]['id']}")).json()
    assert (purchase["contact_id"], purchase["currency"], purchase["revenue"]) == (str(ada), "USD", 500)

    assert await touchpoint_count(runtime) == 3
    keys = [event["key"] for event in await outbox_events(runtime, "crm.touchpoint.")]
    assert keys == ["visitor-1", "visitor-1", str(ada)]


async def test_a_batch_takes_1000_records_and_512_kb_and_no_more(api: Api) -> None:
    client, runtime = api
    thousand = [_visit(message_id=f"m-{n}") for n in range(1000)]
    response = await client.post("/v1/touchpoints/batch", json={"records": thousand})
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 1000

    assert error_fields(
        await client.post("/v1/touchpoints/batch", json={"records": [*thousand, _visit()]})
    ) == ["records"]
    assert error_fields(await client.post("/v1/touchpoints/batch", json={"records": []})) == ["records"]
    # Each record within its own limit (16 KiB of properties), together over 512 KB.
    heavy = [_visit(properties={"text": "x" * 16_000}) for _ in range(40)]
    too_large = problem(await client.post("/v1/touchpoints/batch", json={"records": heavy}), 413)
    assert "524288" in too_large["detail"]
    assert await touchpoint_count(runtime) == 1000


async def test_the_batch_route_is_documented_with_an_example(api: Api) -> None:
    document = (await api[0].get("/openapi.json")).json()
    post = document["paths"]["/v1/touchpoints/batch"]["post"]
    example = post["requestBody"]["content"]["application/json"]["example"]
    assert len(example["records"]) == 3
    assert {"200", "413", "422"} <= set(post["responses"])
