"""Deals over HTTP through the real ASGI app, on SQLite and PostgreSQL: create, read, list with filters,
patch, stage moves and their history, associations, batch upsert, and the events on `crm.deals`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.bus.embedded import EmbeddedBus
from shared.events import topics
from shared.events.catalog import REGISTRY
from shared.events.deals import DealLost, DealSnapshot, DealStageChanged
from shared.events.envelope import from_record
from shared.testing.bus import drain
from tests.services.contacts.sales_support import (
    MERGE_PATCH,
    SALES_PIPELINE_ID,
    Api,
    contacts_api,
    create_contact,
    error_fields,
    outbox_events,
    problem,
)

ACME = {
    "name": "Acme: 250 seats for Ada Lovelace",
    "amount": 1_500_000,
    "currency": "eur",
    "owner": "rep-7",
    "expected_close_date": "2026-12-31",
    "external_id": "shop-8812",
}
_AT = "2026-11-24T10:00:00Z"
_CHANGED = {"changed_fields": ["amount"], "updated_at": _AT}
SNAPSHOT = ("pipeline_id", "stage", "status", "amount", "currency", "owner", "created_at", "closed_at")


@pytest.fixture
async def api(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[Api]:
    async with contacts_api(database_url, local_bus, tmp_path) as pair:
        yield pair


async def _create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/deals", json={"name": "Deal", **fields})
    assert response.status_code == 201, response.text
    deal: dict[str, Any] = response.json()
    return deal


async def _move(client: httpx.AsyncClient, deal_id: str, **body: Any) -> httpx.Response:
    return await client.post(f"/v1/deals/{deal_id}/stage", json=body)


async def _history(client: httpx.AsyncClient, deal_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/deals/{deal_id}/stages")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_a_deal_starts_in_the_first_stage_of_sales_and_is_announced_without_its_name(api: Api) -> None:
    client, runtime = api
    response = await client.post("/v1/deals", json=ACME)
    assert response.status_code == 201, response.text
    deal = response.json()
    assert (deal["pipeline_id"], deal["stage"], deal["currency"]) == (SALES_PIPELINE_ID, "prospecting", "EUR")
    assert (deal["closed_at"], deal["contact_ids"], deal["company_ids"]) == (None, [], [])
    assert response.headers["location"] == f"http://testserver/v1/deals/{deal['id']}"
    assert response.headers["etag"] == '"1"'
    assert (await client.get(f"/v1/deals/{deal['id']}")).json() == deal

    [event] = await outbox_events(runtime, "crm.deal.")
    assert (event["type"], event["key"], event["deal_id"]) == ("crm.deal.created", deal["id"], deal["id"])
    assert {field: event[field] for field in SNAPSHOT} == {
        "pipeline_id": SALES_PIPELINE_ID,
        "stage": "prospecting",
        "status": "open",
        "amount": 1_500_000,
        "currency": "EUR",
        "owner": "rep-7",
        "created_at": event["created_at"],
        "closed_at": None,
    }
    assert b"Lovelace" not in event["raw"], "a deal's name is free text and stays off the stream"

    [first] = await _history(client, deal["id"])
    assert (first["from_stage"], first["to_stage"], first["actor"]) == (None, "prospecting", "bootstrap")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"currency": "EUX", "amount": 1}, "currency"),
        ({"amount": -1, "currency": "EUR"}, "amount"),
        ({"amount": 2**63, "currency": "EUR"}, "amount"),
        ({"amount": 100}, "currency"),  # money needs its currency
        ({"stage": "nowhere"}, "stage"),
        ({"stage": "won"}, "stage"),  # a deal is closed by a move, with its reason
        ({"pipeline_id": str(uuid.uuid4())}, "pipeline_id"),
        ({"expected_close_date": "soon"}, "expected_close_date"),
        ({"name": ""}, "name"),
    ],
)
async def test_invalid_input_is_a_422_naming_the_field_and_writes_nothing(
    api: Api, fields: dict[str, Any], field: str
) -> None:
    client, runtime = api
    response = await client.post("/v1/deals", json={"name": "Deal", **fields})
    assert error_fields(response) == [field]
    assert (await client.get("/v1/deals")).json()["items"] == []
    assert await outbox_events(runtime) == []


async def test_a_taken_external_id_is_a_409_naming_the_deal(api: Api) -> None:
    client, _ = api
    first = await _create(client, external_id="crm-1")
    assert (
        problem(await client.post("/v1/deals", json={"name": "x", "external_id": "crm-1"}), 409)[
            "existing_id"
        ]
        == first["id"]
    )
    other = await _create(client)
    moved = await client.patch(f"/v1/deals/{other['id']}", json={"external_id": "crm-1"})
    assert problem(moved, 409)["existing_id"] == first["id"]


async def test_reads_carry_an_etag_and_an_unknown_deal_is_a_404(api: Api) -> None:
    client, _ = api
    assert problem(await client.get(f"/v1/deals/{uuid.uuid4()}"), 404)["title"] == "Deal not found"
    deal = await _create(client)
    url = f"/v1/deals/{deal['id']}"
    assert (await client.get(url, headers={"If-None-Match": '"1"'})).status_code == 304
    assert (await client.get(url, headers={"If-None-Match": '"2"'})).status_code == 200


async def test_a_patch_announces_old_and_new_values_but_not_the_name(api: Api) -> None:
    client, runtime = api
    deal = await _create(client, **ACME)
    url = f"/v1/deals/{deal['id']}"
    response = await client.patch(
        url,
        json={"name": "Acme: 300 seats for Grace Hopper", "amount": 1_800_000, "expected_close_date": None},
        headers={**MERGE_PATCH, "If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    assert (response.json()["amount"], response.json()["expected_close_date"]) == (1_800_000, None)

    [event] = await outbox_events(runtime, "crm.deal.updated")
    assert event["changed_fields"] == ["amount", "expected_close_date", "name"]
    assert event["changes"] == {
        "amount": {"old": "1500000", "new": "1800000"},
        "expected_close_date": {"old": "2026-12-31", "new": None},
    }
    assert (event["amount"], event["stage"], event["status"]) == (1_800_000, "prospecting", "open")
    assert b"Hopper" not in event["raw"]
    assert b"Lovelace" not in event["raw"]

    stale = await client.patch(url, json={"owner": "rep-9"}, headers={"If-Match": '"1"'})
    assert (problem(stale, 412)["status"], stale.headers["etag"]) == (412, '"2"')
    for body, field in (
        ({"name": None}, "name"),
        ({"stage": "demo"}, "stage"),
        ({"currency": None}, "currency"),
    ):
        assert error_fields(await client.patch(url, json=body)) == [field]
    assert len(await outbox_events(runtime, "crm.deal.updated")) == 1


async def test_stage_moves_are_kept_with_actor_and_reason_and_closing_needs_a_reason(api: Api) -> None:
    client, runtime = api
    deal = await _create(client, **ACME)
    deal_id = deal["id"]
    assert (await _move(client, deal_id, stage="demo")).status_code == 200
    assert error_fields(await _move(client, deal_id, stage="lost")) == ["reason"]
    assert error_fields(await _move(client, deal_id, stage="lost", reason="Too expensive!")) == ["reason"]
    assert error_fields(await _move(client, deal_id, stage="closed_won")) == ["stage"]
    assert problem(await _move(client, str(uuid.uuid4()), stage="demo"), 404)["title"] == "Deal not found"

    lost = await _move(client, deal_id, stage="lost", reason="competitor", note="Went with Initech; call Ada")
    assert lost.status_code == 200, lost.text
    assert lost.headers["etag"] == '"3"'
    closed = lost.json()
    assert (closed["stage"], closed["close_reason"]) == ("lost", "competitor")
    assert closed["closed_at"] is not None
    same = await _move(client, deal_id, stage="lost", reason="price")
    assert (same.status_code, same.headers["etag"], same.json()["close_reason"]) == (200, '"3"', "competitor")

    reopened = (await _move(client, deal_id, stage="negotiation")).json()
    assert (reopened["closed_at"], reopened["close_reason"]) == (None, None)
    won = (await _move(client, deal_id, stage="won", reason="price")).json()
    assert (won["stage"], won["close_reason"]) == ("won", "price")

    history = await _history(client, deal_id)
    assert [(h["from_stage"], h["to_stage"], h["reason"]) for h in history] == [
        (None, "prospecting", None),
        ("prospecting", "demo", None),
        ("demo", "lost", "competitor"),
        ("lost", "negotiation", None),
        ("negotiation", "won", "price"),
    ]
    assert history[2]["note"] == "Went with Initech; call Ada"
    assert {h["actor"] for h in history} == {"bootstrap"}
    assert [h["id"] for h in history] == sorted(h["id"] for h in history)

    events = await outbox_events(runtime, "crm.deal.")
    assert [e["type"] for e in events] == [
        "crm.deal.created",
        "crm.deal.stage_changed",
        "crm.deal.stage_changed",
        "crm.deal.lost",
        "crm.deal.stage_changed",
        "crm.deal.stage_changed",
        "crm.deal.won",
    ]
    assert {e["key"] for e in events} == {deal_id}
    lost_event = events[3]
    assert (lost_event["from_stage"], lost_event["reason"], lost_event["changed_by"]) == (
        "demo",
        "competitor",
        "bootstrap",
    )
    assert (lost_event["status"], lost_event["amount"], lost_event["owner"]) == ("lost", 1_500_000, "rep-7")
    assert lost_event["closed_at"] is not None
    assert lost_event["created_at"] == events[0]["created_at"]
    assert (events[4]["from_status"], events[4]["status"], events[4]["closed_at"]) == ("lost", "open", None)
    assert all(b"Initech" not in e["raw"] for e in events), "a note stays off the stream"


async def test_the_actor_is_the_api_key_that_made_the_move(api: Api) -> None:
    client, _ = api
    created = await client.post(
        "/v1/keys", json={"scopes": ["contacts:write", "contacts:read"], "name": "rep"}
    )
    assert created.status_code == 201, created.text
    key = created.json()
    headers = {"Authorization": f"Bearer {key['key']}"}
    deal = (await client.post("/v1/deals", json={"name": "Via key"}, headers=headers)).json()
    moved = await client.post(f"/v1/deals/{deal['id']}/stage", json={"stage": "demo"}, headers=headers)
    assert moved.status_code == 200, moved.text
    assert [h["actor"] for h in await _history(client, deal["id"])] == [key["key_id"]] * 2


async def test_the_list_filters_by_pipeline_stage_and_owner(api: Api) -> None:
    client, _ = api
    renewals = await client.post(
        "/v1/pipelines",
        json={
            "key": "renewals",
            "name": "Renewals",
            "stages": [
                {"key": "due", "label": "Due", "probability": 50},
                {"key": "won", "label": "Renewed", "probability": 100, "kind": "won"},
                {"key": "lost", "label": "Churned", "probability": 0, "kind": "lost"},
            ],
        },
    )
    renewal = await _create(client, pipeline_id=renewals.json()["id"], owner="rep-1")
    a = await _create(client, owner="rep-1")
    b = await _create(client, owner="rep-2", stage="demo")
    c = await _create(client, owner="rep-1", stage="demo")

    async def ids(**params: str) -> list[str]:
        response = await client.get("/v1/deals", params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await ids() == [c["id"], b["id"], a["id"], renewal["id"]]
    assert await ids(pipeline_id=SALES_PIPELINE_ID) == [c["id"], b["id"], a["id"]]
    assert await ids(stage="demo") == [c["id"], b["id"]]
    assert await ids(owner="rep-1") == [c["id"], a["id"], renewal["id"]]
    assert await ids(owner="rep-1", stage="demo", pipeline_id=SALES_PIPELINE_ID) == [c["id"]]
    first = (await client.get("/v1/deals", params={"owner": "rep-1", "limit": 2})).json()
    rest = (
        await client.get("/v1/deals", params={"owner": "rep-1", "limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert [d["id"] for d in first["items"] + rest["items"]] == [c["id"], a["id"], renewal["id"]]
    assert error_fields(await client.get("/v1/deals", params={"pipeline_id": "sales"})) == ["pipeline_id"]


async def test_associations_are_idempotent_part_of_the_read_model_and_its_etag(api: Api) -> None:
    client, runtime = api
    deal = await _create(client)
    url = f"/v1/deals/{deal['id']}"
    contacts = [await create_contact(client) for _ in range(2)]
    company = (await client.post("/v1/companies", json={"name": "Acme", "domain": "acme.example"})).json()
    for contact_id in [*contacts, contacts[0]]:
        assert (await client.put(f"{url}/contacts/{contact_id}")).status_code == 204
    assert (await client.put(f"{url}/companies/{company['id']}")).status_code == 204
    read = await client.get(url)
    assert (read.json()["contact_ids"], read.json()["company_ids"]) == (contacts, [company["id"]])
    assert read.headers["etag"] == '"4"'  # three associations made, the repeated one changed nothing
    assert (await client.get(url, headers={"If-None-Match": '"1"'})).status_code == 200

    for _ in range(2):
        assert (await client.delete(f"{url}/contacts/{contacts[0]}")).status_code == 204
        assert (await client.delete(f"{url}/companies/{company['id']}")).status_code == 204
    after = (await client.get(url)).json()
    assert (after["contact_ids"], after["company_ids"]) == ([contacts[1]], [])
    listed = (await client.get("/v1/deals")).json()["items"]
    assert listed == [after]

    missing = uuid.uuid4()
    assert problem(await client.put(f"{url}/contacts/{missing}"), 404)["title"] == "Contact not found"
    assert problem(await client.put(f"{url}/companies/{missing}"), 404)["title"] == "Company not found"
    assert problem(await client.delete(f"/v1/deals/{missing}/contacts/{contacts[1]}"), 404)["title"] == (
        "Deal not found"
    )
    # A contact's association and its removal are announced, each with the deal's contacts after it;
    # repeats and company associations are not.
    events = await outbox_events(runtime, "crm.deal.")
    assert [(e["type"], e["key"], e.get("contact_id"), e["contact_ids"]) for e in events] == [
        ("crm.deal.created", deal["id"], None, []),
        ("crm.deal.contact_added", deal["id"], contacts[0], [contacts[0]]),
        ("crm.deal.contact_added", deal["id"], contacts[1], sorted(contacts)),
        ("crm.deal.contact_removed", deal["id"], contacts[0], [contacts[1]]),
    ]
    assert events[1]["associated_at"] <= events[2]["associated_at"] <= events[3]["removed_at"]


async def test_every_deal_event_names_the_deals_contacts_sorted(api: Api) -> None:
    client, runtime = api
    deal = await _create(client, amount=10, currency="EUR")
    url = f"/v1/deals/{deal['id']}"
    contacts = [await create_contact(client) for _ in range(3)]
    for contact_id in contacts:
        assert (await client.put(f"{url}/contacts/{contact_id}")).status_code == 204
    assert (await client.patch(url, json={"amount": 20}, headers=MERGE_PATCH)).status_code == 200
    assert (await _move(client, deal["id"], stage="won", reason="price")).status_code == 200
    assert (await client.delete(url)).status_code == 204

    events = await outbox_events(runtime, "crm.deal.")
    after = [e for e in events if e["type"] not in ("crm.deal.created", "crm.deal.contact_added")]
    assert [e["type"] for e in after] == [
        "crm.deal.updated",
        "crm.deal.stage_changed",
        "crm.deal.won",
        "crm.deal.deleted",
    ]
    # Sorted by id, not in the order they were associated; the deleted deal as it stood.
    assert all(e["contact_ids"] == sorted(contacts) for e in after)
    assert [e["schema_version"] for e in after] == [3, 2, 2, 2]


async def test_a_batch_upsert_answers_for_each_record_and_a_bad_record_writes_nothing(api: Api) -> None:
    client, runtime = api
    known = await _create(client, external_id="crm-1", amount=100, currency="EUR")
    same = await _create(client, external_id="crm-2", owner="rep-1")
    records: list[dict[str, Any]] = [
        {"external_id": "crm-3", "name": "New", "amount": 5, "currency": "USD", "stage": "demo"},
        {"external_id": "crm-1", "amount": 200, "stage": "won", "reason": "price", "note": "signed"},
        {"external_id": "crm-2", "owner": "rep-1"},
        {"external_id": "crm-2", "amount": 999, "currency": "EUR", "stage": "lost"},  # no reason
        {"name": "No external id"},
        {"external_id": "crm-4"},  # new, without a name
        {"external_id": "crm-2", "pipeline_id": str(uuid.uuid4())},
        {"external_id": "crm-5", "name": "Closed at birth", "stage": "won", "reason": "price"},
    ]
    response = await client.post("/v1/deals/batch/upsert", json={"records": records})
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["created"], result["updated"], result["unchanged"], result["failed"]) == (1, 1, 1, 5)
    results = result["results"]
    assert [r["status"] for r in results] == ["created", "updated", "unchanged"] + ["error"] * 5
    assert [r["error"]["field"] for r in results[3:]] == [
        "reason",
        "external_id",
        "name",
        "pipeline_id",
        "stage",
    ]
    assert (results[1]["id"], results[2]["id"]) == (known["id"], same["id"])

    created = (await client.get(f"/v1/deals/{results[0]['id']}")).json()
    assert (created["stage"], created["amount"], created["external_id"]) == ("demo", 5, "crm-3")
    won = (await client.get(f"/v1/deals/{known['id']}")).json()
    assert (won["stage"], won["amount"], won["close_reason"]) == ("won", 200, "price")
    untouched = (await client.get(f"/v1/deals/{same['id']}")).json()
    assert (untouched["amount"], untouched["stage"]) == (None, "prospecting"), "a failed record wrote nothing"
    assert (await _history(client, known["id"]))[-1]["note"] == "signed"

    types = [e["type"] for e in await outbox_events(runtime, "crm.deal.")]
    assert types == [
        "crm.deal.created",
        "crm.deal.created",
        "crm.deal.created",
        "crm.deal.updated",
        "crm.deal.stage_changed",
        "crm.deal.won",
    ]


async def test_deal_events_are_published_on_crm_deals_keyed_by_the_deal(
    api: Api, local_bus: EmbeddedBus
) -> None:
    client, runtime = api
    deal = await _create(client, amount=10, currency="EUR")
    await _move(client, deal["id"], stage="lost", reason="no_budget")
    assert await runtime.relay().publish_batch() == 3
    async with local_bus.consumer("reader", [topics.DEALS.name]) as consumer:
        records = await drain(consumer, count=3)
    assert [record.key for record in records] == [deal["id"]] * 3
    created, changed, lost = (from_record(record).event for record in records)
    assert created.event_type() == "crm.deal.created"
    assert isinstance(changed, DealStageChanged)
    assert isinstance(lost, DealLost)
    assert (changed.from_stage, changed.stage, changed.status) == ("prospecting", "lost", "lost")
    assert (lost.reason, lost.from_stage, lost.amount) == ("no_budget", "prospecting", 10)
    assert lost.closed_at is not None
    assert lost.closed_at >= lost.created_at


@pytest.mark.parametrize(
    ("event_type", "version", "fields"),
    [
        ("crm.deal.created", 1, {}),
        ("crm.deal.updated", 1, {**_CHANGED, "changes": {"amount": {"old": "1", "new": "2"}}}),
        ("crm.deal.updated", 2, {**_CHANGED, "changes": {"amount": {"old": 1, "new": 2}}}),
        (
            "crm.deal.stage_changed",
            1,
            {
                "from_stage": "demo",
                "from_status": "open",
                "reason": None,
                "changed_by": "k",
                "changed_at": _AT,
            },
        ),
        ("crm.deal.won", 1, {"from_stage": "demo", "reason": "price", "changed_by": "k"}),
        ("crm.deal.lost", 1, {"from_stage": "demo", "reason": "price", "changed_by": "k"}),
        ("crm.deal.deleted", 1, {"deleted_at": _AT}),
    ],
)
def test_deal_events_of_earlier_versions_read_as_not_saying_which_contacts(
    event_type: str, version: int, fields: dict[str, Any]
) -> None:
    """Older events did not say who the deal's contacts were: null, not an empty list (it may have had
    some)."""
    snapshot = {
        "schema_version": version,
        "deal_id": str(uuid.uuid4()),
        "pipeline_id": SALES_PIPELINE_ID,
        "stage": "demo",
        "status": "open",
        "amount": 1,
        "currency": "EUR",
        "owner": None,
        "expected_close_date": None,
        "created_at": _AT,
        "closed_at": None,
    }
    event = REGISTRY.parse(event_type, {**snapshot, **fields})
    assert isinstance(event, DealSnapshot)
    assert event.schema_version == type(event).current_version() > version
    assert event.contact_ids is None
    assert str(event.deal_id) == snapshot["deal_id"]
