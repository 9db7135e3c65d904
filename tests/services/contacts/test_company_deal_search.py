"""POST /v1/companies/search and /v1/deals/search over HTTP, on SQLite and PostgreSQL: the contacts'
filter language over each record type's standard fields, association ids and custom properties;
sorting with cursors that walk the whole set; totals; and 422 problems that name the place in the
request. A small known set of records per test; each expectation is worked out from it (`World`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.bus.embedded import EmbeddedBus
from tests.services.contacts.sales_support import (
    SALES_PIPELINE_ID,
    Api,
    contacts_api,
    create_contact,
    define_property,
    error_fields,
)

JSON = dict[str, Any]

COMPANIES: dict[str, JSON] = {
    "acme": {
        "name": "Acme GmbH",
        "domain": "acme.example",
        "industry": "manufacturing",
        "employee_count": 250,
        "annual_revenue": 420_000_000,
        "currency": "EUR",
        "country": "DE",
        "properties": {"tier": "gold", "seats": 250, "modules": ["api", "sso"]},
    },
    "globex": {
        "name": "Globex",
        "domain": "globex.example",
        "industry": "software",
        "employee_count": 1200,
        "country": "US",
        "properties": {"tier": "silver", "seats": 40},
    },
    "initech": {
        "name": "Initech",
        "domain": "initech.example",
        "employee_count": 30,
        "country": "DE",
        "properties": {"modules": ["audit"]},
    },
    "hooli": {"name": "Hooli", "industry": "software"},
}
DEALS: dict[str, JSON] = {
    "big": {
        "name": "Acme: 250 seats",
        "amount": 1000,
        "currency": "EUR",
        "owner": "rep-1",
        "expected_close_date": "2026-12-31",
        "external_id": "crm-1",
        "properties": {"forecast": "commit", "seats": 250},
    },
    "demo": {
        "name": "Globex: pilot",
        "stage": "demo",
        "amount": 5000,
        "currency": "EUR",
        "owner": "rep-2",
        "expected_close_date": "2026-06-30",
        "properties": {"forecast": "best_case", "seats": 40},
    },
    "lost": {"name": "Initech: renewal", "owner": "rep-1"},
}


@dataclass
class World:
    client: httpx.AsyncClient
    ids: dict[str, str] = field(default_factory=dict)
    contact_id: str = ""

    def names(self, ids: list[str]) -> list[str]:
        by_id = {record_id: name for name, record_id in self.ids.items()}
        return [by_id[record_id] for record_id in ids]

    def order(self, records: dict[str, JSON], value: Callable[[JSON], Any], *, descending: bool) -> list[str]:
        """The order the API promises: by the value, ties by id, both in the direction asked; records
        without a value last, among themselves by id."""
        present = [name for name in records if value(records[name]) is not None]
        absent = [name for name in records if value(records[name]) is None]
        present.sort(key=lambda n: (value(records[n]), uuid.UUID(self.ids[n])), reverse=descending)
        absent.sort(key=lambda n: uuid.UUID(self.ids[n]), reverse=descending)
        return present + absent


@pytest.fixture
async def api(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[Api]:
    async with contacts_api(database_url, local_bus, tmp_path) as pair:
        yield pair


@pytest.fixture
async def world(api: Api) -> World:
    client, _ = api
    for object_type in ("company", "deal"):
        await define_property(client, object_type, "seats", "number", personal_data=False)
    await define_property(client, "company", "tier", "enum", options=["gold", "silver"], personal_data=False)
    await define_property(client, "company", "modules", "multi_enum", options=["api", "sso", "audit"])
    await define_property(client, "deal", "forecast", "enum", options=["commit", "best_case"])
    await define_property(client, "contact", "plan", "string")
    world = World(client)
    for name, body in COMPANIES.items():
        response = await client.post("/v1/companies", json=body)
        assert response.status_code == 201, response.text
        world.ids[name] = response.json()["id"]
    for name, body in DEALS.items():
        response = await client.post("/v1/deals", json=body)
        assert response.status_code == 201, response.text
        world.ids[name] = response.json()["id"]
    lost = await client.post(
        f"/v1/deals/{world.ids['lost']}/stage", json={"stage": "lost", "reason": "price"}
    )
    assert lost.status_code == 200, lost.text
    world.contact_id = await create_contact(client)
    for path in (
        f"/v1/companies/{world.ids['acme']}/contacts/{world.contact_id}",
        f"/v1/companies/{world.ids['globex']}/contacts/{world.contact_id}",
        f"/v1/deals/{world.ids['big']}/companies/{world.ids['acme']}",
        f"/v1/deals/{world.ids['demo']}/contacts/{world.contact_id}",
    ):
        assert (await client.put(path)).status_code == 204
    return world


async def _search(client: httpx.AsyncClient, records: str, body: JSON) -> JSON:
    response = await client.post(f"/v1/{records}/search", json=body)
    assert response.status_code == 200, (body, response.text)
    page: JSON = response.json()
    return page


async def _walk(client: httpx.AsyncClient, records: str, body: JSON) -> list[str]:
    """Every page of a search, one record per page, following `next_cursor`: the ids in order."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page = await _search(client, records, {**body, "limit": 1, **({"cursor": cursor} if cursor else {})})
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


def _company_cases(world: World) -> list[tuple[JSON, set[str]]]:
    contact, sales = world.contact_id, SALES_PIPELINE_ID
    return [
        ({"field": "country", "op": "eq", "value": "DE"}, {"acme", "initech"}),
        ({"field": "domain", "op": "eq", "value": "ACME.example"}, {"acme"}),
        ({"field": "employee_count", "op": "between", "value": [100, 1500]}, {"acme", "globex"}),
        ({"field": "industry", "op": "neq", "value": "software"}, {"acme", "initech"}),
        ({"field": "name", "op": "contains", "value": "TECH"}, {"initech"}),
        ({"field": "annual_revenue", "op": "exists"}, {"acme"}),
        ({"field": "properties.tier", "op": "in", "value": ["gold", "silver"]}, {"acme", "globex"}),
        ({"field": "properties.seats", "op": "gt", "value": 100}, {"acme"}),
        ({"field": "properties.modules", "op": "contains", "value": "audit"}, {"initech"}),
        ({"field": "properties.tier", "op": "not_exists"}, {"initech", "hooli"}),
        ({"field": "contact_ids", "op": "contains", "value": contact}, {"acme", "globex"}),
        ({"field": "deal_ids", "op": "exists"}, {"acme"}),
        ({"field": "deal_ids", "op": "in", "value": [world.ids["big"], sales]}, {"acme"}),
        (
            {
                "or": [
                    {"field": "country", "op": "eq", "value": "US"},
                    {"field": "properties.modules", "op": "contains", "value": "api"},
                ]
            },
            {"acme", "globex"},
        ),
    ]


def _deal_cases(world: World) -> list[tuple[JSON, set[str]]]:
    contact, sales = world.contact_id, SALES_PIPELINE_ID
    return [
        ({"field": "stage", "op": "in", "value": ["prospecting", "demo"]}, {"big", "demo"}),
        ({"field": "amount", "op": "gte", "value": 2000}, {"demo"}),
        ({"field": "expected_close_date", "op": "lt", "value": "2026-07-01"}, {"demo"}),
        ({"field": "closed_at", "op": "exists"}, {"lost"}),
        ({"field": "close_reason", "op": "eq", "value": "price"}, {"lost"}),
        ({"field": "owner", "op": "eq", "value": "rep-1"}, {"big", "lost"}),
        ({"field": "external_id", "op": "eq", "value": "crm-1"}, {"big"}),
        ({"field": "pipeline_id", "op": "eq", "value": sales}, {"big", "demo", "lost"}),
        ({"field": "pipeline_id", "op": "in", "value": [str(uuid.uuid4())]}, set()),
        ({"field": "pipeline_id", "op": "neq", "value": sales}, set()),
        ({"field": "company_ids", "op": "contains", "value": world.ids["acme"]}, {"big"}),
        ({"field": "contact_ids", "op": "in", "value": [contact]}, {"demo"}),
        ({"field": "contact_ids", "op": "not_exists"}, {"big", "lost"}),
        ({"field": "properties.forecast", "op": "eq", "value": "commit"}, {"big"}),
        ({"field": "properties.seats", "op": "lte", "value": 100}, {"demo"}),
        (
            {
                "and": [
                    {"field": "owner", "op": "eq", "value": "rep-1"},
                    {"field": "properties.forecast", "op": "not_exists"},
                ]
            },
            {"lost"},
        ),
    ]


@pytest.mark.parametrize(("records", "cases"), [("companies", _company_cases), ("deals", _deal_cases)])
async def test_each_filter_finds_exactly_its_records(
    world: World, records: str, cases: Callable[[World], list[tuple[JSON, set[str]]]]
) -> None:
    for node, expected in cases(world):
        page = await _search(world.client, records, {"filter": node, "with_total": True})
        found = {item["id"] for item in page["items"]}
        assert set(world.names(list(found))) == expected, node
        assert page["total"] == len(expected), node


async def test_found_records_read_as_their_get_does(world: World) -> None:
    client = world.client
    [company] = (
        await _search(
            client, "companies", {"filter": {"field": "domain", "op": "eq", "value": "acme.example"}}
        )
    )["items"]
    assert company == (await client.get(f"/v1/companies/{world.ids['acme']}")).json()
    [deal] = (
        await _search(client, "deals", {"filter": {"field": "external_id", "op": "eq", "value": "crm-1"}})
    )["items"]
    assert deal == (await client.get(f"/v1/deals/{world.ids['big']}")).json()
    assert deal["company_ids"] == [world.ids["acme"]]


@pytest.mark.parametrize(
    ("records", "sort", "value"),
    [
        ("companies", "properties.seats", lambda r: r.get("properties", {}).get("seats")),
        ("companies", "employee_count", lambda r: r.get("employee_count")),
        ("companies", "name", lambda r: r["name"]),
        ("deals", "amount", lambda r: r.get("amount")),
        ("deals", "expected_close_date", lambda r: r.get("expected_close_date")),
        ("deals", "properties.seats", lambda r: r.get("properties", {}).get("seats")),
    ],
)
@pytest.mark.parametrize("direction", ["asc", "desc"])
async def test_a_sort_walks_every_record_once_in_order_with_the_cursor(
    world: World, records: str, sort: str, value: Callable[[JSON], Any], direction: str
) -> None:
    data = COMPANIES if records == "companies" else DEALS
    walked = await _walk(world.client, records, {"sort": {"field": sort, "direction": direction}})
    assert world.names(walked) == world.order(data, value, descending=direction == "desc")


async def test_without_a_sort_the_newest_come_first(world: World) -> None:
    for records, data in (("companies", COMPANIES), ("deals", DEALS)):
        walked = await _walk(world.client, records, {})
        assert world.names(walked) == list(data)[::-1]


@pytest.mark.parametrize(
    ("records", "body", "field"),
    [
        ("companies", {"filter": {"field": "lifecycle_stage", "op": "eq", "value": "lead"}}, "filter.field"),
        ("companies", {"filter": {"field": "properties.plan", "op": "eq", "value": "x"}}, "filter.field"),
        ("companies", {"filter": {"field": "properties.forecast", "op": "exists"}}, "filter.field"),
        ("deals", {"filter": {"field": "properties.tier", "op": "exists"}}, "filter.field"),
        ("deals", {"filter": {"field": "domain", "op": "exists"}}, "filter.field"),
        ("companies", {"filter": {"field": "contact_ids", "op": "contains", "value": "ada"}}, "filter.value"),
        ("deals", {"filter": {"field": "pipeline_id", "op": "gt", "value": SALES_PIPELINE_ID}}, "filter.op"),
        ("deals", {"filter": {"field": "pipeline_id", "op": "contains", "value": "5a1e"}}, "filter.op"),
        ("deals", {"filter": {"field": "company_ids", "op": "lt", "value": SALES_PIPELINE_ID}}, "filter.op"),
        ("companies", {"filter": {"field": "employee_count", "op": "eq", "value": "many"}}, "filter.value"),
        ("deals", {"filter": {"field": "properties.forecast", "op": "eq", "value": "won"}}, "filter.value"),
        (
            "deals",
            {
                "filter": {
                    "and": [{"field": "owner", "op": "exists"}, {"field": "amount", "op": "gt", "value": "1"}]
                }
            },
            "filter.and.1.value",
        ),
        ("companies", {"sort": {"field": "contact_ids"}}, "sort.field"),
        ("deals", {"sort": {"field": "properties.nope"}}, "sort.field"),
        ("deals", {"cursor": "not-a-cursor"}, "cursor"),
        ("companies", {"filter": {"field": "name", "op": "eq"}, "limit": 0}, "limit"),
    ],
)
async def test_what_the_language_does_not_take_is_a_422_naming_its_place(
    world: World, records: str, body: JSON, field: str
) -> None:
    assert error_fields(await world.client.post(f"/v1/{records}/search", json=body)) == [field]


async def test_a_cursor_belongs_to_its_sort(world: World) -> None:
    page = await _search(world.client, "deals", {"sort": {"field": "amount"}, "limit": 1})
    other = {"sort": {"field": "name"}, "limit": 1, "cursor": page["next_cursor"]}
    assert error_fields(await world.client.post("/v1/deals/search", json=other)) == ["cursor"]


async def test_a_read_only_key_may_search_but_not_write(world: World) -> None:
    created = await world.client.post("/v1/keys", json={"scopes": ["contacts:read"], "name": "reports"})
    assert created.status_code == 201, created.text
    headers = {"Authorization": f"Bearer {created.json()['key']}"}
    for records in ("companies", "deals"):
        assert (await world.client.post(f"/v1/{records}/search", json={}, headers=headers)).status_code == 200
        upsert = await world.client.post(
            f"/v1/{records}/batch/upsert", json={"records": [{}]}, headers=headers
        )
        assert upsert.status_code == 403
