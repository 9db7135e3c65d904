"""Duplicates and merge through the real ASGI app, on SQLite and PostgreSQL: candidates with scores and
reasons; a merge that keeps the merged contact's identities, history, consents and associations; its
explanation; bad merges that change nothing; and erasure reaching what a merge kept."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.contacts.app import DEFINITION
from services.journeys.app import DEFINITION as JOURNEYS
from shared.bus.base import EventBus
from shared.bus.embedded import EmbeddedBus
from shared.testing.apps import service_client
from tests.services.contacts.sales_support import Api, contacts_api, outbox_events, problem
from tests.services.contacts.test_erasure import _everything_stored

ADA = {
    "email": "ada.lovelace@gmail.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "phone": "+442071838750",
    "company_name": "Acme",
    "lifecycle_stage": "lead",
    "job_title": "Analyst",
    "tags": ["poetry"],
    "external_ids": [{"system": "shop", "id": "ada-1"}],
}
# The same person again: another address of the same mailbox, a better title, a further stage.
AUGUSTA = {
    "email": "adalovelace+crm@gmail.com",
    "first_name": "Augusta Ada",
    "last_name": "King",
    "mobile_phone": "+442071838750",
    "lifecycle_stage": "customer",
    "job_title": "Countess of Lovelace",
    "city": "Marylebone",
    "tags": ["maths"],
    "external_ids": [{"system": "billing", "id": "b-77"}],
    "anonymous_ids": ["anon-augusta"],
    "properties": {"plan": "pro"},
}


@pytest.fixture
async def api(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[Api]:
    async with contacts_api(database_url, local_bus, tmp_path) as pair:
        yield pair


async def _create(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/contacts", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _define_plan(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/properties",
        json={
            "object_type": "contact",
            "key": "plan",
            "label": "Plan",
            "type": "enum",
            "options": ["free", "pro"],
        },
    )
    assert response.status_code == 201, response.text


async def test_duplicates_are_found_by_mailbox_phone_and_name_at_the_same_company(api: Api) -> None:
    client, _ = api
    ada = await _create(client, ADA)
    same_mailbox = await _create(client, {"email": "A.Da.Lovelace+news@googlemail.com"})
    same_phone = await _create(client, {"email": "office@example.com", "mobile_phone": "+442071838750"})
    same_name = await _create(
        client,
        {"email": "al@acme.example", "first_name": "Ada", "last_name": "Lovelase", "company_name": "ACME"},
    )
    swapped = await _create(
        client,
        {
            "email": "lovelace@acme.example",
            "first_name": "Lovelace",
            "last_name": "Ada",
            "company_name": "acme",
        },
    )
    await _create(
        client,
        {"email": "grace@acme.example", "first_name": "Grace", "last_name": "Hopper", "company_name": "Acme"},
    )
    await _create(client, {"email": "ada@elsewhere.example", "first_name": "Ada", "last_name": "Lovelace"})

    response = await client.get(f"/v1/contacts/{ada['id']}/duplicates")
    assert response.status_code == 200, response.text
    found = {item["contact"]["id"]: item for item in response.json()["items"]}
    assert set(found) == {same_mailbox["id"], same_phone["id"], same_name["id"], swapped["id"]}, (
        "a colleague with another name, and a namesake at no company, are not candidates"
    )
    assert [r["rule"] for r in found[same_mailbox["id"]]["reasons"]] == ["email"]
    assert "ada.lovelace@gmail.com" in found[same_mailbox["id"]]["reasons"][0]["detail"]
    assert [r["rule"] for r in found[same_phone["id"]]["reasons"]] == ["phone"]
    assert [r["rule"] for r in found[same_name["id"]]["reasons"]] == ["name_and_company"]
    assert found[swapped["id"]]["reasons"][0]["weight"] == 0.75, "first and last swapped is the same name"
    scores = [item["score"] for item in response.json()["items"]]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == found[same_mailbox["id"]]["score"] == 0.95

    limited = await client.get(f"/v1/contacts/{ada['id']}/duplicates", params={"limit": 1})
    assert [item["contact"]["id"] for item in limited.json()["items"]] == [same_mailbox["id"]]
    problem(await client.get("/v1/contacts/00000000-0000-4000-8000-000000000000/duplicates"), 404)


async def test_a_merge_keeps_everything_of_both_and_explains_itself(api: Api) -> None:
    client, runtime = api
    await _define_plan(client)
    ada = await _create(client, ADA)
    augusta = await _create(client, AUGUSTA)
    await client.patch(f"/v1/contacts/{augusta['id']}", json={"street": "Great Cumberland Place"})
    for contact, status in ((ada, "granted"), (augusta, "withdrawn")):  # Augusta's statement is the later
        response = await client.post(
            f"/v1/contacts/{contact['id']}/consents",
            json={
                "purpose": "email_marketing",
                "status": status,
                "source": "form",
                "proof": {"method": "checkbox"},
            },
        )
        assert response.status_code in (200, 201), response.text
    review = await client.post(
        f"/v1/contacts/{augusta['id']}/entries",
        json={"kind": "review", "body": "Splendid engine.", "score": 5, "scale": "five_star"},
    )
    assert review.status_code == 201, review.text
    company = (
        await client.post("/v1/companies", json={"name": "Analytical Engines", "domain": "engines.example"})
    ).json()
    for contact in (ada, augusta):
        assert (
            await client.put(f"/v1/companies/{company['id']}/contacts/{contact['id']}")
        ).status_code == 204
    deal = (await client.post("/v1/deals", json={"name": "Engine"})).json()
    both_deal = (await client.post("/v1/deals", json={"name": "Notes"})).json()
    for deal_id, contact in ((deal["id"], augusta), (both_deal["id"], ada), (both_deal["id"], augusta)):
        assert (await client.put(f"/v1/deals/{deal_id}/contacts/{contact['id']}")).status_code == 204

    response = await client.post(
        f"/v1/contacts/{ada['id']}/merge",
        json={"merge_id": augusta["id"], "prefer": {"job_title": "merged"}, "reason": "One countess."},
    )
    assert response.status_code == 200, response.text
    outcome = response.json()
    survivor = outcome["contact"]
    assert survivor["id"] == ada["id"]
    assert response.headers["etag"]
    assert survivor["email"] == "ada.lovelace@gmail.com", "the survivor's primary email stays"
    assert survivor["emails"] == ["ada.lovelace@gmail.com", "adalovelace+crm@gmail.com"]
    assert {(e["system"], e["id"]) for e in survivor["external_ids"]} == {
        ("shop", "ada-1"),
        ("billing", "b-77"),
    }
    assert survivor["anonymous_ids"] == ["anon-augusta"]
    assert sorted(survivor["tags"]) == ["maths", "poetry"]
    assert survivor["first_name"] == "Ada", "both have one: the survivor's"
    assert survivor["job_title"] == "Countess of Lovelace", "asked for: the merged one's"
    assert survivor["city"] == "Marylebone", "only the merged one had it"
    assert survivor["mobile_phone"] == "+442071838750"
    assert survivor["lifecycle_stage"] == "customer", "further along the funnel"
    assert survivor["properties"] == {"plan": "pro"}
    assert survivor["consents"]["email_marketing"]["status"] == "withdrawn", "the later statement wins"
    assert survivor["marketing_allowed"] is False

    # The merged id reads as the survivor; its identities now find the survivor.
    old = await client.get(f"/v1/contacts/{augusta['id']}")
    assert old.status_code == 200
    assert old.json()["id"] == ada["id"]
    assert old.headers["content-location"].endswith(f"/v1/contacts/{ada['id']}")
    found = await client.post(
        "/v1/contacts/search",
        json={
            "filter": {"field": "emails", "op": "contains", "value": "adalovelace+crm@gmail.com"},
            "with_total": True,
        },
    )
    assert [c["id"] for c in found.json()["items"]] == [ada["id"]]
    listed = (await client.get("/v1/contacts")).json()["items"]
    assert [c["id"] for c in listed] == [ada["id"]], "the merged contact is listed no more"
    upserted = await client.post(
        "/v1/contacts/batch/upsert",
        json={"records": [{"external_ids": [{"system": "billing", "id": "b-77"}], "owner": "rep-2"}]},
    )
    assert upserted.json()["results"][0]["id"] == ada["id"]

    # History, transitions, consents and associations of both.
    history = (await client.get(f"/v1/contacts/{ada['id']}/history", params={"limit": 200})).json()["items"]
    assert {"street", "job_title", "lifecycle_stage"} <= {change["property"] for change in history}
    assert any(c["property"] == "street" and c["new_value"] == "Great Cumberland Place" for c in history), (
        "the merged contact's own history moved to the survivor"
    )
    assert any(c["property"] == "job_title" and c["source"] == "merge" for c in history)
    stages = [
        t["to_stage"] for t in (await client.get(f"/v1/contacts/{ada['id']}/lifecycle")).json()["items"]
    ]
    assert sorted(stages) == ["customer", "customer", "lead"], "Augusta's creation, Ada's and the merge's"
    consents = (await client.get(f"/v1/contacts/{ada['id']}/consents/history")).json()["items"]
    assert sorted(c["status"] for c in consents) == ["granted", "withdrawn"]
    members = (await client.get(f"/v1/companies/{company['id']}/contacts")).json()["items"]
    assert [m["contact_id"] if "contact_id" in m else m["id"] for m in members] == [ada["id"]]
    for deal_id in (deal["id"], both_deal["id"]):
        assert (await client.get(f"/v1/deals/{deal_id}")).json()["contact_ids"] == [ada["id"]]

    # The explanation.
    merges = (await client.get(f"/v1/contacts/{ada['id']}/merges")).json()["items"]
    assert len(merges) == 1
    merge = merges[0]
    assert merge == outcome["merge"]
    assert (merge["survivor_id"], merge["merged_id"], merge["reason"]) == (
        ada["id"],
        augusta["id"],
        "One countess.",
    )
    decisions = {d["field"]: (d["chosen"], d["rule"]) for d in merge["decisions"]}
    assert decisions["job_title"] == ("merged", "requested")
    assert decisions["first_name"] == ("survivor", "survivor's value")
    assert decisions["city"] == ("merged", "only value")
    assert decisions["lifecycle_stage"] == ("merged", "further along the funnel")
    assert decisions["emails"] == ("both", "union")
    assert {m["rule"] for m in merge["matched"]} == {"email", "phone"}
    moved = merge["moved"]
    assert (moved["companies"], moved["deals"], moved["consent_records"]) == (0, 1, 1), "shared ones once"
    assert moved["property_changes"] >= 10
    assert moved["entries"] == 1
    entries = (await client.get(f"/v1/contacts/{ada['id']}/entries")).json()["items"]
    assert [entry["id"] for entry in entries] == [review.json()["id"]]
    assert merge["merged_snapshot"]["email"] == "adalovelace+crm@gmail.com"

    # The events: the survivor's changes, then the merge keyed by the merged contact; no personal data.
    events = await outbox_events(runtime, "crm.contact.")
    [merged_event] = [e for e in events if e["type"] == "crm.contact.merged"]
    assert merged_event["key"] == augusta["id"]
    assert merged_event["contact_id"] == ada["id"]
    assert merged_event["merge_id"] == merge["id"]
    update = [e for e in events if e["type"] == "crm.contact.updated" and e["contact_id"] == ada["id"]][-2]
    assert {"emails", "job_title", "lifecycle_stage"} <= set(update["changed_fields"])
    for event in events:
        for personal in ("adalovelace", "Countess", "Marylebone", "Augusta"):
            assert personal not in event["raw"].decode(), f"{personal} on the stream: {event['type']}"


async def test_bad_merges_answer_a_problem_and_change_nothing(api: Api) -> None:
    client, runtime = api
    ada = await _create(client, ADA)
    augusta = await _create(client, AUGUSTA | {"properties": None})
    before = await _everything_stored(runtime)
    merge = f"/v1/contacts/{ada['id']}/merge"

    assert (
        problem(await client.post(merge, json={"merge_id": ada["id"]}), 422)["errors"][0]["field"]
        == "merge_id"
    )
    assert (
        problem(await client.post(merge, json={"merge_id": "nope"}), 422)["errors"][0]["field"] == "merge_id"
    )
    unknown = await client.post(merge, json={"merge_id": augusta["id"], "prefer": {"shoe_size": "merged"}})
    assert problem(unknown, 422)["errors"][0]["field"] == "prefer.shoe_size"
    problem(await client.post(merge, json={"merge_id": "00000000-0000-4000-8000-000000000000"}), 404)
    stale = await client.post(merge, json={"merge_id": augusta["id"]}, headers={"If-Match": '"99"'})
    problem(stale, 412)
    assert await _everything_stored(runtime) == before, "a refused merge wrote nothing"

    grace = await _create(client, {"email": "grace@example.com"})
    assert (await client.post(f"/v1/contacts/{grace['id']}/erasure")).status_code == 202
    problem(await client.post(merge, json={"merge_id": grace["id"]}), 410)
    done = await client.post(merge, json={"merge_id": augusta["id"]})
    assert done.status_code == 200, done.text
    problem(await client.post(merge, json={"merge_id": augusta["id"]}), 404)


async def test_erasing_a_survivor_erases_what_its_merges_kept(api: Api) -> None:
    client, runtime = api
    ada = await _create(client, ADA)
    augusta = await _create(client, AUGUSTA | {"properties": None})
    assert (
        await client.post(f"/v1/contacts/{ada['id']}/merge", json={"merge_id": augusta["id"]})
    ).status_code == 200
    assert (await client.post(f"/v1/contacts/{ada['id']}/erasure")).status_code == 202

    stored = await _everything_stored(runtime)
    leaks = [
        value for value in ("adalovelace", "Augusta", "Marylebone", "b-77", "anon-augusta") if value in stored
    ]
    assert not leaks, f"personal data of the merged contact left after erasure: {leaks}"
    problem(await client.get(f"/v1/contacts/{augusta['id']}"), 410)
    [erased] = await outbox_events(runtime, "crm.contact.erased")
    assert erased["merged_contact_ids"] == [augusta["id"]]


async def _until(fetch: Any, done: Any, timeout_s: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, Any] = (await fetch()).json()
        if done(body):
            return body
        assert time.monotonic() < deadline, f"not reached in {timeout_s} s: {body}"
        await asyncio.sleep(0.05)


async def test_the_survivor_has_both_timelines_and_all_deals_on_either_bus(
    bus: EventBus, tmp_path: Path
) -> None:
    """Contacts and journeys, each on its own database, joined by the bus: after the merge, the journeys
    timeline of the survivor holds the merged contact's entries too, and the merged id holds none."""
    async with (
        service_client(
            DEFINITION, database_url=f"sqlite:///{tmp_path / 'contacts.sqlite'}", bus=bus, data_dir=tmp_path
        ) as (contacts, _),
        service_client(
            JOURNEYS, database_url=f"sqlite:///{tmp_path / 'journeys.sqlite'}", bus=bus, data_dir=tmp_path
        ) as (journeys, _),
    ):
        ada = await _create(contacts, ADA)
        augusta = await _create(contacts, AUGUSTA | {"properties": None})
        await contacts.patch(f"/v1/contacts/{ada['id']}", json={"owner": "rep-1"})
        await contacts.patch(f"/v1/contacts/{augusta['id']}", json={"owner": "rep-2"})
        deals = []
        for contact in (ada, augusta):
            deal = (await contacts.post("/v1/deals", json={"name": f"Deal of {contact['id']}"})).json()
            assert (await contacts.put(f"/v1/deals/{deal['id']}/contacts/{contact['id']}")).status_code == 204
            deals.append(deal["id"])

        def timeline(contact_id: str) -> Any:
            return lambda: journeys.get(f"/v1/contacts/{contact_id}/timeline", params={"limit": 100})

        for contact in (ada, augusta):
            await _until(timeline(contact["id"]), lambda body: len(body["items"]) == 2)

        merged = await contacts.post(
            f"/v1/contacts/{ada['id']}/merge", json={"merge_id": augusta["id"], "reason": "same person"}
        )
        assert merged.status_code == 200, merged.text

        after = await _until(
            timeline(ada["id"]), lambda body: "crm.contact.merged" in {e["event_type"] for e in body["items"]}
        )
        types = [entry["event_type"] for entry in after["items"]]
        # Both creations and both owner updates, the survivor's update and lifecycle change by the merge,
        # and the merge.
        expected = (
            ["crm.contact.created"] * 2 + ["crm.contact.updated"] * 3 + ["crm.contact.lifecycle_changed"]
        )
        assert sorted(types) == sorted([*expected, "crm.contact.merged"]), types
        assert (await journeys.get(f"/v1/contacts/{augusta['id']}/timeline")).json()["items"] == []
        for deal_id in deals:
            assert (await contacts.get(f"/v1/deals/{deal_id}")).json()["contact_ids"] == [ada["id"]]
        [merge] = (await contacts.get(f"/v1/contacts/{ada['id']}/merges")).json()["items"]
        assert (merge["merged_id"], merge["reason"], merge["moved"]["deals"]) == (
            augusta["id"],
            "same person",
            1,
        )
