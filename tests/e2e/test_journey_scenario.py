"""The journeys acceptance scenario, seen only through the public HTTP API of real processes: `crm dev`
(embedded), and `crm serve contacts` + `crm serve journeys` on PostgreSQL and Kafka.

An anonymous visitor reads two articles (Segment's own Python library), registers (an identify call and
the contact created by the app, in either order), attends a webinar (logged by marketing), gets a call
(logged by sales) and buys twice (RudderStack's library, gzip bodies, then the touchpoints API).
Marketing and sales then read one and the same timeline, the journey's funnel counts the buyer in every
stage, and the timeline says it is complete up to after the last event was sent.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest
from rudderstack.analytics import Client as RudderStack
from segment.analytics import Client as Segment

from services.bench.kafka_positions import commit_at_start
from services.registry import SERVICES
from shared.testing.access import KeyProbe
from shared.testing.apps import ADMIN_HEADERS
from shared.testing.distributed import distributed_env
from shared.testing.processes import wait_until
from tests.conftest import Launcher

T = TypeVar("T")

# Long enough for a first record on a fresh Kafka topic (the consumers' first assignment); the
# scenario itself takes seconds.
DEADLINE_S = 60

# The journey: retention is a purchase the shop marks `stage: retention` (a repeat order), since entry
# rules match one event at a time and cannot count purchases.
STAGES: list[dict[str, Any]] = [
    {"key": "awareness", "name": "Awareness", "entry": [{"on": "touchpoint", "type": "page_view"}]},
    {
        "key": "consideration",
        "name": "Consideration",
        "entry": [
            {"on": "touchpoint", "type": "webinar_attended"},
            {"on": "touchpoint", "channel": "webinar"},
        ],
    },
    {"key": "decision", "name": "Decision", "entry": [{"on": "touchpoint", "channel": "phone_call"}]},
    {"key": "purchase", "name": "Purchase", "entry": [{"on": "touchpoint", "channel": "purchase"}]},
    {
        "key": "retention",
        "name": "Retention",
        "entry": [{"on": "touchpoint", "channel": "purchase", "stage": "retention"}],
    },
]


@dataclass(frozen=True)
class Crm:
    """Where each service's API is: `crm dev` serves them under one root, `crm serve` one per port."""

    contacts: str
    journeys: str


@dataclass(frozen=True)
class Keys:
    marketing: str
    sales: str
    website: str
    shop: str


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _json(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _make_keys(crm: Crm) -> Keys:
    """The keys the teams and the apps use, made with the admin key and known to both services."""
    scopes = {
        "marketing": ["journeys:write", "journeys:read", "contacts:read"],
        "sales": ["journeys:write", "journeys:read", "contacts:read"],
        # The website's write key, in the browser: it can only send tracking calls.
        "website": ["journeys:write"],
        # The shop's back end: it creates the contact on sign-up and reports orders.
        "shop": ["contacts:write", "journeys:write"],
    }
    tokens = {
        name: _json(
            httpx.post(
                f"{crm.journeys}/v1/keys",
                json={"name": name, "scopes": granted},
                headers=ADMIN_HEADERS,
                timeout=10,
            ),
            201,
        )["key"]
        for name, granted in scopes.items()
    }

    async def known_everywhere() -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            probe = KeyProbe(client, {"contacts": crm.contacts, "journeys": crm.journeys})
            for token in tokens.values():
                await probe.until(token, accepted=True, timeout_s=DEADLINE_S)

    asyncio.run(known_everywhere())
    return Keys(**tokens)


def _timeline(crm: Crm, contact_id: str, key: str) -> dict[str, Any]:
    return _json(
        httpx.get(
            f"{crm.journeys}/v1/contacts/{contact_id}/timeline",
            params={"limit": 100},
            headers=_bearer(key),
            timeout=10,
        ),
        200,
    )


def _kinds(timeline: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(entry["type"], entry["channel"]) for entry in timeline["items"]]


def _until(observe: Callable[[], T], done: Callable[[T], bool], what: str) -> T:
    """Poll `observe` until `done` holds for what it saw, and return that; on the deadline, fail
    saying what was seen last."""
    seen: list[T] = []

    def met() -> bool:
        seen[:] = [observe()]
        return done(seen[0])

    try:
        wait_until(met, timeout_s=DEADLINE_S)
    except TimeoutError:
        raise AssertionError(f"{what}; last seen: {seen}") from None
    return seen[0]


def run_scenario(crm: Crm, *, contact_first: bool) -> None:
    run = uuid.uuid4().hex[:8]
    email, user_id, anonymous_id = f"ada.{run}@example.com", f"user-{run}", f"anon-{run}"
    keys = _make_keys(crm)
    marketing, sales = _bearer(keys.marketing), _bearer(keys.sales)

    # The journey is defined before the traffic it should see (maps do not backfill).
    journey = f"buyer_{run}"
    _json(
        httpx.post(
            f"{crm.journeys}/v1/journeys",
            json={"key": journey, "name": "Buyer", "stages": STAGES},
            headers=marketing,
            timeout=10,
        ),
        201,
    )

    # 1. An anonymous visitor reads two articles; the website's Segment library sends the page calls.
    website = Segment(write_key=keys.website, host=crm.journeys, sync_mode=True, max_retries=0)
    for path, title in (("/blog/one-history", "One history"), ("/blog/why-stitching", "Why stitching")):
        website.page(
            anonymous_id=anonymous_id,
            name=title,
            properties={"path": path, "url": f"https://shop.example.com{path}"},
            context={"campaign": {"name": "autumn", "source": "newsletter", "medium": "email"}},
        )

    # 2. The visitor registers: the website identifies them, the shop creates the contact.
    def identify() -> None:
        website.identify(user_id=user_id, anonymous_id=anonymous_id, traits={"email": email, "name": "Ada"})

    def create_contact() -> str:
        created = httpx.post(
            f"{crm.contacts}/v1/contacts",
            json={"email": email, "first_name": "Ada", "source": "website"},
            headers=_bearer(keys.shop),
            timeout=10,
        )
        return str(_json(created, 201)["id"])

    if contact_first:
        contact_id = create_contact()
        identify()
    else:
        identify()
        contact_id = create_contact()

    # Time passes before the webinar: by then the visit is on the contact's timeline (stitched).
    _until(
        lambda: [kind for kind, _ in _kinds(_timeline(crm, contact_id, keys.marketing))],
        lambda kinds: (
            [kind for kind in kinds if kind != "crm.contact.created"]
            == ["page_view", "page_view", "identify"]
        ),
        "the visit and the identify call were never stitched to the contact",
    )

    # 3. Marketing logs the webinar by the attendee's email.
    _json(
        httpx.post(
            f"{crm.journeys}/v1/touchpoints",
            json={
                "message_id": f"webinar-{run}",
                "email": email,
                "occurred_at": _now(),
                "channel": "webinar",
                "type": "webinar_attended",
                "team": "marketing",
                "campaign": "autumn-webinar",
            },
            headers=marketing,
            timeout=10,
        ),
        201,
    )

    # 4. Sales finds the contact in contacts and logs the call by its id.
    search = {"filter": {"field": "email", "op": "eq", "value": email}}
    [found] = _json(
        httpx.post(f"{crm.contacts}/v1/contacts/search", json=search, headers=sales, timeout=10), 200
    )["items"]
    assert found["id"] == contact_id
    _json(
        httpx.post(
            f"{crm.journeys}/v1/touchpoints",
            json={
                "contact_id": contact_id,
                "occurred_at": _now(),
                "channel": "phone_call",
                "type": "call_logged",
                "team": "sales",
            },
            headers=sales,
            timeout=10,
        ),
        201,
    )

    # 5. Two orders: the shop's RudderStack library (gzip bodies) by user id, then a repeat order
    # through the touchpoints API by the same user id.
    shop = RudderStack(write_key=keys.shop, host=crm.journeys, sync_mode=True, gzip=True, max_retries=0)
    shop.track(
        user_id=user_id,
        event="Order Completed",
        properties={"order_id": f"{run}-1", "revenue": 129.0, "currency": "EUR"},
    )
    _json(
        httpx.post(
            f"{crm.journeys}/v1/touchpoints",
            json={
                "message_id": f"order-{run}-2",
                "external_id": {"system": "app", "id": user_id},
                "occurred_at": _now(),
                "channel": "purchase",
                "type": "order_completed",
                "stage": "retention",
                "order_id": f"{run}-2",
                "revenue": 4900,
                "currency": "EUR",
            },
            headers=_bearer(keys.shop),
            timeout=10,
        ),
        201,
    )
    last_sent = datetime.now(UTC)

    # Marketing and sales read one history: every touchpoint in the order it happened, the contact's
    # creation where it happened, and a watermark that covers the last event sent.
    registration = [("identify", "other"), ("crm.contact.created", None)]
    expected = [
        ("page_view", "web"),
        ("page_view", "web"),
        *(reversed(registration) if contact_first else registration),
        ("webinar_attended", "webinar"),
        ("call_logged", "phone_call"),
        ("Order Completed", "purchase"),
        ("order_completed", "purchase"),
    ]

    def complete(timeline: dict[str, Any]) -> bool:
        covered = timeline["complete_before"] is not None and (
            datetime.fromisoformat(timeline["complete_before"]) > last_sent
        )
        return covered and _kinds(timeline) == expected

    seen_by_marketing = _until(
        lambda: _timeline(crm, contact_id, keys.marketing),
        complete,
        "the timeline never showed the whole journey as complete",
    )
    seen_by_sales = _timeline(crm, contact_id, keys.sales)
    assert seen_by_sales["items"] == seen_by_marketing["items"]
    assert datetime.fromisoformat(seen_by_sales["complete_before"]) > last_sent
    assert set(seen_by_sales["complete_before_by_topic"]) == {
        "crm.contacts",
        "crm.touchpoints",
        "crm.deals",
        "crm.referrals",
    }
    items = seen_by_marketing["items"]
    times = [entry["occurred_at"] for entry in items]
    assert times == sorted(times, key=datetime.fromisoformat)
    touchpoints = [entry for entry in items if entry["event_type"] == "crm.touchpoint.recorded"]
    assert [entry["team"] for entry in touchpoints] == [None, None, None, "marketing", "sales", None, None]
    assert [entry["properties"]["content_id"] for entry in touchpoints[:2]] == [
        "/blog/one-history",
        "/blog/why-stitching",
    ]
    assert [
        (entry["properties"]["revenue"], entry["properties"]["currency"]) for entry in touchpoints[-2:]
    ] == [(12900, "EUR"), (4900, "EUR")]
    assert email not in str(items), "traits are never stored"
    assert "Ada" not in str(items), "traits are never stored"

    # The funnel counts the buyer once in every stage, each entered in turn.
    stages = _until(
        lambda: _json(
            httpx.get(f"{crm.journeys}/v1/journeys/{journey}/funnel", headers=sales, timeout=10), 200
        )["stages"],
        lambda stages: bool(stages[-1]["reached"]),
        "the buyer never reached the journey's last stage",
    )
    assert [(s["key"], s["entered"], s["reached"], s["dropped_off"]) for s in stages] == [
        ("awareness", 1, 1, 0),
        ("consideration", 1, 1, 0),
        ("decision", 1, 1, 0),
        ("purchase", 1, 1, 0),
        ("retention", 1, 1, None),
    ]
    assert [s["conversion_rate"] for s in stages] == [1.0, 1.0, 1.0, 1.0, None]
    # Every journey on the server sees the contact's events; this run's is the one to read.
    [current] = [
        entry
        for entry in _json(
            httpx.get(f"{crm.journeys}/v1/contacts/{contact_id}/journeys", headers=marketing, timeout=10), 200
        )["journeys"]
        if entry["journey_key"] == journey
    ]
    assert (current["journey_key"], current["stage_key"], current["position"]) == (journey, "retention", 5)
    assert datetime.fromisoformat(current["entered_at"]) == datetime.fromisoformat(items[-1]["occurred_at"])

    # Contacts counts the same two purchases from the same stream.
    contact = _until(
        lambda: _json(httpx.get(f"{crm.contacts}/v1/contacts/{contact_id}", headers=sales, timeout=10), 200),
        lambda contact: bool(contact["purchases"] == 2),
        "contacts never counted both purchases",
    )
    assert contact["revenue_minor"] == 12900 + 4900


ORDERS = pytest.mark.parametrize("contact_first", [False, True], ids=["identify-first", "contact-first"])


@pytest.mark.e2e
@ORDERS
def test_the_journey_scenario_embedded(embedded: str, contact_first: bool) -> None:
    run_scenario(
        Crm(contacts=f"{embedded}/contacts", journeys=f"{embedded}/journeys"), contact_first=contact_first
    )


@pytest.fixture(scope="module")
def distributed(
    postgres_url: str,
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
    launch_for_module: Launcher,
) -> Crm:
    # A new deployment: its journeys groups read the topics from the start. The broker may keep the
    # positions those groups committed for an earlier deployment (the test broker lives for the whole
    # session), and a consumer with an empty database starts at them, never applying the records before
    # and leaving the timeline's watermark unknown for good on a partition that gets nothing new.
    for spec in SERVICES["journeys"].consumers:
        asyncio.run(commit_at_start(kafka_bootstrap, spec.name, spec.topic_names))
    env = distributed_env(postgres_url, kafka_bootstrap, tmp_path_factory.mktemp("data"))
    urls = launch_for_module(env, "contacts", "journeys")
    return Crm(contacts=urls["contacts"], journeys=urls["journeys"])


@pytest.mark.e2e
@pytest.mark.kafka
@pytest.mark.postgres
@ORDERS
def test_the_journey_scenario_distributed(distributed: Crm, contact_first: bool) -> None:
    run_scenario(distributed, contact_first=contact_first)
