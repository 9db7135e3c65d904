"""Identity stitching: touchpoints recorded while their person was unknown join the contact's history
when an identifier they carry becomes the contact's, through the API and the stream only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.journeys.identities.models import ContactIdentityLink
from shared.bus.embedded import EmbeddedBus
from shared.db import session_scope
from shared.events import topics
from shared.events.catalog import ContactCreated, ContactUpdated
from tests.services.journeys.support import (
    Api,
    contacts_say,
    hasher,
    journeys_api,
    outbox_events,
    publish_staged,
)

AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _touchpoint(minute: int, **fields: Any) -> dict[str, Any]:
    at = AT + timedelta(minutes=minute)
    return {"occurred_at": at.isoformat(), "channel": "web", "type": "page_view", **fields}


async def _record(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    response = await api[0].post("/v1/touchpoints", json=body)
    assert response.status_code == 201, response.text
    recorded: dict[str, Any] = response.json()
    return recorded


async def _owner(api: Api, touchpoint: dict[str, Any]) -> str | None:
    response = await api[0].get(f"/v1/touchpoints/{touchpoint['id']}")
    assert response.status_code == 200, response.text
    owner: str | None = response.json()["contact_id"]
    return owner


async def _timeline(api: Api, contact_id: object) -> list[dict[str, Any]]:
    response = await api[0].get(f"/v1/contacts/{contact_id}/timeline", params={"limit": 200})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_an_anonymous_visitor_joins_the_contact_once_contacts_names_the_email(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    ada = uuid.uuid4()
    async with journeys_api(database_url, local_bus, tmp_path) as api:
        runtime = api[1]
        # Two articles read anonymously, then a sign-up that names the browser, the user id and the email.
        articles = [await _record(api, _touchpoint(minute, anonymous_id="visitor-1")) for minute in (0, 5)]
        signup = await _record(
            api,
            _touchpoint(
                10,
                type="identify",
                anonymous_id="visitor-1",
                external_id={"system": "app", "id": "user-7"},
                email="Ada@Example.com",
            ),
        )
        # Later, as the user: named only by the app's user id.
        later = await _record(api, _touchpoint(20, external_id={"system": "app", "id": "user-7"}))
        await publish_staged(runtime, local_bus)
        before = [await _owner(api, t) for t in (*articles, signup, later)]

        await contacts_say(
            runtime,
            local_bus,
            ContactCreated(
                contact_id=ada,
                lifecycle_stage="lead",
                email_hashes=[hasher(runtime).email("ada@example.com")],
                created_at=AT + timedelta(hours=1),
            ),
        )
        after = [await _owner(api, t) for t in (*articles, signup, later)]
        timeline = await _timeline(api, ada)
        resolved = await outbox_events(runtime, "crm.touchpoint.resolved")
        # From now on the browser is known: its next page view is Ada's as it is recorded.
        next_visit = await _record(api, _touchpoint(30, anonymous_id="visitor-1"))

    assert before == [None] * 4
    assert after == [str(ada)] * 4
    assert [(entry["event_type"], entry["properties"].get("type")) for entry in timeline] == [
        ("crm.touchpoint.recorded", "page_view"),
        ("crm.touchpoint.recorded", "page_view"),
        ("crm.touchpoint.recorded", "identify"),
        ("crm.touchpoint.recorded", "page_view"),
        ("crm.contact.created", None),
    ]
    assert sorted(event["touchpoint_id"] for event in resolved) == sorted(
        t["id"] for t in (*articles, signup, later)
    )
    assert {event["contact_id"] for event in resolved} == {str(ada)}
    assert {event["key"] for event in resolved} == {str(ada)}
    assert next_visit["contact_id"] == str(ada)


async def test_a_known_contacts_touchpoint_brings_the_browsers_earlier_visits_along(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    ada, grace = uuid.uuid4(), uuid.uuid4()
    async with journeys_api(database_url, local_bus, tmp_path) as api:
        runtime = api[1]
        earlier = await _record(api, _touchpoint(0, anonymous_id="laptop"))
        await publish_staged(runtime, local_bus)
        # A sales app logs a call with Ada's id and the cookie of the browser she used.
        call = await _record(
            api, _touchpoint(5, contact_id=str(ada), anonymous_id="laptop", channel="phone_call")
        )
        await publish_staged(runtime, local_bus)
        # Later Grace signs in on the same laptop: from now on it is hers, but what was Ada's stays Ada's.
        graces = await _record(api, _touchpoint(10, contact_id=str(grace), anonymous_id="laptop"))
        await publish_staged(runtime, local_bus)
        after_grace = await _record(api, _touchpoint(11, anonymous_id="laptop"))
        owners = [await _owner(api, t) for t in (earlier, call, graces, after_grace)]
        timeline = await _timeline(api, ada)

    assert owners == [str(ada), str(ada), str(grace), str(grace)]
    assert [entry["properties"]["channel"] for entry in timeline] == ["web", "phone_call"]


async def test_a_stitched_touchpoint_is_on_the_timeline_once_when_its_own_event_comes_after(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    """Stitching may reach a touchpoint before its `crm.touchpoint.recorded` does: one entry, not two."""
    ada = uuid.uuid4()
    async with journeys_api(database_url, local_bus, tmp_path) as api:
        runtime = api[1]
        unknown = await _record(api, _touchpoint(0, email="ada@example.com"))
        # Contacts learns the address first (an update adding it); the touchpoint's event is still staged.
        await contacts_say(
            runtime,
            local_bus,
            ContactCreated(contact_id=ada, lifecycle_stage="lead", email_hashes=[], created_at=AT),
            ContactUpdated(
                contact_id=ada,
                changed_fields=["emails"],
                changes={},
                email_hashes=[hasher(runtime).email("ada@example.com")],
                updated_at=AT,
            ),
        )
        stitched = await _timeline(api, ada)
        await publish_staged(runtime, local_bus)
        timeline = await _timeline(api, ada)
        dead_letters = await local_bus.end_offsets([topics.TOUCHPOINTS.dead_letter])

    [recorded] = [entry for entry in timeline if entry["event_type"] == "crm.touchpoint.recorded"]
    assert stitched == timeline
    assert sum(dead_letters.values()) == 0  # the event was applied, not refused as a duplicate
    assert recorded["occurred_at"].startswith("2026-11-20T09:00")
    assert unknown["contact_id"] is None


async def test_a_touchpoint_recorded_while_its_browser_was_being_linked_is_attached_by_its_event(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    """The recording looked for a link before stitching (or contacts) committed one, and stitching looked
    for unresolved touchpoints before the recording committed: the touchpoint's own event attaches it."""
    ada = uuid.uuid4()
    async with journeys_api(database_url, local_bus, tmp_path) as api:
        runtime = api[1]
        email_hash = hasher(runtime).email("ada@example.com")
        by_browser = await _record(api, _touchpoint(0, anonymous_id="laptop"))
        by_email = await _record(api, _touchpoint(1, email="ada@example.com"))
        # What the other transactions left behind: the links, and no attachment.
        async with session_scope(runtime.database) as session:
            session.add_all(
                [
                    ContactIdentityLink(kind="anonymous_id", value="laptop", contact_id=ada, linked_at=AT),
                    ContactIdentityLink(kind="email_hash", value=email_hash, contact_id=ada, linked_at=AT),
                ]
            )
        await publish_staged(runtime, local_bus)
        owners = [await _owner(api, touchpoint) for touchpoint in (by_browser, by_email)]
        timeline = await _timeline(api, ada)
        resolved = await outbox_events(runtime, "crm.touchpoint.resolved")

    assert (by_browser["contact_id"], by_email["contact_id"]) == (None, None)
    assert owners == [str(ada), str(ada)]
    assert [entry["occurred_at"][:16] for entry in timeline] == ["2026-11-20T09:00", "2026-11-20T09:01"]
    assert sorted(event["touchpoint_id"] for event in resolved) == sorted([by_browser["id"], by_email["id"]])
