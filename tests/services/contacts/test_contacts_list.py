"""GET /v1/contacts: newest first, cursor-paginated, stable while contacts are added."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select

from services.contacts.app import DEFINITION
from services.contacts.contacts.models import Contact
from shared.bus.embedded import EmbeddedBus
from shared.runtime import ServiceRuntime
from shared.settings import PlatformSettings
from shared.testing.apps import ADMIN_HEADERS, TEST_BOOTSTRAP_KEY, service_client
from shared.web.app import create_service_app

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')

Api = tuple[httpx.AsyncClient, ServiceRuntime]


@pytest.fixture
async def api(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[Api]:
    async with service_client(
        DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path, relay=False
    ) as pair:
        yield pair


async def _insert(runtime: ServiceRuntime, created: Iterable[datetime]) -> list[Contact]:
    """Contacts with the given creation times, straight into the table (times the API would not give)."""
    contacts = [
        Contact(email=f"{uuid.uuid4().hex}@example.com", lifecycle_stage="lead", created_at=at, updated_at=at)
        for at in created
    ]
    async with runtime.database.sessionmaker() as session:
        session.add_all(contacts)
        await session.commit()
    return contacts


def _newest_first(contacts: Iterable[Contact]) -> list[str]:
    # UUIDs order as their bytes in both databases (PostgreSQL `uuid`, SQLite 32-char hex), as in Python.
    return [str(c.id) for c in sorted(contacts, key=lambda c: (c.created_at, c.id), reverse=True)]


async def _page(client: httpx.AsyncClient, url: str) -> tuple[list[str], str | None]:
    """One page's ids, and the next page's URL from the `Link` header, checked against `next_cursor`."""
    response = await client.get(url)
    assert response.status_code == 200, response.text
    body = response.json()
    link = response.headers.get("link")
    if body["next_cursor"] is None:
        assert link is None
        return [item["id"] for item in body["items"]], None
    assert link is not None
    match = LINK.match(link)
    assert match is not None, link
    next_url = httpx.URL(match["url"])
    assert next_url.params["cursor"] == body["next_cursor"]
    return [item["id"] for item in body["items"]], str(next_url)


async def test_walking_the_pages_returns_every_contact_once_in_order(api: Api) -> None:
    client, runtime = api
    # Five rows share each time, so page boundaries fall inside ties: the id decides there.
    contacts = await _insert(runtime, [T0 + timedelta(seconds=n // 5) for n in range(23)])

    seen: list[str] = []
    pages = 0
    url: str | None = "/v1/contacts?limit=4"
    while url is not None:
        ids, next_url = await _page(client, url)
        seen += ids
        pages += 1
        if next_url is not None:
            # Absolute, from the request, keeping the other query parameters.
            assert next_url.startswith("http://testserver/v1/contacts?")
            assert httpx.URL(next_url).params["limit"] == "4"
        url = next_url

    assert seen == _newest_first(contacts)
    assert pages == 6  # 4+4+4+4+4+3: the last page says there is no next one


async def test_contacts_added_during_a_walk_neither_repeat_nor_hide_the_others(api: Api) -> None:
    client, runtime = api
    existing = await _insert(runtime, [T0 + timedelta(seconds=n // 3) for n in range(12)])
    expected = _newest_first(existing)

    first, url = await _page(client, "/v1/contacts?limit=5")
    assert first == expected[:5]
    last_seen = next(c for c in existing if str(c.id) == first[-1])
    # Before the cursor: newer than everything (as the API creates them) and in the cursor row's own tie.
    # After it: older than everything, and in the cursor row's tie again (ids fall on either side).
    await _insert(runtime, [T0 + timedelta(hours=1)] * 3 + [last_seen.created_at] * 4)
    await client.post("/v1/contacts", json={"email": "new@example.com"})
    await _insert(runtime, [T0 - timedelta(hours=1)] * 2)

    seen = list(first)
    while url is not None:
        ids, url = await _page(client, url)
        seen += ids

    assert len(seen) == len(set(seen)), "a contact came twice"
    assert [i for i in seen if i in set(expected)] == expected, "a contact that existed was skipped"
    everything = {str(c.id): c for c in existing}
    everything.update({str(c.id): c for c in await _all(runtime)})
    positions = [(everything[i].created_at, everything[i].id) for i in seen]
    assert positions == sorted(positions, reverse=True), "the walk left newest-first order"


async def _all(runtime: ServiceRuntime) -> list[Contact]:
    async with runtime.database.sessionmaker() as session:
        return list(await session.scalars(select(Contact)))


async def test_limit_has_a_default_and_bounds(api: Api) -> None:
    client, runtime = api
    await _insert(runtime, [T0 + timedelta(seconds=n) for n in range(51)])
    default = (await client.get("/v1/contacts")).json()
    assert len(default["items"]) == 50
    assert default["next_cursor"] is not None
    assert len((await client.get("/v1/contacts", params={"limit": 200})).json()["items"]) == 51
    for limit in (0, 201):
        response = await client.get("/v1/contacts", params={"limit": limit})
        assert response.status_code == 422
        [error] = response.json()["errors"]
        assert (error["field"], error["location"]) == ("limit", "query")


def _cursor(document: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


async def test_a_cursor_the_list_did_not_hand_out_is_a_422_naming_it(api: Api) -> None:
    client, runtime = api
    await _insert(runtime, [T0 + timedelta(seconds=n) for n in range(3)])
    issued = (await client.get("/v1/contacts", params={"limit": 1})).json()["next_cursor"]
    document = json.loads(base64.urlsafe_b64decode(issued + "=" * (-len(issued) % 4)))
    assert document["sort"] == "-created_at,-id"

    (_dt, when), (_uuid, last_id) = document["after"]
    bad = [
        "not a cursor!",
        issued[:-3],  # cut short
        issued[:8] + ("A" if issued[8] != "A" else "B") + issued[9:],  # one character changed
        _cursor({"sort": "occurred_at,id", "after": document["after"]}),  # another list's sort
        _cursor({"sort": document["sort"], "after": [["str", when], ["uuid", last_id]]}),  # types changed
        _cursor({"sort": document["sort"], "after": [["dt", "yesterday"], ["uuid", last_id]]}),
        _cursor({"sort": document["sort"], "after": [["dt", when]]}),
        _cursor([1, 2]),
    ]
    for cursor in bad:
        response = await client.get("/v1/contacts", params={"cursor": cursor})
        assert response.status_code == 422, cursor
        assert response.headers["content-type"] == "application/problem+json"
        [error] = response.json()["errors"]
        assert (error["field"], error["location"]) == ("cursor", "query"), cursor
    assert (await client.get("/v1/contacts", params={"cursor": issued})).status_code == 200


async def test_the_next_link_holds_the_prefix_the_app_is_mounted_under(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    # As in embedded mode: the service app mounted under /contacts in a root app.
    platform = PlatformSettings(data_dir=tmp_path, bootstrap_api_key=SecretStr(TEST_BOOTSTRAP_KEY))
    settings = DEFINITION.settings_class(database_url=database_url, run_relay=False, run_consumers=False)
    runtime = ServiceRuntime(DEFINITION, platform=platform, settings=settings, bus=local_bus)
    service_app = create_service_app(DEFINITION, runtime)
    root = FastAPI()
    root.mount("/contacts", service_app)
    async with (
        service_app.router.lifespan_context(service_app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=root), base_url="http://crm.test", headers=ADMIN_HEADERS
        ) as client,
    ):
        await _insert(runtime, [T0, T0 + timedelta(seconds=1)])
        first, next_url = await _page(client, "/contacts/v1/contacts?limit=1")
        assert next_url is not None
        assert next_url.startswith("http://crm.test/contacts/v1/contacts?")
        second, last = await _page(client, next_url)
    assert (len(first), len(second), last) == (1, 1, None)
