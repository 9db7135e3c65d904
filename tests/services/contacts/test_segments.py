"""Saved dynamic segments: a filter checked when saved, members and count live when read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.contacts.app import DEFINITION
from shared.bus.embedded import EmbeddedBus
from shared.runtime import ServiceRuntime
from shared.testing.apps import service_client

Api = tuple[httpx.AsyncClient, ServiceRuntime]
CUSTOMERS_IN_EMEA = {
    "and": [
        {"field": "lifecycle_stage", "op": "eq", "value": "customer"},
        {"field": "region", "op": "eq", "value": "EMEA"},
    ]
}


@pytest.fixture
async def api(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[Api]:
    async with service_client(
        DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path, relay=False
    ) as pair:
        yield pair


async def test_a_segment_counts_and_lists_whoever_matches_now(api: Api) -> None:
    client, _ = api
    ids = []
    for index, (stage, region) in enumerate(
        [("customer", "EMEA"), ("customer", "AMER"), ("lead", "EMEA"), ("customer", "EMEA")]
    ):
        response = await client.post(
            "/v1/contacts",
            json={"email": f"p{index}@example.com", "lifecycle_stage": stage, "region": region},
        )
        ids.append(response.json()["id"])
    created = await client.post(
        "/v1/segments", json={"name": "Customers in EMEA", "filter": CUSTOMERS_IN_EMEA}
    )
    assert created.status_code == 201, created.text
    segment = created.json()
    assert segment["count"] == 2
    assert segment["filter"] == CUSTOMERS_IN_EMEA

    # The lead becomes a customer: the segment follows without being touched.
    await client.patch(f"/v1/contacts/{ids[2]}", json={"lifecycle_stage": "customer"})
    assert (await client.get(f"/v1/segments/{segment['id']}")).json()["count"] == 3
    first = (await client.get(f"/v1/segments/{segment['id']}/contacts", params={"limit": 2})).json()
    rest = (
        await client.get(f"/v1/segments/{segment['id']}/contacts", params={"cursor": first["next_cursor"]})
    ).json()
    assert first["total"] == 3
    assert {c["id"] for c in first["items"] + rest["items"]} == {ids[0], ids[2], ids[3]}

    renamed = await client.patch(
        f"/v1/segments/{segment['id']}",
        json={"name": "EMEA", "filter": {"field": "region", "op": "eq", "value": "EMEA"}},
    )
    assert (renamed.json()["name"], renamed.json()["count"]) == ("EMEA", 3)
    assert [s["name"] for s in (await client.get("/v1/segments")).json()["items"]] == ["EMEA"]
    assert (await client.delete(f"/v1/segments/{segment['id']}")).status_code == 204
    assert (await client.get(f"/v1/segments/{segment['id']}")).status_code == 404


async def test_a_filter_the_language_does_not_take_is_refused_when_saved(api: Api) -> None:
    client, _ = api
    response = await client.post(
        "/v1/segments",
        json={"name": "Broken", "filter": {"and": [{"field": "properties.nope", "op": "eq", "value": 1}]}},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "filter.and.0.field"
    assert (await client.get("/v1/segments")).json()["items"] == []
