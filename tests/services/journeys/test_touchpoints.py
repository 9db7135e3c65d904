"""Touchpoints through the real ASGI app, on SQLite and PostgreSQL: recorded, resolved to a contact from
what the stream said, announced without personal data, deduplicated by `message_id`, and refused with a
problem naming the field."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.bus.embedded import EmbeddedBus
from shared.events.catalog import ContactCreated, ContactErased, ContactMerged, ContactUpdated
from tests.services.journeys.support import (
    Api,
    contacts_say,
    error_fields,
    everything_stored,
    hasher,
    journeys_api,
    outbox_events,
    problem,
    touchpoint_count,
)

NOW = datetime.now(UTC)
WEBINAR: dict[str, Any] = {
    "occurred_at": (NOW - timedelta(hours=2)).isoformat(),
    "channel": "webinar",
    "type": "webinar_attended",
    "stage": "consideration",
    "team": "marketing",
    "campaign": "autumn-launch",
    "content_id": "webinar-101",
    "utm_source": "newsletter",
    "utm_medium": "email",
    "utm_campaign": "autumn",
    "utm_term": "crm",
    "utm_content": "hero",
    "properties": {"minutes_watched": 47, "note": "Ada asked about pricing"},
}


@pytest.fixture
async def api(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[Api]:
    async with journeys_api(database_url, local_bus, tmp_path) as pair:
        yield pair


def _created(contact_id: uuid.UUID, *hashes: str) -> ContactCreated:
    return ContactCreated(
        contact_id=contact_id, lifecycle_stage="lead", email_hashes=list(hashes), created_at=NOW
    )


async def _record(api: Api, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    response = await api[0].post("/v1/touchpoints", json=body)
    assert response.status_code == status, response.text
    recorded: dict[str, Any] = response.json()
    return recorded


async def test_a_touchpoint_by_email_is_resolved_recorded_and_announced_without_personal_data(
    api: Api, local_bus: EmbeddedBus
) -> None:
    client, runtime = api
    ada = uuid.uuid4()
    await contacts_say(runtime, local_bus, _created(ada, hasher(runtime).email("ada@example.com")))

    response = await client.post("/v1/touchpoints", json={**WEBINAR, "email": " Ada@Example.COM "})
    assert response.status_code == 201, response.text
    recorded = response.json()
    assert response.headers["location"] == f"http://testserver/v1/touchpoints/{recorded['id']}"
    assert recorded["contact_id"] == str(ada)
    assert recorded["actor"] == "bootstrap"
    for name in ("channel", "type", "stage", "team", "campaign", "content_id", "utm_term", "properties"):
        assert recorded[name] == WEBINAR[name], name
    assert datetime.fromisoformat(recorded["occurred_at"]) == datetime.fromisoformat(WEBINAR["occurred_at"])
    assert (await client.get(response.headers["location"])).json() == recorded

    [event] = await outbox_events(runtime, "crm.touchpoint.")
    assert (event["type"], event["key"], event["touchpoint_id"]) == (
        "crm.touchpoint.recorded",
        str(ada),
        recorded["id"],
    )
    assert event["contact_id"] == str(ada)
    assert (event["touchpoint_type"], event["channel"], event["utm_term"]) == (
        "webinar_attended",
        "webinar",
        "crm",
    )
    assert "properties" not in event
    raw = event["raw"].decode()
    for secret in ("ada@example.com", hasher(runtime).email("ada@example.com"), "pricing", "minutes_watched"):
        assert secret not in raw.lower(), secret
    assert "ada@example.com" not in (await everything_stored(runtime)).lower(), "the email is stored in clear"


async def test_unresolved_touchpoints_are_kept_and_keyed_by_what_is_known(api: Api) -> None:
    _, runtime = api
    unknown_contact = uuid.uuid4()
    by_id = await _record(api, {**WEBINAR, "contact_id": str(unknown_contact)})
    by_cookie = await _record(api, {**WEBINAR, "anonymous_id": "visitor-7"})
    by_email = await _record(api, {**WEBINAR, "email": "nobody@example.com"})
    by_external = await _record(api, {**WEBINAR, "external_id": {"system": "shop", "id": "c-9"}})

    # An id contacts may not know yet is taken as given; the others wait for their person.
    assert by_id["contact_id"] == str(unknown_contact)
    assert [t["contact_id"] for t in (by_cookie, by_email, by_external)] == [None, None, None]
    assert by_external["external_id"] == {"system": "shop", "id": "c-9"}
    assert by_cookie["anonymous_id"] == "visitor-7"
    keys = [event["key"] for event in await outbox_events(runtime, "crm.touchpoint.")]
    assert keys == [str(unknown_contact), "visitor-7", by_email["id"], by_external["id"]]
    assert await touchpoint_count(runtime) == 4


async def test_the_identity_links_follow_the_contacts_events(api: Api, local_bus: EmbeddedBus) -> None:
    """Emails learnt from creations and updates, dropped when they change; a merged id names the
    survivor; an erasure leaves nothing that resolves to the person."""
    _, runtime = api
    ada, grace, old = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    email = hasher(runtime).email
    await contacts_say(
        runtime,
        local_bus,
        _created(ada, email("ada@example.com"), email("ada@work.example")),
        _created(grace, email("grace@example.com")),
        ContactUpdated(
            contact_id=ada,
            changed_fields=["emails"],
            changes={},
            email_hashes=[email("ada@example.com")],
            updated_at=NOW,
        ),
        ContactMerged(
            contact_id=grace, merged_contact_id=old, merge_id=uuid.uuid4(), actor="k", merged_at=NOW
        ),
    )

    async def resolved(who: dict[str, Any]) -> str | None:
        contact: str | None = (await _record(api, {**WEBINAR, **who}))["contact_id"]
        return contact

    assert await resolved({"email": "ada@example.com"}) == str(ada)
    assert await resolved({"email": "ada@work.example"}) is None, "an email the contact no longer has"
    assert await resolved({"email": "grace@example.com", "anonymous_id": "v-1"}) == str(grace)
    assert await resolved({"contact_id": str(old)}) == str(grace), "a merged id names the survivor"

    await contacts_say(
        runtime,
        local_bus,
        ContactErased(contact_id=grace, merged_contact_ids=[old], receipt_id=uuid.uuid4(), erased_at=NOW),
    )
    assert await resolved({"email": "grace@example.com"}) is None
    assert await resolved({"contact_id": str(old)}) == str(old)


async def test_a_repeated_message_id_answers_the_first_touchpoint_and_records_nothing(api: Api) -> None:
    client, runtime = api
    body = {**WEBINAR, "anonymous_id": "visitor-1", "message_id": "msg-1"}
    first = await _record(api, body)
    again = await client.post("/v1/touchpoints", json={**body, "type": "something_else"})
    assert again.status_code == 200, again.text
    assert again.json() == first
    assert again.headers["content-location"] == f"http://testserver/v1/touchpoints/{first['id']}"
    assert "location" not in again.headers

    # Concurrent repeats share one transaction (group commit) or race in the database: one is recorded.
    racing = await asyncio.gather(
        *(client.post("/v1/touchpoints", json={**body, "message_id": "msg-2"}) for _ in range(6))
    )
    assert sorted(response.status_code for response in racing) == [200] * 5 + [201]
    assert len({response.json()["id"] for response in racing}) == 1

    keyed = {"Idempotency-Key": "retry-1"}
    once = await client.post("/v1/touchpoints", json={**body, "message_id": None}, headers=keyed)
    twice = await client.post("/v1/touchpoints", json={**body, "message_id": None}, headers=keyed)
    assert (once.status_code, twice.status_code, twice.headers["idempotent-replayed"]) == (201, 201, "true")
    assert twice.json() == once.json()

    assert await touchpoint_count(runtime) == 3
    assert len(await outbox_events(runtime, "crm.touchpoint.")) == 3


async def test_bad_touchpoints_are_refused_naming_the_field_and_write_nothing(api: Api) -> None:
    client, runtime = api
    who = {"anonymous_id": "visitor-1"}

    ahead = problem(
        await client.post(
            "/v1/touchpoints",
            json={**WEBINAR, **who, "occurred_at": (datetime.now(UTC) + timedelta(hours=25)).isoformat()},
        ),
        422,
    )
    [error] = ahead["errors"]
    assert error["field"] == "occurred_at"
    assert "24 hours ahead" in error["message"]
    # Within a day ahead is a clock that differs, not a mistake.
    await _record(
        api, {**WEBINAR, **who, "occurred_at": (datetime.now(UTC) + timedelta(hours=23)).isoformat()}
    )

    assert error_fields(await client.post("/v1/touchpoints", json=WEBINAR)) == ["contact_id"]
    nobody = problem(await client.post("/v1/touchpoints", json={**WEBINAR, "anonymous_id": ""}), 422)
    assert {e["field"] for e in nobody["errors"]} == {"anonymous_id", "contact_id"}
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"revenue": 100}, ["currency"]),
        ({"revenue": 100, "currency": "EUX"}, ["currency"]),
        ({"revenue": -1, "currency": "EUR"}, ["revenue"]),
        ({"revenue": "12.90", "currency": "EUR"}, ["revenue"]),
        ({"channel": "carrier_pigeon"}, ["channel"]),
        ({"stage": "bliss"}, ["stage"]),
        ({"team": "finance"}, ["team"]),
        ({"type": ""}, ["type"]),
        ({"occurred_at": "2026-11-20T10:00:00"}, ["occurred_at"]),
        ({"contact_id": "not-a-uuid"}, ["contact_id"]),
        ({"email": "not-an-email"}, ["email"]),
        # Field errors and the rules over the whole touchpoint, named together.
        ({"email": "ada@reserved.test", "revenue": 1}, ["email", "currency"]),
        ({"external_id": {"system": "Shop!", "id": "1"}}, ["external_id.system"]),
        ({"properties": {"blob": "x" * 17_000}}, ["properties"]),
        ({"properties": ["not", "an", "object"]}, ["properties"]),
        ({"score": "high"}, ["score"]),
        ({"nickname": "Ada"}, ["nickname"]),
    ]
    for change, fields in cases:
        assert (
            error_fields(await client.post("/v1/touchpoints", json={**WEBINAR, **who, **change})) == fields
        ), change
    missing = problem(await client.post("/v1/touchpoints", json={**who}), 422)
    assert {"occurred_at", "channel", "type"} <= {e["field"] for e in missing["errors"]}

    huge = {**WEBINAR, **who, "properties": {f"k{n}": "v" * 1000 for n in range(70)}}
    problem(await client.post("/v1/touchpoints", json=huge), 413)

    assert await touchpoint_count(runtime) == 1
    assert len(await outbox_events(runtime)) == 1


async def test_an_unknown_touchpoint_is_a_404_problem(api: Api) -> None:
    body = problem(await api[0].get(f"/v1/touchpoints/{uuid.uuid4()}"), 404)
    assert body["title"] == "Touchpoint not found"
    assert error_fields(await api[0].get("/v1/touchpoints/nope")) == ["touchpoint_id"]


async def test_the_touchpoint_routes_are_documented_with_examples(api: Api) -> None:
    document = (await api[0].get("/openapi.json")).json()
    post = document["paths"]["/v1/touchpoints"]["post"]
    examples = post["requestBody"]["content"]["application/json"]["examples"]
    assert {"webinar", "purchase", "anonymous"} <= set(examples)
    assert {"200", "201", "413", "422"} <= set(post["responses"])
    assert "journeys:write" in str(post["security"])
    schema = document["components"]["schemas"]["TouchpointCreate"]
    assert schema["examples"]
    get = document["paths"]["/v1/touchpoints/{touchpoint_id}"]["get"]
    assert "404" in get["responses"]
