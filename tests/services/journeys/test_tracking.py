"""The Segment-compatible tracking API through the real ASGI app: each call type, the write key, gzip
bodies, clock correction, repeats, bad input, and the calls stitched to the contact."""

from __future__ import annotations

import asyncio
import base64
import gzip
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from shared.bus.embedded import EmbeddedBus
from shared.bus.reading import read_to_end
from shared.db import utc_now
from shared.events import topics
from shared.events.catalog import ContactCreated
from tests.services.journeys.support import (
    Api,
    contacts_say,
    everything_stored,
    hasher,
    journeys_api,
    outbox_events,
    problem,
    touchpoint_count,
)
from tests.services.journeys.test_touchpoint_timeline import _until

AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


async def _write_key(api: Api, *scopes: str) -> str:
    response = await api[0].post(
        "/v1/keys", json={"name": "website", "scopes": list(scopes or ["journeys:write"])}
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["key"]
    return token


def _basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


async def _send(api: Api, key: str, call: str, body: dict[str, Any]) -> httpx.Response:
    return await api[0].post(f"/v1/{call}", json=body, headers=_basic(key))


async def _recorded(api: Api) -> list[dict[str, Any]]:
    """The touchpoints announced so far, oldest first, with their stored row."""
    announced = await outbox_events(api[1], "crm.touchpoint.recorded")
    rows = []
    for event in announced:
        response = await api[0].get(f"/v1/touchpoints/{event['touchpoint_id']}")
        assert response.status_code == 200, response.text
        rows.append(response.json())
    return rows


async def test_each_call_becomes_a_touchpoint(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with journeys_api(database_url, local_bus, tmp_path) as api:
        key = await _write_key(api)
        sent: dict[str, dict[str, Any]] = {
            "page": {
                "anonymousId": "visitor-1",
                "name": "Why one history",
                "category": "blog",
                "properties": {"path": "/blog/why", "url": "https://example.com/blog/why"},
                "context": {
                    "campaign": {"name": "autumn", "source": "google", "medium": "cpc"},
                    "ip": "203.0.113.9",
                    "userAgent": "Mozilla/5.0",
                },
                "timestamp": AT.isoformat(),
            },
            "screen": {"userId": 42, "name": "Pricing", "timestamp": AT.isoformat()},
            "track": {
                "userId": "user-7",
                "event": "Order Completed",
                "properties": {"revenue": 129.5, "currency": "eur", "order_id": "10482", "team": "sales"},
                "timestamp": AT.isoformat(),
            },
            "group": {
                "userId": "user-7",
                "groupId": "acme",
                "traits": {"name": "Acme Ltd"},
                "timestamp": AT.isoformat(),
            },
            "alias": {"previousId": "visitor-1", "userId": "user-7", "timestamp": AT.isoformat()},
        }
        answers = [await _send(api, key, call, body) for call, body in sent.items()]
        rows = await _recorded(api)
        stored = await everything_stored(api[1])

    assert [(answer.status_code, answer.json()) for answer in answers] == [(200, {"success": True})] * 5
    assert [(row["type"], row["channel"]) for row in rows] == [
        ("page_view", "web"),
        ("screen_view", "app"),
        ("Order Completed", "purchase"),
        ("group", "other"),
        ("alias", "other"),
    ]
    page, screen, order, group, alias = rows
    assert (page["anonymous_id"], page["content_id"], page["campaign"]) == (
        "visitor-1",
        "/blog/why",
        "autumn",
    )
    assert (page["utm_source"], page["utm_medium"], page["utm_campaign"]) == ("google", "cpc", "autumn")
    assert page["properties"] == {
        "path": "/blog/why",
        "url": "https://example.com/blog/why",
        "name": "Why one history",
        "category": "blog",
    }
    assert screen["external_id"] == {"system": "app", "id": "42"}
    assert (order["revenue"], order["currency"], order["order_id"], order["team"]) == (
        12950,
        "EUR",
        "10482",
        "sales",
    )
    assert group["properties"] == {"group_id": "acme"}
    assert (alias["anonymous_id"], alias["external_id"]) == ("visitor-1", {"system": "app", "id": "user-7"})
    assert {row["occurred_at"] for row in rows} == {"2026-11-20T09:00:00Z"}
    # Neither the group's traits nor what the context says of the device are kept.
    for personal in ("Acme Ltd", "203.0.113.9", "Mozilla/5.0"):
        assert personal not in stored, personal


async def test_an_identified_visitor_joins_the_contact_and_traits_stay_off_the_stream(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    ada = uuid.uuid4()
    async with journeys_api(database_url, local_bus, tmp_path, relay=True) as api:
        runtime = api[1]
        key = await _write_key(api)
        for minute, path in ((0, "/blog/one"), (3, "/blog/two")):
            at = (AT + timedelta(minutes=minute)).isoformat()
            await _send(
                api, key, "page", {"anonymousId": "v-9", "properties": {"path": path}, "timestamp": at}
            )
        identify = {
            "anonymousId": "v-9",
            "userId": "user-9",
            "traits": {"email": "Ada@Example.com", "name": "Ada Lovelace", "phone": "+44 20 7946 0000"},
            "timestamp": (AT + timedelta(minutes=5)).isoformat(),
        }
        assert (await _send(api, key, "identify", identify)).status_code == 200
        await contacts_say(
            runtime,
            local_bus,
            ContactCreated(
                contact_id=ada,
                lifecycle_stage="lead",
                email_hashes=[hasher(runtime).email("ada@example.com")],
                created_at=AT - timedelta(minutes=1),
            ),
        )
        await _send(
            api,
            key,
            "track",
            {
                "userId": "user-9",
                "event": "Trial Started",
                "timestamp": (AT + timedelta(minutes=9)).isoformat(),
            },
        )
        timeline = await _timeline_when(api, ada, 5)
        records = [
            record
            async for _, batch in read_to_end(
                local_bus, [topics.TOUCHPOINTS.name], group_prefix="test.tracking"
            )
            for record in batch
        ]
        published = b"".join(record.value + b"".join(record.headers.values()) for record in records)
        stored = await everything_stored(runtime)

    assert [
        (entry["properties"].get("type"), entry["properties"].get("content_id")) for entry in timeline
    ] == [
        (None, None),  # crm.contact.created
        ("page_view", "/blog/one"),
        ("page_view", "/blog/two"),
        ("identify", None),
        ("Trial Started", None),
    ]
    # The phone as sent and as digits: "7946" alone turned up in a timestamp by chance.
    for trait in (b"Ada Lovelace", b"20 7946 0000", b"2079460000", b"ada@example.com", b"Ada@Example.com"):
        assert trait not in published, trait
    for text in ("Ada Lovelace", "20 7946 0000", "2079460000", "ada@example.com"):
        assert text not in stored, text


async def _timeline_when(api: Api, contact_id: uuid.UUID, entries: int) -> list[dict[str, Any]]:
    async def fetch() -> list[dict[str, Any]]:
        response = await api[0].get(f"/v1/contacts/{contact_id}/timeline")
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    return await _until(fetch, lambda found: len(found) >= entries)


async def test_the_write_key_comes_as_basic_or_bearer_and_needs_its_scope(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    call = {"anonymousId": "v", "event": "Signed Up"}
    async with journeys_api(database_url, local_bus, tmp_path) as api:
        client = api[0]
        key = await _write_key(api)
        reader = await _write_key(api, "journeys:read")
        basic = await client.post("/v1/track", json=call, headers=_basic(key))
        bearer = await client.post("/v1/track", json=call, headers={"Authorization": f"Bearer {key}"})
        unknown = await client.post("/v1/track", json=call, headers=_basic("crm_nobody_secret"))
        garbled = await client.post("/v1/track", json=call, headers={"Authorization": "Basic %%%"})
        no_scope = await client.post("/v1/track", json=call, headers=_basic(reader))
        # Elsewhere the key comes as a bearer token only.
        elsewhere = await client.post("/v1/touchpoints", json={}, headers=_basic(key))

    assert (basic.status_code, bearer.status_code) == (200, 200)
    assert (unknown.status_code, garbled.status_code, no_scope.status_code) == (401, 401, 403)
    assert problem(no_scope, 403)["required_scope"] == "journeys:write"
    assert elsewhere.status_code == 401


async def test_a_gzip_body_is_unpacked_within_the_limits(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    call = b'{"batch": [{"type": "track", "anonymousId": "v", "event": "Signed Up", "messageId": "gz-1"}]}'
    async with journeys_api(database_url, local_bus, tmp_path) as api:
        key = await _write_key(api)

        async def post(body: bytes, encoding: str = "gzip") -> httpx.Response:
            headers = {**_basic(key), "Content-Type": "application/json", "Content-Encoding": encoding}
            return await api[0].post("/v1/batch", content=body, headers=headers)

        packed = await post(gzip.compress(call))
        not_gzip = await post(call)
        cut_short = await post(gzip.compress(call)[:-12])
        # Small packed, far over the limit unpacked (the default limit is 1 MiB).
        bomb = await post(gzip.compress(b'{"batch": [' + b" " * 8_000_000 + b"]}"))
        brotli = await post(call, "br")
        count = await touchpoint_count(api[1])

    assert packed.status_code == 200, packed.text
    assert problem(not_gzip, 400)["detail"] == "Content-Encoding: it says gzip but is not."
    assert problem(cut_short, 400)["title"] == "Body is not gzip"
    assert problem(bomb, 413)["title"] == "Request body too large"
    assert problem(brotli, 415)["title"] == "Unsupported content encoding"
    assert count == 1


async def test_the_senders_clock_is_corrected_and_a_call_from_the_future_refused(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with journeys_api(database_url, local_bus, tmp_path) as api:
        key = await _write_key(api)
        # The phone's clock runs three days fast; the call was made a minute before it was sent.
        fast = utc_now() + timedelta(days=3)
        skewed = {
            "anonymousId": "v",
            "event": "Opened",
            "timestamp": (fast - timedelta(minutes=1)).isoformat(),
            "sentAt": fast.isoformat(),
        }
        corrected = await _send(api, key, "track", skewed)
        ahead = {
            "anonymousId": "v",
            "event": "Opened",
            "timestamp": (utc_now() + timedelta(days=2)).isoformat(),
        }
        refused = await _send(api, key, "track", ahead)
        # Sent thousands of years after it happened: no date is that far back (this was a 500).
        ages_apart = {
            "anonymousId": "v",
            "event": "Opened",
            "timestamp": "7157-11-28T04:51:28+17:50",
            "sentAt": "9650-04-23T03:49:28Z",
        }
        absurd = await _send(api, key, "alias", {**ages_apart, "previousId": "p", "userId": "u"})
        [row] = await _recorded(api)

    assert corrected.status_code == 200
    occurred = datetime.fromisoformat(row["occurred_at"])
    received = datetime.fromisoformat(row["received_at"])
    assert timedelta(seconds=55) < received - occurred < timedelta(seconds=65)
    assert [error["field"] for error in problem(refused, 422)["errors"]] == ["timestamp"]
    assert "24 hours ahead" in problem(refused, 422)["errors"][0]["message"]
    assert [error["field"] for error in problem(absurd, 422)["errors"]] == ["timestamp"]


async def test_bad_calls_are_named_and_a_repeat_records_nothing(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with journeys_api(database_url, local_bus, tmp_path) as api:
        key = await _write_key(api)
        no_event = await _send(api, key, "track", {"userId": "u"})
        nobody = await _send(api, key, "page", {"properties": {"path": "/"}})
        bad_channel = await _send(
            api, key, "track", {"userId": "u", "event": "E", "properties": {"channel": "fax"}}
        )
        bad_money = await _send(
            api,
            key,
            "track",
            {"userId": "u", "event": "E", "properties": {"revenue": "lots", "currency": "EUR"}},
        )
        first = await _send(api, key, "track", {"userId": "u", "event": "E", "messageId": "m-1"})
        again = await _send(api, key, "track", {"userId": "u", "event": "E", "messageId": "m-1"})
        count = await touchpoint_count(api[1])

    assert [error["field"] for error in problem(no_event, 422)["errors"]] == ["event"]
    assert [error["field"] for error in problem(nobody, 422)["errors"]] == ["userId"]
    assert [error["field"] for error in problem(bad_channel, 422)["errors"]] == ["properties.channel"]
    assert [error["field"] for error in problem(bad_money, 422)["errors"]] == ["properties.revenue"]
    assert (first.status_code, again.status_code) == (200, 200)
    assert count == 1


async def test_a_batch_records_its_good_calls_and_names_the_bad_ones(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    calls: list[dict[str, Any]] = [
        {"type": "page", "anonymousId": "v", "messageId": "b-1", "properties": {"path": "/a"}},
        {"type": "track", "anonymousId": "v", "messageId": "b-2"},
        {"type": "shout", "anonymousId": "v"},
        {"type": "identify", "messageId": "b-4", "userId": "u", "anonymousId": "v"},
    ]
    batch = {"batch": calls, "context": {"page": {"path": "/from-batch"}}, "sentAt": utc_now().isoformat()}
    async with journeys_api(database_url, local_bus, tmp_path) as api:
        key = await _write_key(api)
        partly = await _send(api, key, "batch", batch)
        recorded = await touchpoint_count(api[1])
        calls[1]["event"] = "Signed Up"
        calls.pop(2)
        again = await _send(api, key, "batch", batch)
        rows = await _recorded(api)

    body = problem(partly, 422)
    assert [error["field"] for error in body["errors"]] == ["batch.1.event", "batch.2.type"]
    assert body["detail"].startswith("2 of 4 calls recorded")
    assert recorded == 2
    assert again.json() == {"success": True}
    assert [row["type"] for row in rows] == ["page_view", "identify", "Signed Up"]
    # The batch's context applies to each call: the identify came from that page.
    assert rows[1]["channel"] == "web"


async def test_a_repeated_call_from_another_worker_lands_once(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    """Libraries retry a batch that timed out: the same messageIds, concurrently, record once."""
    batch = {
        "batch": [
            {"type": "track", "anonymousId": "v", "event": "E", "messageId": f"r-{n}"} for n in range(50)
        ]
    }
    async with journeys_api(database_url, local_bus, tmp_path) as api:
        key = await _write_key(api)
        answers = await asyncio.gather(*(_send(api, key, "batch", batch) for _ in range(4)))
        count = await touchpoint_count(api[1])

    assert {answer.status_code for answer in answers} == {200}
    assert count == 50


async def test_tracking_problems_also_speak_as_segment_libraries_read_errors(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    """Segment's and RudderStack's libraries read `code` and `message` from an error answer (RudderStack's
    Python client crashes without them), so the tracking routes' problems carry both."""
    async with journeys_api(database_url, local_bus, tmp_path) as api:
        key = await _write_key(api)
        unknown_key = await _send(api, "crm_nobody_secret", "track", {"userId": "u", "event": "E"})
        no_event = await _send(api, key, "track", {"userId": "u"})
        elsewhere = await api[0].post("/v1/touchpoints", json={}, headers={"Authorization": "Bearer nope"})

    assert (problem(unknown_key, 401)["code"], problem(unknown_key, 401)["message"]) == (
        "unauthorized",
        "The API key is unknown, revoked or expired.",
    )
    refused = problem(no_event, 422)
    assert refused["code"] == refused["type"].removeprefix("urn:crm:problem:")
    assert refused["message"] == refused["detail"]
    assert "code" not in problem(elsewhere, 401)
