"""Custom properties on companies and deals over HTTP, on SQLite and PostgreSQL: kept as given, merged by a
patch, refused with a 422 naming the property (a contact's property on a company too), kept searchable,
announced in the update events with values only when they are not personal data, and deleted with the
record. The same tests run for both record types (`RECORDS`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.contacts.app import DEFINITION
from services.contacts.companies.models import Company
from services.contacts.deals.models import Deal
from shared.bus.base import EventBus, Record
from shared.bus.embedded import EmbeddedBus
from shared.events import topics
from shared.events.base import ValueChange
from shared.events.catalog import REGISTRY
from shared.events.companies import CompanyUpdated
from shared.events.deals import DealUpdated
from shared.events.envelope import from_record
from shared.testing.apps import service_client
from tests.services.contacts.sales_support import (
    MERGE_PATCH,
    Api,
    contacts_api,
    create_contact,
    custom_values,
    define_property,
    error_fields,
    outbox_events,
    problem,
)


@dataclass(frozen=True)
class Kind:
    """A record type that has custom properties, as the tests drive it."""

    object_type: str
    path: str
    event: str
    model: type[Company] | type[Deal]
    only_other: str
    """A key defined only for the other of the two types."""

    def body(self, **fields: Any) -> dict[str, Any]:
        if self.object_type == "company":
            return {"name": "Acme", "domain": f"{uuid.uuid4().hex[:12]}.example", **fields}
        return {"name": "Acme: 250 seats", **fields}


COMPANY = Kind("company", "/v1/companies", "crm.company", Company, only_other="forecast")
DEAL = Kind("deal", "/v1/deals", "crm.deal", Deal, only_other="parent_ref")
RECORDS = [pytest.param(COMPANY, id="company"), pytest.param(DEAL, id="deal")]


async def define_all(client: httpx.AsyncClient) -> None:
    """The same keys for companies and deals (values kept apart by object type), one key only each has,
    and one a contact has."""
    for object_type in ("company", "deal"):
        await define_property(
            client, object_type, "tier", "enum", options=["gold", "silver", "bronze"], personal_data=False
        )
        await define_property(client, object_type, "seats", "number", personal_data=False)
        await define_property(
            client, object_type, "modules", "multi_enum", options=["api", "sso", "audit"], personal_data=False
        )
        await define_property(client, object_type, "renewal", "date", personal_data=False)
        await define_property(client, object_type, "active", "bool", personal_data=False)
        await define_property(client, object_type, "champion", "string")  # personal data by default
    await define_property(client, "company", "parent_ref", "string", personal_data=False)
    await define_property(
        client, "deal", "forecast", "enum", options=["commit", "best_case"], personal_data=False
    )
    await define_property(client, "contact", "plan", "string", personal_data=False)


@pytest.fixture
async def api(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[Api]:
    async with contacts_api(database_url, local_bus, tmp_path) as pair:
        await define_all(pair[0])
        yield pair


async def _create(client: httpx.AsyncClient, kind: Kind, **fields: Any) -> dict[str, Any]:
    response = await client.post(kind.path, json=kind.body(**fields))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _count(api: Api, kind: Kind) -> int:
    async with api[1].database.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(kind.model)) or 0)


@pytest.mark.parametrize("kind", RECORDS)
async def test_values_are_kept_as_given_read_back_and_copied_for_search(api: Api, kind: Kind) -> None:
    client, runtime = api
    given = {
        "tier": "gold",
        "seats": 250,
        "modules": ["sso", "api"],
        "renewal": "2027-01-31",
        "active": True,
        "champion": "Ada Lovelace",
    }
    created = await _create(client, kind, properties=given)
    # A multi-enum keeps the options' order, whatever order they were given in.
    assert created["properties"] == {**given, "modules": ["api", "sso"]}
    assert (await client.get(f"{kind.path}/{created['id']}")).json() == created
    assert (await client.get(kind.path)).json()["items"] == [created]
    without = await _create(client, kind)
    assert without["properties"] == {}

    assert await custom_values(runtime, kind.object_type) == {
        created["id"]: {
            "active": ["true"],
            "champion": ["Ada Lovelace"],
            "modules": ["api", "sso"],
            "renewal": [date(2027, 1, 31)],
            "seats": [250.0],
            "tier": ["gold"],
        }
    }


@pytest.mark.parametrize("kind", RECORDS)
async def test_a_patch_merges_key_by_key_null_removes_one_and_the_event_shows_only_public_values(
    api: Api, kind: Kind
) -> None:
    client, runtime = api
    created = await _create(
        client, kind, owner="owner-1", properties={"tier": "gold", "seats": 250, "champion": "Ada Lovelace"}
    )
    url = f"{kind.path}/{created['id']}"
    response = await client.patch(
        url,
        json={
            "owner": "owner-2",
            "properties": {"seats": 300, "champion": None, "modules": ["audit"], "tier": "gold"},
        },
        headers={**MERGE_PATCH, "If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    assert response.json()["properties"] == {"tier": "gold", "seats": 300, "modules": ["audit"]}
    assert await custom_values(runtime, kind.object_type) == {
        created["id"]: {"modules": ["audit"], "seats": [300.0], "tier": ["gold"]}
    }

    [event] = await outbox_events(runtime, f"{kind.event}.updated")
    # v2 brought JSON values; deals' v3 added `contact_ids`.
    assert event["schema_version"] == (2 if kind is COMPANY else 3)
    # The personal property is named, never shown; the unchanged one is not named at all.
    assert event["changed_fields"] == [
        "owner",
        "properties.champion",
        "properties.modules",
        "properties.seats",
    ]
    assert event["changes"] == {
        "owner": {"old": "owner-1", "new": "owner-2"},
        "properties.modules": {"old": None, "new": ["audit"]},
        "properties.seats": {"old": 250, "new": 300},
    }
    assert b"Lovelace" not in event["raw"]

    # The same values again, and `properties: null` (as for contacts): nothing changes, nothing is sent.
    for body in ({"properties": {"seats": 300, "champion": None}}, {"properties": None}):
        same = await client.patch(url, json=body)
        assert (same.status_code, same.headers["etag"]) == (200, '"2"'), same.text
    assert len(await outbox_events(runtime, f"{kind.event}.updated")) == 1


BAD_VALUES = [
    ({"tier": "platinum"}, "properties.tier"),
    ({"seats": "many"}, "properties.seats"),
    ({"seats": True}, "properties.seats"),
    ({"modules": "api"}, "properties.modules"),
    ({"modules": ["api", "crm"]}, "properties.modules"),
    ({"renewal": "31.01.2027"}, "properties.renewal"),
    ({"active": "yes"}, "properties.active"),
    ({"champion": "x" * 1001}, "properties.champion"),
    ({"plan": "pro"}, "properties.plan"),  # a contact's property
    ({"undefined": 1}, "properties.undefined"),
    ({"tier": "silver", "seats": "many"}, "properties.seats"),  # one bad value refuses the good ones too
]


@pytest.mark.parametrize("kind", RECORDS)
@pytest.mark.parametrize(("properties", "field"), BAD_VALUES)
async def test_a_bad_value_is_a_422_naming_the_property_and_writes_nothing(
    api: Api, kind: Kind, properties: dict[str, Any], field: str
) -> None:
    client, runtime = api
    existing = await _create(client, kind, properties={"tier": "gold"})
    assert error_fields(await client.post(kind.path, json=kind.body(properties=properties))) == [field]
    url = f"{kind.path}/{existing['id']}"
    assert error_fields(await client.patch(url, json={"owner": "x", "properties": properties})) == [field]

    assert await _count(api, kind) == 1
    after = await client.get(url)
    assert (after.json(), after.headers["etag"]) == (existing, '"1"')
    assert await custom_values(runtime, kind.object_type) == {existing["id"]: {"tier": ["gold"]}}
    assert [event["type"] for event in await outbox_events(runtime, kind.event)] == [f"{kind.event}.created"]


async def test_a_property_of_another_object_type_is_refused_by_name(api: Api) -> None:
    client, runtime = api
    refused = await client.post(COMPANY.path, json=COMPANY.body(properties={"forecast": "commit"}))
    assert error_fields(refused) == ["properties.forecast"]
    assert "company property forecast" in problem(refused, 422)["detail"]
    refused = await client.post(DEAL.path, json=DEAL.body(properties={"parent_ref": "acme-holding"}))
    assert error_fields(refused) == ["properties.parent_ref"]
    assert "deal property parent_ref" in problem(refused, 422)["detail"]
    for key in ("tier", "parent_ref", "forecast"):
        contact = await client.post(
            "/v1/contacts", json={"email": "ada@example.com", "properties": {key: "x"}}
        )
        assert error_fields(contact) == [f"properties.{key}"]

    # Each takes its own: the same key on a company and a deal holds two values, kept apart.
    company = await _create(client, COMPANY, properties={"parent_ref": "acme-holding", "tier": "gold"})
    deal = await _create(client, DEAL, properties={"forecast": "commit", "tier": "bronze"})
    assert await custom_values(runtime, "company") == {
        company["id"]: {"parent_ref": ["acme-holding"], "tier": ["gold"]}
    }
    assert await custom_values(runtime, "deal") == {deal["id"]: {"forecast": ["commit"], "tier": ["bronze"]}}


@pytest.mark.parametrize("kind", RECORDS)
async def test_a_deleted_record_takes_its_values_along_and_is_announced(api: Api, kind: Kind) -> None:
    client, runtime = api
    doomed = await _create(client, kind, properties={"tier": "gold", "seats": 5})
    kept = await _create(client, kind, properties={"tier": "silver"})
    options = f"/v1/properties/{kind.object_type}/tier"
    in_use = await client.patch(options, json={"options": ["silver", "bronze"]})
    assert error_fields(in_use) == ["options"], "gold is held"

    url = f"{kind.path}/{doomed['id']}"
    stale = await client.delete(url, headers={"If-Match": '"7"'})
    assert (problem(stale, 412)["status"], stale.headers["etag"]) == (412, '"1"')
    assert (await client.get(url)).status_code == 200
    assert (await client.delete(url, headers={"If-Match": '"1"'})).status_code == 204
    assert problem(await client.get(url), 404)
    assert problem(await client.delete(url), 404)

    assert await custom_values(runtime, kind.object_type) == {kept["id"]: {"tier": ["silver"]}}
    [event] = await outbox_events(runtime, f"{kind.event}.deleted")
    assert (event["key"], event[f"{kind.object_type}_id"]) == (doomed["id"], doomed["id"])
    assert event["deleted_at"]
    # Nothing holds gold any more: the option may go.
    assert (await client.patch(options, json={"options": ["silver", "bronze"]})).status_code == 200


async def test_a_deleted_company_leaves_its_deals_and_contacts_and_their_etags_change(api: Api) -> None:
    client, runtime = api
    company = await _create(client, COMPANY)
    deal = await _create(client, DEAL)
    contact_id = await create_contact(client)
    assert (await client.put(f"/v1/deals/{deal['id']}/companies/{company['id']}")).status_code == 204
    assert (await client.put(f"/v1/companies/{company['id']}/contacts/{contact_id}")).status_code == 204
    before = await client.get(f"/v1/deals/{deal['id']}")
    assert (before.json()["company_ids"], before.headers["etag"]) == ([company["id"]], '"2"')

    assert (await client.delete(f"/v1/companies/{company['id']}")).status_code == 204
    after = await client.get(f"/v1/deals/{deal['id']}")
    assert (after.json()["company_ids"], after.headers["etag"]) == ([], '"3"')
    assert (await client.get(f"/v1/contacts/{contact_id}")).status_code == 200
    assert [event["type"] for event in await outbox_events(runtime, "crm.company.")] == [
        "crm.company.created",
        "crm.company.contact_added",
        "crm.company.deleted",
    ]


async def test_a_deleted_deal_is_announced_as_it_stood(api: Api) -> None:
    client, runtime = api
    deal = await _create(client, DEAL, amount=900, currency="EUR", owner="rep-3")
    assert (await client.post(f"/v1/deals/{deal['id']}/stage", json={"stage": "demo"})).status_code == 200
    assert (await client.delete(f"/v1/deals/{deal['id']}")).status_code == 204
    [event] = await outbox_events(runtime, "crm.deal.deleted")
    assert (event["stage"], event["status"], event["amount"], event["owner"]) == (
        "demo",
        "open",
        900,
        "rep-3",
    )
    assert problem(await client.get(f"/v1/deals/{deal['id']}/stages"), 404)


def test_a_version_1_update_event_still_reads() -> None:
    """v1 records on the topics carried strings only: valid v2 data, upcast unchanged."""
    change = {"employee_count": {"old": "250", "new": "300"}}
    company = REGISTRY.parse(
        "crm.company.updated",
        {
            "schema_version": 1,
            "company_id": str(uuid.uuid4()),
            "changed_fields": ["employee_count"],
            "changes": change,
            "updated_at": "2026-11-24T10:00:00Z",
        },
    )
    assert isinstance(company, CompanyUpdated)
    assert company.changes == {"employee_count": ValueChange(old="250", new="300")}
    deal = REGISTRY.parse(
        "crm.deal.updated",
        {
            "schema_version": 1,
            "deal_id": str(uuid.uuid4()),
            "pipeline_id": str(uuid.uuid4()),
            "stage": "demo",
            "status": "open",
            "amount": 5,
            "currency": "EUR",
            "owner": None,
            "expected_close_date": None,
            "created_at": "2026-11-24T10:00:00Z",
            "closed_at": None,
            "changed_fields": ["amount"],
            "changes": {"amount": {"old": "4", "new": "5"}},
            "updated_at": "2026-11-24T10:00:00Z",
        },
    )
    assert isinstance(deal, DealUpdated)
    assert deal.changes == {"amount": ValueChange(old="4", new="5")}


async def _records_of(bus: EventBus, keys: set[str], count: int) -> list[Record]:
    """The records of `keys` on the contacts and deals topics, read from the start by a group of this
    test's own: a shared broker also holds other tests' records, which are passed over."""
    found: list[Record] = []
    deadline = time.monotonic() + 60
    async with bus.consumer(
        f"test-{uuid.uuid4().hex[:8]}", [topics.CONTACTS.name, topics.DEALS.name]
    ) as consumer:
        while len(found) < count and time.monotonic() < deadline:
            found += [record for record in await consumer.poll(timeout_s=0.5) if record.key in keys]
    return found


async def test_property_changes_reach_both_buses_as_json_values_without_personal_data(
    database_url: str, bus: EventBus, tmp_path: Path
) -> None:
    async with service_client(
        DEFINITION, database_url=database_url, bus=bus, data_dir=tmp_path, relay=False
    ) as (client, runtime):
        await define_all(client)
        ids = []
        for kind in (COMPANY, DEAL):
            created = await _create(client, kind, properties={"seats": 250, "champion": "Ada Lovelace"})
            patched = await client.patch(
                f"{kind.path}/{created['id']}",
                json={"properties": {"seats": 300, "modules": ["sso", "api"], "champion": "Grace Hopper"}},
            )
            assert patched.status_code == 200, patched.text
            ids.append(created["id"])
        assert await runtime.relay().publish_batch() == 4

        records = await _records_of(bus, set(ids), count=4)
    assert len(records) == 4
    assert not any(b"Lovelace" in record.value or b"Hopper" in record.value for record in records)
    updates = [
        from_record(record).event for record in records if record.headers["ce_type"].endswith(b"updated")
    ]
    assert sorted(type(event).__name__ for event in updates) == ["CompanyUpdated", "DealUpdated"]
    for event in updates:
        assert isinstance(event, CompanyUpdated | DealUpdated)
        assert event.changed_fields == ["properties.champion", "properties.modules", "properties.seats"]
        assert event.changes == {
            "properties.modules": ValueChange(old=None, new=["api", "sso"]),
            "properties.seats": ValueChange(old=250, new=300),
        }
