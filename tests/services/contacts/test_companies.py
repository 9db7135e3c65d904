"""Companies over HTTP through the real ASGI app, on SQLite and PostgreSQL: create, read, list, patch,
batch upsert, contact associations, and the events each change stages in the outbox."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.contacts.companies.models import Company, CompanyContact
from shared.bus.embedded import EmbeddedBus
from shared.events import topics
from shared.events.companies import CompanyCreated
from shared.events.envelope import from_record
from shared.testing.bus import drain
from tests.services.contacts.sales_support import (
    MERGE_PATCH,
    Api,
    contacts_api,
    create_contact,
    error_fields,
    outbox_events,
    problem,
)

ACME = {
    "name": "Acme GmbH",
    "domain": "https://www.ACME.example/about?x=1",
    "industry": "manufacturing",
    "employee_count": 250,
    "annual_revenue": 420_000_000,
    "currency": "eur",
    "country": "de",
    "region": "EMEA",
    "owner": "am-17",
    "phone": "+49 30 1234567",
}


@pytest.fixture
async def api(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[Api]:
    async with contacts_api(database_url, local_bus, tmp_path) as pair:
        yield pair


async def _create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "Company", "domain": f"{uuid.uuid4().hex[:12]}.example", **fields}
    response = await client.post("/v1/companies", json=body)
    assert response.status_code == 201, response.text
    company: dict[str, Any] = response.json()
    return company


async def test_a_company_is_created_normalised_and_announced_without_its_phone(
    api: Api, local_bus: EmbeddedBus
) -> None:
    client, runtime = api
    response = await client.post("/v1/companies", json=ACME)
    assert response.status_code == 201, response.text
    company = response.json()
    assert (company["domain"], company["currency"], company["country"]) == ("acme.example", "EUR", "DE")
    assert response.headers["location"] == f"http://testserver/v1/companies/{company['id']}"
    assert response.headers["etag"] == '"1"'
    assert (await client.get(f"/v1/companies/{company['id']}")).json() == company

    [event] = await outbox_events(runtime, "crm.company.")
    assert (event["type"], event["key"], event["company_id"]) == (
        "crm.company.created",
        company["id"],
        company["id"],
    )
    assert (event["domain"], event["annual_revenue"]) == ("acme.example", 420_000_000)
    assert event["region"] == "EMEA"
    assert b"+49" not in event["raw"], "a company's phone stays off the stream"

    assert await runtime.relay().publish_batch() == 1
    async with local_bus.consumer("reader", [topics.CONTACTS.name]) as consumer:
        [record] = await drain(consumer, count=1)
    assert record.key == company["id"]
    published = from_record(record).event
    assert isinstance(published, CompanyCreated)
    assert str(published.company_id) == company["id"]


async def test_a_taken_domain_is_a_409_naming_the_company_holding_it(api: Api) -> None:
    client, runtime = api
    first = await _create(client, domain="globex.example")
    again = await client.post(
        "/v1/companies", json={"name": "Globex", "domain": "http://WWW.Globex.Example/"}
    )
    assert problem(again, 409)["existing_id"] == first["id"]
    other = await _create(client)
    moved = await client.patch(f"/v1/companies/{other['id']}", json={"domain": "globex.example"})
    assert problem(moved, 409)["existing_id"] == first["id"]
    assert len(await outbox_events(runtime, "crm.company.")) == 2  # the two creations only


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"currency": "EUX", "annual_revenue": 1}, "currency"),
        ({"currency": "XXX"}, "currency"),
        ({"country": "XX"}, "country"),
        ({"domain": "not a domain"}, "domain"),
        ({"domain": "localhost"}, "domain"),
        ({"employee_count": -1}, "employee_count"),
        ({"annual_revenue": 2**63}, "annual_revenue"),
        ({"annual_revenue": 100}, "currency"),  # money needs its currency
        ({"name": ""}, "name"),
        ({"website": "x"}, "website"),
    ],
)
async def test_invalid_input_is_a_422_naming_the_field_and_writes_nothing(
    api: Api, fields: dict[str, Any], field: str
) -> None:
    client, runtime = api
    response = await client.post("/v1/companies", json={"name": "Initech", **fields})
    assert error_fields(response) == [field]
    async with runtime.database.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Company)) == 0
    assert await outbox_events(runtime) == []


async def test_an_unknown_company_is_a_404_and_a_current_etag_a_304(api: Api) -> None:
    client, _ = api
    assert problem(await client.get(f"/v1/companies/{uuid.uuid4()}"), 404)["title"] == "Company not found"
    company = await _create(client)
    url = f"/v1/companies/{company['id']}"
    unchanged = await client.get(url, headers={"If-None-Match": '"1"'})
    assert (unchanged.status_code, unchanged.content, unchanged.headers["etag"]) == (304, b"", '"1"')
    assert (await client.get(url, headers={"If-None-Match": '"0"'})).status_code == 200


async def test_a_patch_applies_merge_semantics_and_announces_old_and_new_values(api: Api) -> None:
    client, runtime = api
    company = (await client.post("/v1/companies", json=ACME)).json()
    url = f"/v1/companies/{company['id']}"
    response = await client.patch(
        url,
        json={"employee_count": 300, "owner": None, "phone": "+49 30 7654321", "region": "EMEA"},
        headers={**MERGE_PATCH, "If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    updated = response.json()
    assert (updated["employee_count"], updated["owner"], updated["name"]) == (300, None, "Acme GmbH")

    [event] = await outbox_events(runtime, "crm.company.updated")
    assert event["key"] == company["id"]
    assert event["changed_fields"] == ["employee_count", "owner", "phone"]  # region was the same
    assert event["changes"] == {
        "employee_count": {"old": "250", "new": "300"},
        "owner": {"old": "am-17", "new": None},
    }
    assert b"+49" not in event["raw"]

    same = await client.patch(url, json={"employee_count": 300})
    assert (same.status_code, same.headers["etag"]) == (200, '"2"')
    assert len(await outbox_events(runtime, "crm.company.updated")) == 1  # no change, no event


async def test_a_stale_if_match_is_a_412_with_the_current_etag_and_writes_nothing(api: Api) -> None:
    client, runtime = api
    company = await _create(client)
    url = f"/v1/companies/{company['id']}"
    assert (await client.patch(url, json={"region": "EMEA"}, headers={"If-Match": '"1"'})).status_code == 200
    stale = await client.patch(url, json={"region": "APAC"}, headers={"If-Match": '"1"'})
    problem(stale, 412)
    assert stale.headers["etag"] == '"2"'
    assert (await client.get(url)).json()["region"] == "EMEA"
    assert len(await outbox_events(runtime, "crm.company.updated")) == 1


async def test_a_patch_refuses_clearing_the_name_and_revenue_without_a_currency(api: Api) -> None:
    client, runtime = api
    company = await _create(client)
    url = f"/v1/companies/{company['id']}"
    assert error_fields(await client.patch(url, json={"name": None})) == ["name"]
    assert error_fields(await client.patch(url, json={"annual_revenue": 5})) == ["currency"]
    assert (await client.patch(url, json={"annual_revenue": 5, "currency": "JPY"})).status_code == 200
    assert error_fields(await client.patch(url, json={"currency": None})) == ["currency"]
    assert problem(await client.patch(f"/v1/companies/{uuid.uuid4()}", json={"region": "x"}), 404)
    assert len(await outbox_events(runtime, "crm.company.updated")) == 1


async def test_the_list_walks_every_company_once_newest_first(api: Api) -> None:
    client, _ = api
    created = [(await _create(client))["id"] for _ in range(5)]
    seen: list[str] = []
    url: str | None = "/v1/companies?limit=2"
    while url is not None:
        response = await client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [item["id"] for item in body["items"]]
        url = body["next_cursor"] and f"/v1/companies?limit=2&cursor={body['next_cursor']}"
    assert seen == created[::-1]


async def test_a_batch_upsert_answers_for_each_record_and_one_bad_record_fails_alone(api: Api) -> None:
    client, runtime = api
    existing = await _create(client, domain="initech.example", employee_count=10)
    same = await _create(client, domain="umbrella.example", region="EMEA")
    records: list[dict[str, Any]] = [
        {"domain": "https://hooli.example/", "name": "Hooli", "currency": "USD", "annual_revenue": 9},
        {"domain": "INITECH.example", "employee_count": 12},
        {"domain": "umbrella.example", "region": "EMEA"},
        {"domain": "bad-currency.example", "name": "Bad", "currency": "EUX"},
        {"name": "No domain"},
        {"domain": "nameless.example"},
        {"domain": "hooli.example", "country": "US"},  # the first record's company, created above
    ]
    response = await client.post("/v1/companies/batch/upsert", json={"records": records})
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["created"], result["updated"], result["unchanged"], result["failed"]) == (1, 2, 1, 3)
    outcomes = [(r["index"], r["status"]) for r in result["results"]]
    assert outcomes == [
        (0, "created"),
        (1, "updated"),
        (2, "unchanged"),
        (3, "error"),
        (4, "error"),
        (5, "error"),
        (6, "updated"),
    ]
    results = result["results"]
    assert results[1]["id"] == existing["id"]
    assert results[2]["id"] == same["id"]
    assert results[6]["id"] == results[0]["id"]
    assert [(results[i]["error"]["field"], results[i]["id"]) for i in (3, 4, 5)] == [
        ("currency", None),
        ("domain", None),
        ("name", None),
    ]

    hooli = (await client.get(f"/v1/companies/{results[0]['id']}")).json()
    assert (hooli["domain"], hooli["country"], hooli["annual_revenue"]) == ("hooli.example", "US", 9)
    assert (await client.get(f"/v1/companies/{existing['id']}")).json()["employee_count"] == 12
    types = [event["type"] for event in await outbox_events(runtime, "crm.company.")]
    assert types == ["crm.company.created"] * 3 + ["crm.company.updated"] * 2

    too_many = await client.post(
        "/v1/companies/batch/upsert", json={"records": [{"domain": "a.example"}] * 1001}
    )
    assert error_fields(too_many) == ["records"]


async def test_contacts_are_associated_idempotently_listed_and_removed(api: Api) -> None:
    client, runtime = api
    company = await _create(client)
    contacts = [await create_contact(client) for _ in range(3)]
    base = f"/v1/companies/{company['id']}/contacts"
    for contact_id in [*contacts, contacts[0]]:
        response = await client.put(f"{base}/{contact_id}")
        assert (response.status_code, response.content) == (204, b"")

    first = (await client.get(base, params={"limit": 2})).json()
    rest = (await client.get(base, params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [item["contact_id"] for item in first["items"] + rest["items"]] == contacts
    assert rest["next_cursor"] is None
    assert all(item["associated_at"] for item in first["items"])

    for _ in range(2):
        assert (await client.delete(f"{base}/{contacts[1]}")).status_code == 204
    listed = (await client.get(base)).json()["items"]
    assert [item["contact_id"] for item in listed] == [contacts[0], contacts[2]]

    events = await outbox_events(runtime, "crm.company.contact_")
    assert [(event["type"], event["contact_id"]) for event in events] == [
        ("crm.company.contact_added", contacts[0]),
        ("crm.company.contact_added", contacts[1]),
        ("crm.company.contact_added", contacts[2]),
        ("crm.company.contact_removed", contacts[1]),
    ]
    assert {event["key"] for event in events} == {company["id"]}
    async with runtime.database.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(CompanyContact)) == 2


async def test_associations_name_the_company_or_contact_that_is_missing(api: Api) -> None:
    client, runtime = api
    company = await _create(client)
    contact_id = await create_contact(client)
    nobody, nothing = uuid.uuid4(), uuid.uuid4()
    for method in ("PUT", "DELETE"):
        no_contact = await client.request(method, f"/v1/companies/{company['id']}/contacts/{nobody}")
        assert problem(no_contact, 404)["title"] == "Contact not found"
        assert str(nobody) in problem(no_contact, 404)["detail"]
        no_company = await client.request(method, f"/v1/companies/{nothing}/contacts/{contact_id}")
        assert problem(no_company, 404)["title"] == "Company not found"
    assert problem(await client.get(f"/v1/companies/{nothing}/contacts"), 404)["title"] == "Company not found"
    assert await outbox_events(runtime, "crm.company.contact_") == []


async def test_concurrent_creations_with_one_domain_make_one_company_and_name_it(api: Api) -> None:
    client, runtime = api
    responses = await asyncio.gather(
        *(
            client.post("/v1/companies", json={"name": f"Twin {n}", "domain": "twins.example"})
            for n in range(8)
        )
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * 7
    winner = next(response.json()["id"] for response in responses if response.status_code == 201)
    assert {response.json()["existing_id"] for response in responses if response.status_code == 409} == {
        winner
    }
    assert len(await outbox_events(runtime, "crm.company.created")) == 1
