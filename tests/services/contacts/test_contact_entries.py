"""A contact's entries (notes, reviews, ratings, feedback, suggestions) over HTTP through the real ASGI
app, on SQLite and PostgreSQL: the kinds' rules, reads and lists, corrections under `If-Match`, the
summary, and the feedback events, published on both buses without any of the text."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from services.contacts.app import DEFINITION
from services.contacts.contacts.service import Author
from services.contacts.db import outbox
from services.contacts.entries.models import ContactEntry
from services.contacts.erasure import service as erasure
from shared.bus.base import Consumer, EventBus, Record
from shared.bus.embedded import EmbeddedBus
from shared.db import session_scope
from shared.events import topics
from shared.events.entries import ContactFeedbackRecorded
from shared.events.envelope import from_record
from shared.runtime import ServiceRuntime
from shared.testing.apps import ADMIN_HEADERS, service_client
from tests.services.contacts.sales_support import (
    MERGE_PATCH,
    Api,
    contacts_api,
    create_contact,
    error_fields,
    outbox_events,
    problem,
)

FEEDBACK = "crm.contact.feedback_"
# Free text that names a person: it must never reach the stream.
NPS_ANSWER = {
    "kind": "feedback",
    "score": 9,
    "scale": "nps",
    "subject": "Invoice help from Ingrid Bergström",
    "body": "Ingrid Bergström sorted my invoice out in minutes.",
    "channel": "survey",
    "reference": {"type": "ticket", "id": "ZD-4711"},
    "occurred_at": "2025-11-20T09:30:00Z",
}


@pytest.fixture
async def api(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[Api]:
    async with contacts_api(database_url, local_bus, tmp_path) as pair:
        yield pair


async def _record(client: httpx.AsyncClient, contact_id: str, **body: Any) -> dict[str, Any]:
    response = await client.post(f"/v1/contacts/{contact_id}/entries", json=body)
    assert response.status_code == 201, response.text
    entry: dict[str, Any] = response.json()
    return entry


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def _stored_entries(runtime: ServiceRuntime) -> int:
    async with runtime.database.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(ContactEntry)) or 0)


async def test_a_note_is_recorded_read_and_announces_nothing(api: Api) -> None:
    client, runtime = api
    contact_id = await create_contact(client)
    response = await client.post(
        f"/v1/contacts/{contact_id}/entries",
        json={"kind": "note", "body": "  Prefers calls after 4 pm.  ", "author": "agent-4"},
    )
    assert response.status_code == 201, response.text
    note = response.json()
    assert response.headers["location"] == f"http://testserver/v1/contacts/{contact_id}/entries/{note['id']}"
    assert response.headers["etag"] == '"1"'
    assert (note["kind"], note["body"], note["author"], note["contact_id"]) == (
        "note",
        "Prefers calls after 4 pm.",
        "agent-4",
        contact_id,
    )
    assert (note["score"], note["scale"], note["reference"]) == (None, None, None)
    assert note["actor"] == "bootstrap"
    assert note["occurred_at"] == note["created_at"]

    fetched = await client.get(response.headers["location"])
    assert (fetched.status_code, fetched.headers["etag"], fetched.json()) == (200, '"1"', note)
    unchanged = await client.get(response.headers["location"], headers={"If-None-Match": '"1"'})
    assert (unchanged.status_code, unchanged.content) == (304, b"")
    assert await outbox_events(runtime, FEEDBACK) == [], "a note has no score: nothing to announce"


async def test_a_scored_entry_is_staged_with_its_numbers_and_codes_only(api: Api) -> None:
    client, runtime = api
    contact_id = await create_contact(client)
    entry = await _record(client, contact_id, **NPS_ANSWER)
    assert (entry["score"], entry["scale"], entry["channel"]) == (9, "nps", "survey")
    assert entry["reference"] == {"type": "ticket", "id": "ZD-4711"}
    assert entry["occurred_at"] == "2025-11-20T09:30:00Z"

    [event] = await outbox_events(runtime, FEEDBACK)
    assert (event["type"], event["key"]) == ("crm.contact.feedback_recorded", contact_id)
    assert {name: event[name] for name in ("contact_id", "entry_id", "kind", "score", "scale")} == {
        "contact_id": contact_id,
        "entry_id": entry["id"],
        "kind": "feedback",
        "score": 9,
        "scale": "nps",
    }
    assert (event["scale_min"], event["scale_max"], event["sentiment"]) == (0, 10, "positive")
    assert (event["channel"], event["occurred_at"]) == ("survey", "2025-11-20T09:30:00Z")
    assert _at(event["recorded_at"]) == _at(entry["created_at"])
    for text_ in ("Ingrid", "Bergstr", "invoice", "ZD-4711"):
        assert text_.encode() not in event["raw"], f"{text_!r} reached the stream"


async def _records_for(consumer: Consumer, key: str, count: int, timeout_s: float = 30) -> list[Record]:
    """The first `count` records with `key`: a shared broker's topic holds other tests' records too."""
    found: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(found) < count and time.monotonic() < deadline:
        found += [record for record in await consumer.poll(timeout_s=0.5) if record.key == key]
    return found


async def test_feedback_is_published_on_the_contacts_topic_on_either_bus(
    database_url: str, bus: EventBus, tmp_path: Path
) -> None:
    async with service_client(
        DEFINITION, database_url=database_url, bus=bus, data_dir=tmp_path, relay=False, consumers=False
    ) as (client, runtime):
        contact_id = await create_contact(client)
        entry = await _record(client, contact_id, **NPS_ANSWER)
        await _record(client, contact_id, kind="note", body="Ingrid Bergström called back.")
        assert await runtime.relay().publish_batch() == 2  # the contact's creation and the feedback
        async with bus.consumer(f"test.entries.{uuid.uuid4().hex[:8]}", [topics.CONTACTS.name]) as reader:
            created, feedback = await _records_for(reader, contact_id, count=2)
    assert created.topic == feedback.topic == "crm.contacts"
    event = from_record(feedback).event
    assert isinstance(event, ContactFeedbackRecorded)
    assert (str(event.entry_id), event.score, event.scale, event.sentiment) == (
        entry["id"],
        9,
        "nps",
        "positive",
    )
    assert b"Ingrid" not in feedback.value
    assert all(b"Ingrid" not in value for value in feedback.headers.values())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "note"}, "body"),
        ({"kind": "note", "body": ""}, "body"),
        ({"kind": "suggestion", "subject": "Dark mode"}, "body"),
        ({"kind": "review", "score": 4, "scale": "five_star"}, "body"),
        ({"kind": "note", "body": "x", "score": 3, "scale": "csat"}, "score"),
        ({"kind": "suggestion", "body": "x", "score": 3, "scale": "csat"}, "score"),
        ({"kind": "rating"}, "score"),
        ({"kind": "feedback", "body": "Slow checkout"}, "score"),
        ({"kind": "rating", "score": 4}, "scale"),
        ({"kind": "review", "body": "x", "scale": "nps"}, "scale"),
        ({"kind": "rating", "score": 6, "scale": "five_star"}, "score"),
        ({"kind": "rating", "score": 0, "scale": "csat"}, "score"),
        ({"kind": "feedback", "score": 11, "scale": "nps"}, "score"),
        ({"kind": "feedback", "score": -1, "scale": "nps"}, "score"),
        ({"kind": "rating", "score": 2, "scale": "thumbs"}, "score"),
        ({"kind": "rating", "score": 8, "scale": "ces"}, "score"),
        ({"kind": "rating", "score": "4", "scale": "csat"}, "score"),
        ({"kind": "rating", "score": 4.5, "scale": "csat"}, "score"),
        ({"kind": "rating", "score": 4, "scale": "ten_point"}, "scale"),
        ({"kind": "gossip", "body": "x"}, "kind"),
        ({"body": "x"}, "kind"),
        ({"kind": "note", "body": "x", "channel": "Support Ticket"}, "channel"),
        ({"kind": "note", "body": "x", "occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at"),
        ({"kind": "note", "body": "x", "occurred_at": "2025-01-01T00:00:00"}, "occurred_at"),
        ({"kind": "note", "body": "x", "reference": {"type": "deal"}}, "reference.id"),
        ({"kind": "note", "body": "x", "reference": {"type": "deal", "id": "D-1"}}, "reference.id"),
        ({"kind": "note", "body": "x", "reference": {"type": "Deal!", "id": "1"}}, "reference.type"),
        ({"kind": "note", "body": "x" * 20_001}, "body"),
        ({"kind": "note", "body": "x", "mood": "sunny"}, "mood"),
    ],
)
async def test_a_broken_rule_is_a_422_naming_the_field_and_writes_nothing(
    api: Api, body: dict[str, Any], field: str
) -> None:
    client, runtime = api
    contact_id = await create_contact(client)
    response = await client.post(f"/v1/contacts/{contact_id}/entries", json=body)
    assert error_fields(response) == [field]
    assert await _stored_entries(runtime) == 0
    assert await outbox_events(runtime, FEEDBACK) == []


async def test_a_deal_reference_must_name_a_deal_here(api: Api) -> None:
    client, _ = api
    contact_id = await create_contact(client)
    missing = {"type": "deal", "id": str(uuid.uuid4())}
    refused = await client.post(
        f"/v1/contacts/{contact_id}/entries", json={"kind": "note", "body": "x", "reference": missing}
    )
    assert error_fields(refused) == ["reference.id"]
    deal = (await client.post("/v1/deals", json={"name": "Acme: 250 seats"})).json()
    entry = await _record(
        client,
        contact_id,
        kind="note",
        body="Asked for a discount.",
        reference={"type": "deal", "id": deal["id"]},
    )
    assert entry["reference"] == {"type": "deal", "id": deal["id"]}
    patched = await client.patch(
        f"/v1/contacts/{contact_id}/entries/{entry['id']}", json={"reference": missing}
    )
    assert error_fields(patched) == ["reference.id"]


async def test_an_unknown_contact_is_a_404_and_an_unknown_entry_one_too(api: Api) -> None:
    client, _ = api
    nobody = f"/v1/contacts/{uuid.uuid4()}/entries"
    for response in (
        await client.post(nobody, json={"kind": "note", "body": "x"}),
        await client.get(nobody),
        await client.get(f"{nobody}/summary"),
        await client.get(f"{nobody}/{uuid.uuid4()}"),
        await client.patch(f"{nobody}/{uuid.uuid4()}", json={"body": "y"}),
        await client.delete(f"{nobody}/{uuid.uuid4()}"),
    ):
        assert problem(response, 404)["title"] == "Contact not found"

    ada, grace = await create_contact(client), await create_contact(client)
    entry = await _record(client, ada, kind="note", body="x")
    for url in (f"/v1/contacts/{ada}/entries/{uuid.uuid4()}", f"/v1/contacts/{grace}/entries/{entry['id']}"):
        assert problem(await client.get(url), 404)["title"] == "Entry not found"
        assert problem(await client.patch(url, json={"body": "y"}), 404)["title"] == "Entry not found"
        assert problem(await client.delete(url), 404)["title"] == "Entry not found"
    assert error_fields(await client.get(f"/v1/contacts/{ada}/entries/not-an-id")) == ["entry_id"]


async def test_the_list_walks_newest_first_by_when_each_occurred_and_filters_by_kind(api: Api) -> None:
    client, _ = api
    contact_id = await create_contact(client)
    # Recorded out of order: the list follows `occurred_at`, as an import of old reviews expects.
    days = [5, 1, 4, 2, 3]
    kinds = ["note", "rating", "note", "review", "suggestion"]
    made: dict[int, str] = {}
    for day, kind in zip(days, kinds, strict=True):
        extra: dict[str, Any] = (
            {"score": 4, "scale": "five_star"} if kind == "rating" else {"body": f"day {day}"}
        )
        entry = await _record(client, contact_id, kind=kind, occurred_at=f"2025-11-0{day}T12:00:00Z", **extra)
        made[day] = entry["id"]
    # Another contact's entries are not in this list.
    await _record(client, await create_contact(client), kind="note", body="elsewhere")

    seen: list[str] = []
    url: str | None = f"/v1/contacts/{contact_id}/entries?limit=2"
    while url is not None:
        response = await client.get(url)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [entry["id"] for entry in page["items"]]
        url = page["next_cursor"] and response.headers["link"].split(";")[0].strip("<>")
    assert seen == [made[day] for day in (5, 4, 3, 2, 1)]

    notes = (await client.get(f"/v1/contacts/{contact_id}/entries", params={"kind": "note"})).json()
    assert [entry["id"] for entry in notes["items"]] == [made[5], made[4]]
    two_kinds = await client.get(f"/v1/contacts/{contact_id}/entries?kind=rating&kind=review")
    assert [entry["id"] for entry in two_kinds.json()["items"]] == [made[2], made[1]]
    assert error_fields(await client.get(f"/v1/contacts/{contact_id}/entries?kind=gossip")) == ["kind.0"]
    assert error_fields(await client.get(f"/v1/contacts/{contact_id}/entries?cursor=abc")) == ["cursor"]


async def test_a_patch_merges_keeps_the_kinds_rules_and_reannounces_a_changed_score(api: Api) -> None:
    client, runtime = api
    contact_id = await create_contact(client)
    rating = await _record(client, contact_id, kind="rating", score=2, scale="csat", body="Late delivery")
    url = f"/v1/contacts/{contact_id}/entries/{rating['id']}"

    response = await client.patch(
        url, json={"score": 4, "subject": "Delivery"}, headers={**MERGE_PATCH, "If-Match": '"1"'}
    )
    assert (response.status_code, response.headers["etag"]) == (200, '"2"')
    patched = response.json()
    assert (patched["score"], patched["subject"], patched["body"]) == (4, "Delivery", "Late delivery")
    assert _at(patched["updated_at"]) > _at(patched["created_at"])
    first, again = await outbox_events(runtime, FEEDBACK)
    assert (first["score"], first["sentiment"]) == (2, "negative")
    assert (again["type"], again["entry_id"], again["score"], again["sentiment"]) == (
        "crm.contact.feedback_recorded",
        rating["id"],
        4,
        "positive",
    )

    # Text only: nothing the event says changed, so nothing is announced.
    assert (await client.patch(url, json={"body": "Late, then fine"})).headers["etag"] == '"3"'
    # The same values again: no write, no new version.
    same = await client.patch(url, json={"body": "Late, then fine", "score": 4})
    assert (same.status_code, same.headers["etag"]) == (200, '"3"')
    assert len(await outbox_events(runtime, FEEDBACK)) == 2

    for body, field in (
        ({"score": None}, "score"),  # a rating needs one
        ({"scale": None}, "scale"),
        ({"score": 7}, "score"),  # off the csat scale
        ({"scale": "nps", "score": 11}, "score"),
        ({"kind": "note"}, "kind"),
        ({"occurred_at": None}, "occurred_at"),
        ({"id": str(uuid.uuid4())}, "id"),
    ):
        assert error_fields(await client.patch(url, json=body)) == [field], body
    moved = await client.patch(url, json={"scale": "nps", "score": 6, "kind": "rating"})
    assert (moved.json()["scale"], moved.json()["score"]) == ("nps", 6)
    assert (await outbox_events(runtime, FEEDBACK))[-1]["sentiment"] == "negative"
    assert len(await outbox_events(runtime, FEEDBACK)) == 3


async def test_a_review_gains_and_loses_its_score_and_says_so_on_the_stream(api: Api) -> None:
    client, runtime = api
    contact_id = await create_contact(client)
    review = await _record(client, contact_id, kind="review", body="Solid app", channel="app_store")
    url = f"/v1/contacts/{contact_id}/entries/{review['id']}"
    assert await outbox_events(runtime, FEEDBACK) == []
    assert (await client.patch(url, json={"score": 5, "scale": "five_star"})).status_code == 200
    assert (await client.patch(url, json={"score": None, "scale": None})).status_code == 200
    assert (await client.patch(url, json={"body": None})).status_code == 422  # a review needs its text
    recorded, removed = await outbox_events(runtime, FEEDBACK)
    assert (recorded["type"], recorded["channel"], recorded["score"]) == (
        "crm.contact.feedback_recorded",
        "app_store",
        5,
    )
    assert (removed["type"], removed["key"], removed["entry_id"]) == (
        "crm.contact.feedback_removed",
        contact_id,
        review["id"],
    )


async def test_a_stale_if_match_is_a_412_with_the_current_etag_and_writes_nothing(api: Api) -> None:
    client, runtime = api
    contact_id = await create_contact(client)
    rating = await _record(client, contact_id, kind="rating", score=3, scale="five_star")
    url = f"/v1/contacts/{contact_id}/entries/{rating['id']}"
    assert (await client.patch(url, json={"score": 4}, headers={"If-Match": '"1"'})).status_code == 200

    stale = await client.patch(url, json={"score": 1}, headers={"If-Match": '"1"'})
    assert problem(stale, 412)["title"] == "Precondition failed"
    assert stale.headers["etag"] == '"2"'
    gone = await client.delete(url, headers={"If-Match": '"1"'})
    assert (problem(gone, 412)["status"], gone.headers["etag"]) == (412, '"2"')
    current = await client.get(url)
    assert (current.json()["score"], current.headers["etag"]) == (4, '"2"')
    assert len(await outbox_events(runtime, FEEDBACK)) == 2  # the creation and the first patch

    assert (await client.delete(url, headers={"If-Match": '"2"'})).status_code == 204


async def test_a_deleted_entry_is_gone_and_a_scored_one_withdrawn(api: Api) -> None:
    client, runtime = api
    contact_id = await create_contact(client)
    note = await _record(client, contact_id, kind="note", body="x")
    rating = await _record(client, contact_id, kind="rating", score=1, scale="thumbs")
    base = f"/v1/contacts/{contact_id}/entries"

    deleted = await client.delete(f"{base}/{note['id']}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert (await client.delete(f"{base}/{rating['id']}")).status_code == 204
    problem(await client.get(f"{base}/{rating['id']}"), 404)
    assert (await client.get(base)).json()["items"] == []
    assert await _stored_entries(runtime) == 0
    recorded, removed = await outbox_events(runtime, FEEDBACK)
    assert (recorded["type"], removed["type"]) == (
        "crm.contact.feedback_recorded",
        "crm.contact.feedback_removed",
    )
    assert removed["entry_id"] == rating["id"]


async def test_the_summary_counts_kinds_and_reads_each_scale(api: Api) -> None:
    client, _ = api
    contact_id = await create_contact(client)
    url = f"/v1/contacts/{contact_id}/entries/summary"
    empty = (await client.get(url)).json()
    assert empty == {
        "total": 0,
        "by_kind": {"note": 0, "review": 0, "rating": 0, "feedback": 0, "suggestion": 0},
        "scores": {},
        "last_entry_at": None,
    }

    def answer(score: int, day: int) -> dict[str, Any]:
        return {
            "kind": "feedback",
            "score": score,
            "scale": "nps",
            "occurred_at": f"2025-11-{day:02d}T08:00:00Z",
        }

    # Recorded out of order: the latest is the one given last, day 20.
    latest = await _record(client, contact_id, **answer(10, 20))
    for score, day in ((3, 10), (8, 12), (9, 14)):
        await _record(client, contact_id, **answer(score, day))
    for score in (5, 4, 2):
        await _record(client, contact_id, kind="rating", score=score, scale="csat")
    await _record(client, contact_id, kind="review", body="Fine", score=3, scale="five_star")
    await _record(client, contact_id, kind="note", body="Called", occurred_at="2025-11-21T16:02:00Z")
    await _record(client, contact_id, kind="suggestion", body="Dark mode", occurred_at="2025-11-02T16:02:00Z")
    await _record(client, await create_contact(client), **answer(0, 21))  # someone else's

    summary = (await client.get(url)).json()
    assert summary["total"] == 10
    assert summary["by_kind"] == {"note": 1, "review": 1, "rating": 3, "feedback": 4, "suggestion": 1}
    assert list(summary["scores"]) == ["csat", "five_star", "nps"]
    assert summary["scores"]["nps"] == {
        "low": 0,
        "high": 10,
        "count": 4,
        "average": 7.5,
        "lowest": 3,
        "highest": 10,
        "positive": 2,  # promoters: 9 and 10
        "neutral": 1,  # 8
        "negative": 1,  # 3
        "latest": {"entry_id": latest["id"], "score": 10, "occurred_at": "2025-11-20T08:00:00Z"},
    }
    csat = summary["scores"]["csat"]
    assert (csat["count"], csat["average"], csat["positive"], csat["neutral"], csat["negative"]) == (
        3,
        3.67,
        2,
        0,
        1,
    )
    assert csat["latest"]["score"] == 2  # given last (all now, recorded last)
    assert (summary["scores"]["five_star"]["count"], summary["scores"]["five_star"]["neutral"]) == (1, 1)
    listed = (await client.get(f"/v1/contacts/{contact_id}/entries")).json()["items"]
    assert _at(summary["last_entry_at"]) == max(_at(entry["occurred_at"]) for entry in listed)


async def test_an_entry_and_its_event_commit_together_or_not_at_all(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, runtime = api
    contact_id = await create_contact(client)

    async def outbox_down(*_args: object, **_kwargs: object) -> str:
        raise RuntimeError("outbox down")

    monkeypatch.setattr(outbox, "add", outbox_down)
    transport = httpx.ASGITransport(app=client._transport.app, raise_app_exceptions=False)  # type: ignore[attr-defined]
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=ADMIN_HEADERS
    ) as raw:
        response = await raw.post(f"/v1/contacts/{contact_id}/entries", json=NPS_ANSWER)
    assert response.status_code == 500
    assert await _stored_entries(runtime) == 0, "an entry is never stored without its event"


async def test_a_create_repeated_with_its_idempotency_key_records_one_entry(api: Api) -> None:
    client, runtime = api
    contact_id = await create_contact(client)
    url = f"/v1/contacts/{contact_id}/entries"
    headers = {"Idempotency-Key": f"nps-{contact_id}"}
    first = await client.post(url, json=NPS_ANSWER, headers=headers)
    again = await client.post(url, json=NPS_ANSWER, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert await _stored_entries(runtime) == 1
    assert len(await outbox_events(runtime, FEEDBACK)) == 1


async def test_an_erased_contact_has_no_entries_left_and_every_route_answers_410(api: Api) -> None:
    client, runtime = api
    contact_id = await create_contact(client)
    kept = await create_contact(client)
    entry = await _record(client, contact_id, **NPS_ANSWER)
    await _record(client, contact_id, kind="note", body="Ingrid Bergström, call back Tuesday")
    await _record(client, kept, kind="note", body="Someone else")
    assert (await client.post(f"/v1/contacts/{contact_id}/erasure")).status_code == 202

    async with runtime.database.sessionmaker() as session:
        left = list(await session.scalars(select(ContactEntry.contact_id)))
    assert [str(owner) for owner in left] == [kept], "the erased person's entries are deleted, others stay"
    base = f"/v1/contacts/{contact_id}/entries"
    for response in (
        await client.post(base, json={"kind": "note", "body": "x"}),
        await client.get(base),
        await client.get(f"{base}/summary"),
        await client.get(f"{base}/{entry['id']}"),
        await client.patch(f"{base}/{entry['id']}", json={"body": "y"}),
        await client.delete(f"{base}/{entry['id']}"),
    ):
        assert problem(response, 410)["title"] == "Contact gone"


async def test_the_openapi_document_shows_the_routes_with_examples(api: Api) -> None:
    client, _ = api
    schema = (await client.get("/openapi.json")).json()
    base = "/v1/contacts/{contact_id}/entries"
    assert set(schema["paths"][base]) == {"get", "post"}
    assert set(schema["paths"][f"{base}/{{entry_id}}"]) == {"get", "patch", "delete"}
    assert "get" in schema["paths"][f"{base}/summary"]
    for method, path in (
        ("post", base),
        ("patch", f"{base}/{{entry_id}}"),
        ("delete", f"{base}/{{entry_id}}"),
    ):
        answers = schema["paths"][path][method]["responses"]
        assert {"404", "410", "422"} <= set(answers), (method, path)
    components = schema["components"]["schemas"]
    assert components["EntryCreate"]["examples"][0]["scale"] == "nps"
    assert components["EntryPatch"]["examples"]
    assert components["EntrySummary"]["examples"][0]["scores"]["nps"]["count"] == 2


@pytest.mark.postgres
async def test_an_entry_racing_an_erasure_waits_for_it_and_is_refused(
    postgres_database: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    """The erasure holds the contact; an entry posted meanwhile waits, then sees the erasure (410)."""
    async with contacts_api(postgres_database, local_bus, tmp_path) as (client, runtime):
        contact_id = await create_contact(client)
        async with session_scope(runtime.database) as session:
            await erasure.erase_contact(session, uuid.UUID(contact_id), Author("test"))
            posting = asyncio.create_task(
                client.post(f"/v1/contacts/{contact_id}/entries", json={"kind": "note", "body": "Ingrid"})
            )
            await _until_a_request_waits_for_a_lock(runtime)
        response = await posting
        assert problem(response, 410)["title"] == "Contact gone"
        assert await _stored_entries(runtime) == 0


async def _until_a_request_waits_for_a_lock(runtime: ServiceRuntime, timeout_s: float = 10) -> None:
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + timeout_s
    async with runtime.database.engine.connect() as connection:
        while True:
            found = await connection.scalar(waiting)
            # pg_stat_activity is a snapshot per transaction: end it to see the next one.
            await connection.rollback()
            if found:
                return
            assert time.monotonic() < deadline, "the request never reached the contact's lock"
            await asyncio.sleep(0.02)
