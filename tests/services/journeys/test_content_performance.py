"""Content and campaign performance through the real ASGI app, on SQLite and PostgreSQL: exact figures
for a small designed set of touchpoints, the ranking and its pages, and bad parameters refused with a
problem naming the field.

The set, October 2025 the period (`SINCE`, `UNTIL`), `/blog/why` the content, `autumn` the campaign:

    ada  web+email on /blog/why (first touch 10-01 10:00:00.25, on autumn too); buys EUR 100.00 10-10,
         USD 50.00 10-20, USD 1.00 at exactly 30 days after the first touch, EUR 70.00 1 µs later
    bob  social ad on /blog/why and autumn 10-02; bought EUR 30.00 on 09-30, before; a `web` checkout
         with a revenue (EUR 25.00) 10-12
    cy   web on /blog/why 10-05 08:00; a purchase without revenue at exactly one day later
    fay  web on /blog/why 10-07, and again at `UNTIL` (outside the period); buys nothing
    dee  web on /blog/why 09-01 (before the period), buys EUR 10.00 09-05; web on /pricing 10-02 and
         buys EUR 8.00 10-03
    eve  buys EUR 999.99, touched nothing
    gus  buys EUR 40.00 in a purchase that itself names autumn
    hal  web on /webinar twice (campaign webinars) and /about once; buys nothing
    an anonymous visitor on /blog/why, who buys EUR 50.00 while still unknown
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from shared.bus.embedded import EmbeddedBus
from tests.services.journeys.support import Api, error_fields, journeys_api

SINCE = "2025-10-01T00:00:00Z"
UNTIL = "2025-11-01T00:00:00Z"
PERIOD = {"since": SINCE, "until": UNTIL}
BLOG = "/blog/why"
BLOG_URL = f"/v1/content/{quote(BLOG, safe='')}/performance"

ADA, BOB, CY, FAY, DEE, EVE, GUS, HAL = (uuid.uuid4() for _ in range(8))


def _touch(who: uuid.UUID | str, at: str, channel: str = "web", **fields: Any) -> dict[str, Any]:
    person = {"anonymous_id": who} if isinstance(who, str) else {"contact_id": str(who)}
    return {"occurred_at": at, "channel": channel, "type": f"{channel}_touch", **person, **fields}


def _buy(
    who: uuid.UUID | str, at: str, revenue: int | None, currency: str = "EUR", **fields: Any
) -> dict[str, Any]:
    money = {"revenue": revenue, "currency": currency} if revenue is not None else {}
    return _touch(who, at, "purchase", **money, **fields)


TOUCHPOINTS = [
    _touch(ADA, "2025-10-01T10:00:00.250000Z", content_id=BLOG, campaign="autumn"),
    _touch(ADA, "2025-10-03T09:00:00Z", "email", content_id=BLOG),
    _buy(ADA, "2025-10-10T12:00:00Z", 10000),
    _buy(ADA, "2025-10-20T12:00:00Z", 5000, "USD"),
    _buy(ADA, "2025-10-31T10:00:00.250000Z", 100, "USD"),
    _buy(ADA, "2025-10-31T10:00:00.250001Z", 7000),
    _touch(BOB, "2025-10-02T12:00:00Z", "social_ad", content_id=BLOG, campaign="autumn"),
    _buy(BOB, "2025-09-30T12:00:00Z", 3000),
    _touch(BOB, "2025-10-12T12:00:00Z", revenue=2500, currency="EUR", type="checkout_completed"),
    _touch(CY, "2025-10-05T08:00:00Z", content_id=BLOG),
    _buy(CY, "2025-10-06T08:00:00Z", None),
    _touch(FAY, "2025-10-07T08:00:00Z", content_id=BLOG),
    _touch(FAY, UNTIL, content_id=BLOG),
    _touch(DEE, "2025-09-01T08:00:00Z", content_id=BLOG),
    _buy(DEE, "2025-09-05T08:00:00Z", 1000),
    _touch(DEE, "2025-10-02T08:00:00Z", content_id="/pricing"),
    _buy(DEE, "2025-10-03T08:00:00Z", 800),
    _buy(EVE, "2025-10-10T12:00:00Z", 99999),
    _buy(GUS, "2025-10-08T12:00:00Z", 4000, campaign="autumn"),
    _touch(HAL, "2025-10-15T08:00:00Z", content_id="/webinar", campaign="webinars"),
    _touch(HAL, "2025-10-16T08:00:00Z", content_id="/webinar", campaign="webinars"),
    _touch(HAL, "2025-10-17T08:00:00Z", content_id="/about"),
    _touch("visitor-9", "2025-10-04T08:00:00Z", content_id=BLOG),
    _buy("visitor-9", "2025-10-06T09:00:00Z", 5000),
]


@pytest.fixture
async def api(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[Api]:
    async with journeys_api(database_url, local_bus, tmp_path, consumers=False) as pair:
        response = await pair[0].post("/v1/touchpoints/batch", json={"records": TOUCHPOINTS})
        assert response.status_code == 200, response.text
        assert [result["status"] for result in response.json()["results"]] == ["created"] * len(TOUCHPOINTS)
        yield pair


async def _get(client: httpx.AsyncClient, url: str, **params: Any) -> dict[str, Any]:
    response = await client.get(url, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _figures(body: dict[str, Any]) -> dict[str, Any]:
    return {"touchpoints": body["touchpoints"], "conversions": body["conversions"]}


async def test_a_content_id_answers_what_it_drew_and_the_purchases_that_followed(api: Api) -> None:
    client, _ = api
    body = await _get(client, BLOG_URL, **PERIOD)

    assert body["content_id"] == BLOG
    assert body["period"] == {"since": SINCE, "until": UNTIL, "window_days": 30}
    assert body["touchpoints"] == {
        # ada twice, bob, cy, fay (her touch at `until` is outside) and the visitor; dee's was before.
        "count": 6,
        "contacts": 4,
        "unresolved": 1,
        "by_channel": {"email": 1, "social_ad": 1, "web": 4},
    }
    assert body["conversions"] == {
        # ada's first three (the third at exactly 30 days), bob's checkout, cy's purchase; not bob's
        # purchase before his first touch, ada's 1 µs late, eve's, the unknown visitor's.
        "contacts": 3,
        "rate": 0.75,
        "orders": 5,
        "revenue": {"EUR": 12500, "USD": 5100},
    }


async def test_the_window_bounds_which_purchases_count(api: Api) -> None:
    client, _ = api
    wide = await _get(client, BLOG_URL, **PERIOD, window_days=60)
    assert wide["period"]["window_days"] == 60
    assert wide["conversions"] == {
        "contacts": 3,
        "rate": 0.75,
        "orders": 6,
        "revenue": {"EUR": 19500, "USD": 5100},
    }

    # One day: only cy's purchase, at exactly 24 hours after her touch.
    narrow = await _get(client, BLOG_URL, **PERIOD, window_days=1)
    assert narrow["conversions"] == {"contacts": 1, "rate": 0.25, "orders": 1, "revenue": {}}


async def test_without_a_period_every_touchpoint_counts(api: Api) -> None:
    client, _ = api
    body = await _get(client, f"/v1/content/{BLOG}/performance")  # the slashes as they are
    assert body["period"] == {"since": None, "until": None, "window_days": 30}
    assert body["touchpoints"] == {
        "count": 8,
        "contacts": 5,
        "unresolved": 1,
        "by_channel": {"email": 1, "social_ad": 1, "web": 6},
    }
    # dee now counts, with her purchase 4 days after her first touch (not the one a month later).
    assert body["conversions"] == {
        "contacts": 4,
        "rate": 0.8,
        "orders": 6,
        "revenue": {"EUR": 13500, "USD": 5100},
    }


async def test_a_campaign_counts_a_purchase_that_names_it(api: Api) -> None:
    client, _ = api
    body = await _get(client, "/v1/campaigns/autumn/performance", **PERIOD)
    assert body["campaign"] == "autumn"
    assert _figures(body) == {
        "touchpoints": {
            "count": 3,
            "contacts": 3,
            "unresolved": 0,
            "by_channel": {"purchase": 1, "social_ad": 1, "web": 1},
        },
        "conversions": {"contacts": 3, "rate": 1.0, "orders": 5, "revenue": {"EUR": 16500, "USD": 5100}},
    }


async def test_a_subject_nobody_touched_answers_zeros(api: Api) -> None:
    client, _ = api
    body = await _get(client, "/v1/content/never-published/performance", **PERIOD)
    assert _figures(body) == {
        "touchpoints": {"count": 0, "contacts": 0, "unresolved": 0, "by_channel": {}},
        "conversions": {"contacts": 0, "rate": None, "orders": 0, "revenue": {}},
    }
    # A period in which the content drew nothing, too.
    body = await _get(client, BLOG_URL, since="2024-01-01T00:00:00+02:00", until="2024-02-01T00:00:00+02:00")
    assert body["touchpoints"]["count"] == 0


async def test_the_ranking_orders_and_pages_content(api: Api) -> None:
    client, _ = api
    first = await client.get("/v1/performance/content", params={**PERIOD, "limit": 2})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["order_by"] == "touchpoints"
    # /pricing and /about drew one each: the one that converted first.
    assert [item["content_id"] for item in body["items"]] == [BLOG, "/webinar"]
    assert _figures(body["items"][0]) == _figures(await _get(client, BLOG_URL, **PERIOD))
    assert body["next_cursor"]
    assert first.headers["link"].endswith('; rel="next"')
    assert f"cursor={body['next_cursor']}" in first.headers["link"]
    rest = await _get(client, "/v1/performance/content", **PERIOD, limit=2, cursor=body["next_cursor"])
    assert [item["content_id"] for item in rest["items"]] == ["/pricing", "/about"]
    assert rest["items"][0]["conversions"] == {
        "contacts": 1,
        "rate": 1.0,
        "orders": 1,
        "revenue": {"EUR": 800},
    }
    assert rest["next_cursor"] is None

    by_conversions = await _get(client, "/v1/performance/content", **PERIOD, order_by="conversions")
    assert [item["content_id"] for item in by_conversions["items"]] == [
        BLOG,
        "/pricing",
        "/webinar",
        "/about",
    ]
    assert by_conversions["next_cursor"] is None

    # Without a period, the same figures as the content's own answer.
    everything = await _get(client, "/v1/performance/content")
    assert _figures(everything["items"][0]) == _figures(await _get(client, BLOG_URL))


async def test_the_ranking_of_campaigns(api: Api) -> None:
    client, _ = api
    body = await _get(client, "/v1/performance/campaigns", **PERIOD, order_by="conversions")
    assert [(item["campaign"], item["conversions"]["contacts"]) for item in body["items"]] == [
        ("autumn", 3),
        ("webinars", 0),
    ]
    assert _figures(body["items"][0]) == _figures(
        await _get(client, "/v1/campaigns/autumn/performance", **PERIOD)
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "2025-10-01T00:00:00"}, "since"),  # no zone
        ({"until": "yesterday"}, "until"),
        ({"since": UNTIL, "until": SINCE}, "until"),
        ({"since": SINCE, "until": SINCE}, "until"),
        ({"window_days": 0}, "window_days"),
        ({"window_days": 366}, "window_days"),
        ({"window_days": "week"}, "window_days"),
    ],
)
async def test_a_bad_period_is_refused_naming_the_field(api: Api, params: dict[str, Any], field: str) -> None:
    client, _ = api
    for url in (
        BLOG_URL,
        "/v1/campaigns/autumn/performance",
        "/v1/performance/content",
        "/v1/performance/campaigns",
    ):
        assert error_fields(await client.get(url, params=params)) == [field], url


async def test_bad_ranking_and_subject_parameters_are_refused_naming_the_field(api: Api) -> None:
    client, _ = api
    ranking = "/v1/performance/content"
    assert error_fields(await client.get(ranking, params={"order_by": "revenue"})) == ["order_by"]
    assert error_fields(await client.get(ranking, params={"limit": 0})) == ["limit"]
    assert error_fields(await client.get(ranking, params={"cursor": "not-a-cursor"})) == ["cursor"]
    cursor = (await _get(client, ranking, limit=1))["next_cursor"]
    # A cursor belongs to the order it was handed out for.
    assert error_fields(await client.get(ranking, params={"cursor": cursor, "order_by": "conversions"})) == [
        "cursor"
    ]
    assert error_fields(await client.get(f"/v1/content/{'x' * 201}/performance")) == ["content_id"]
    assert error_fields(await client.get("/v1/campaigns//performance")) == ["campaign"]
