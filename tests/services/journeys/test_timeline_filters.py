"""The timeline's filters: team, channel, type and a time range, alone, together and across pages; bad
values are problems naming the parameter."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from shared.bus.embedded import EmbeddedBus
from shared.events.catalog import ContactCreated
from tests.services.journeys.support import contacts_say, error_fields, journeys_api, problem

AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
# (minutes after AT, channel, type, team): what the contact's touchpoints were.
TOUCHPOINTS = [
    (0, "web", "page_view", "marketing"),
    (1, "email", "email_opened", "marketing"),
    (2, "phone_call", "call_completed", "sales"),
    (3, "web", "page_view", "sales"),
    (4, "support_ticket", "ticket_opened", "service"),
    (5, "web", "pricing_viewed", None),
]


def _at(minutes: int) -> str:
    return (AT + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


async def _walk(client: httpx.AsyncClient, url: str, params: Any) -> list[str]:
    """Every page, following the `Link` header; each entry as `<type>@<minute>` (`-` before AT)."""
    found: list[str] = []
    response = await client.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        for item in response.json()["items"]:
            minute = (datetime.fromisoformat(item["occurred_at"]) - AT) // timedelta(minutes=1)
            found.append(f"{item['type']}@{minute if minute >= 0 else '-'}")
        link = response.headers.get("link")
        if link is None:
            return found
        response = await client.get(link.removeprefix("<").removesuffix('>; rel="next"'))


async def _seeded(client: httpx.AsyncClient, contact_id: uuid.UUID, timeout_s: float = 60) -> None:
    for minute, channel, kind, team in TOUCHPOINTS:
        body = {"contact_id": str(contact_id), "occurred_at": _at(minute), "channel": channel, "type": kind}
        response = await client.post("/v1/touchpoints", json=body | ({"team": team} if team else {}))
        assert response.status_code == 201, response.text
    # Waited for by what must show: the relay publishes, the consumer applies.
    deadline = time.monotonic() + timeout_s
    url = f"/v1/contacts/{contact_id}/timeline"
    while len((await client.get(url, params={"limit": 200})).json()["items"]) < len(TOUCHPOINTS) + 1:
        assert time.monotonic() < deadline, "the touchpoints did not reach the timeline"
        await asyncio.sleep(0.05)


async def test_each_filter_alone_together_and_across_pages(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    ada = uuid.uuid4()
    async with journeys_api(database_url, local_bus, tmp_path, relay=True) as (client, runtime):
        created = ContactCreated(contact_id=ada, lifecycle_stage="lead", created_at=AT - timedelta(hours=1))
        await contacts_say(runtime, local_bus, created, at=AT - timedelta(hours=1))
        await _seeded(client, ada)
        url = f"/v1/contacts/{ada}/timeline"

        async def walk(params: dict[str, Any], limit: int = 1) -> list[str]:
            return await _walk(client, url, {**params, "limit": limit})

        everything = await walk({}, limit=200)
        by_team = await walk({"team": "sales"})
        by_teams = await walk({"team": ["marketing", "sales"]})
        by_channel = await walk({"channel": "web"})
        by_channels = await walk({"channel": ["web", "email"]})
        by_type = await walk({"type": "page_view"})
        by_event_type = await walk({"type": "crm.contact.created"})
        touchpoints = await walk({"type": "crm.touchpoint.recorded"}, limit=2)
        by_types = await walk({"type": ["page_view", "crm.contact.created"]})
        in_range = await walk({"since": _at(1), "until": _at(3)})
        empty_range = await walk({"since": _at(1), "until": _at(1)})
        combined = await walk({"channel": "web", "team": ["sales", "service"], "since": _at(0)})
        # A cursor holds a position, not a query: with other filters it resumes after that position.
        first_web = (await client.get(url, params={"channel": "web", "limit": 1})).json()
        sales_after_it = await client.get(url, params={"team": "sales", "cursor": first_web["next_cursor"]})

    assert everything == [
        "crm.contact.created@-",
        "page_view@0",
        "email_opened@1",
        "call_completed@2",
        "page_view@3",
        "ticket_opened@4",
        "pricing_viewed@5",
    ]
    assert by_team == ["call_completed@2", "page_view@3"]
    assert by_teams == ["page_view@0", "email_opened@1", "call_completed@2", "page_view@3"]
    assert by_channel == ["page_view@0", "page_view@3", "pricing_viewed@5"]
    assert by_channels == ["page_view@0", "email_opened@1", "page_view@3", "pricing_viewed@5"]
    assert by_type == ["page_view@0", "page_view@3"]
    assert by_event_type == ["crm.contact.created@-"]
    assert touchpoints == everything[1:]
    assert by_types == ["crm.contact.created@-", "page_view@0", "page_view@3"]
    assert in_range == ["email_opened@1", "call_completed@2"]  # since inclusive, until exclusive
    assert empty_range == []
    assert combined == ["page_view@3"]
    assert first_web["items"][0]["channel"] == "web"
    assert first_web["items"][0]["team"] == "marketing"
    assert [item["type"] for item in sales_after_it.json()["items"]] == ["call_completed", "page_view"]


async def test_bad_filter_values_are_problems_naming_the_parameter(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with journeys_api(database_url, local_bus, tmp_path, consumers=False) as (client, _):
        url = f"/v1/contacts/{uuid.uuid4()}/timeline"
        bad = {
            "team": httpx.QueryParams([("team", "sales"), ("team", "finance")]),
            "channel": httpx.QueryParams(channel="fax"),
            "type": httpx.QueryParams(type=""),
            "since": httpx.QueryParams(since="2026-11-20T09:00:00"),  # no zone
            "until": httpx.QueryParams(until="yesterday"),
        }
        answers = {name: await client.get(url, params=params) for name, params in bad.items()}
        backwards = await client.get(url, params={"since": _at(5), "until": _at(4)})

    # A repeatable parameter's field says which of its values: `team.1` is the second team given.
    expected = {
        "team": "team.1",
        "channel": "channel.0",
        "type": "type.0",
        "since": "since",
        "until": "until",
    }
    for name, response in answers.items():
        assert error_fields(response) == [expected[name]], response.text
        assert problem(response, 422)["errors"][0]["location"] == "query"
    refused = problem(backwards, 422)
    assert [(e["field"], e["location"]) for e in refused["errors"]] == [("until", "query")]
