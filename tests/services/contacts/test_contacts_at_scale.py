"""Twenty thousand contacts, on SQLite and PostgreSQL: written through the batch upsert, found by their
custom properties, and walked page by page while other writes go on.

Each contact carries a number `score` and an enum `plan` derived from its position, so every expected
answer is computed from the records written.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.contacts.app import DEFINITION
from shared.bus.embedded import EmbeddedBus
from shared.runtime import ServiceRuntime
from shared.testing.apps import service_client

CONTACTS = 20_000
BATCH = 1_000
PAGE = 200
PLANS = ("free", "pro", "enterprise")

Api = tuple[httpx.AsyncClient, ServiceRuntime]
JSON = dict[str, Any]


def _score(n: int) -> int:
    return n % 100


def _plan(n: int) -> str:
    return PLANS[(n // 7) % len(PLANS)]


def _record(n: int) -> JSON:
    return {
        "email": f"person{n:05d}@scale.example",
        "first_name": f"Person{n}",
        "properties": {"score": _score(n), "plan": _plan(n)},
    }


@pytest.fixture
async def api(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[Api]:
    async with service_client(
        DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path, relay=False
    ) as pair:
        yield pair


@dataclass
class Clock:
    """Prints how long each step took, once per step."""

    started: float = field(default_factory=time.perf_counter)
    last: float = field(default_factory=time.perf_counter)

    def lap(self, what: str) -> None:
        now = time.perf_counter()
        print(f"{what}: {now - self.last:.1f} s (total {now - self.started:.1f} s)")
        self.last = now


async def _upsert_all(client: httpx.AsyncClient) -> list[str]:
    """Every contact through `POST /v1/contacts/batch/upsert`, a thousand a request; their ids by n."""
    definitions: list[JSON] = [
        {"key": "score", "label": "Score", "type": "number"},
        {"key": "plan", "label": "Plan", "type": "enum", "options": list(PLANS)},
    ]
    for definition in definitions:
        body = {"object_type": "contact", "personal_data": False, **definition}
        response = await client.post("/v1/properties", json=body)
        assert response.status_code == 201, response.text

    ids: list[str] = []
    for start in range(0, CONTACTS, BATCH):
        records = [_record(n) for n in range(start, start + BATCH)]
        response = await client.post("/v1/contacts/batch/upsert", json={"records": records}, timeout=300)
        assert response.status_code == 200, response.text[:2000]
        answer = response.json()
        results = answer["results"]
        assert [result["index"] for result in results] == list(range(BATCH))
        statuses = Counter(result["status"] for result in results)
        failures = [result for result in results if result["status"] != "created"]
        assert statuses == {"created": BATCH}, failures[:3]
        assert (answer["created"], answer["failed"]) == (BATCH, 0)
        ids += [result["id"] for result in results]
    assert len(set(ids)) == CONTACTS
    return ids


async def _walk(
    fetch: Callable[[str | None], Awaitable[JSON]],
    between_pages: Callable[[], Awaitable[None]] | None = None,
) -> tuple[list[str], list[JSON]]:
    """Follow `next_cursor` to the end: every id in the order given, and every page."""
    ids: list[str] = []
    pages: list[JSON] = []
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        pages.append(page)
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, pages
        assert len(page["items"]) == PAGE, "only the last page may be short"
        assert len(pages) <= 2 * CONTACTS // PAGE, "the walk does not end"
        if between_pages is not None:
            await between_pages()


def _searcher(client: httpx.AsyncClient, body: JSON) -> Callable[[str | None], Awaitable[JSON]]:
    """Pages of a search; `with_total`, if asked, only with the first (as a client would count once)."""

    async def fetch(cursor: str | None) -> JSON:
        later = {"cursor": cursor, "with_total": False} if cursor else {}
        response = await client.post("/v1/contacts/search", json={**body, **later}, timeout=120)
        assert response.status_code == 200, response.text[:2000]
        page: JSON = response.json()
        return page

    return fetch


def _lister(client: httpx.AsyncClient) -> Callable[[str | None], Awaitable[JSON]]:
    async def fetch(cursor: str | None) -> JSON:
        params: JSON = {"limit": PAGE, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/contacts", params=params, timeout=60)
        assert response.status_code == 200, response.text[:2000]
        page: JSON = response.json()
        return page

    return fetch


@dataclass
class Writer:
    """Creates a contact and patches an existing one, again and again, until told to stop; `wrote`
    is set after each pair."""

    client: httpx.AsyncClient
    existing: list[str]
    created: list[str] = field(default_factory=list)
    patched: list[str] = field(default_factory=list)
    wrote: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        chosen = random.Random(20_000)
        while not self.stop.is_set():
            n = len(self.created)
            response = await self.client.post(
                "/v1/contacts",
                json={"email": f"late{n:05d}@scale.example", "properties": {"score": 99, "plan": "pro"}},
            )
            assert response.status_code == 201, response.text
            self.created.append(response.json()["id"])
            target = chosen.choice(self.existing)
            response = await self.client.patch(
                f"/v1/contacts/{target}",
                json={"last_name": f"Patched{n}", "properties": {"score": chosen.randrange(100)}},
            )
            assert response.status_code == 200, response.text
            self.patched.append(target)
            self.wrote.set()

    async def between_pages(self) -> None:
        """Wait until at least one more write has gone through since the last page was read."""
        self.wrote.clear()
        await asyncio.wait_for(self.wrote.wait(), timeout=60)


def _assert_each_once(seen: list[str], existing: list[str], created: list[str]) -> None:
    counts = Counter(seen)
    twice = [contact_id for contact_id, count in counts.items() if count > 1]
    assert not twice, f"{len(twice)} contacts came more than once, e.g. {twice[:3]}"
    missing = set(existing) - counts.keys()
    assert not missing, f"{len(missing)} contacts that existed before the walk were skipped"
    unknown = counts.keys() - set(existing) - set(created)
    assert not unknown, f"the walk returned contacts nobody wrote: {sorted(unknown)[:3]}"


async def test_twenty_thousand_contacts_upserted_searched_and_walked_during_writes(api: Api) -> None:
    client, _ = api
    clock = Clock()
    ids = await _upsert_all(client)
    clock.lap(f"upserted {CONTACTS} contacts in batches of {BATCH}")

    # A search by custom properties: exactly the expected contacts, counted and walked, in score order.
    wanted = [n for n in range(CONTACTS) if _plan(n) == "pro" and _score(n) >= 90]
    search = {
        "filter": {
            "and": [
                {"field": "properties.plan", "op": "eq", "value": "pro"},
                {"field": "properties.score", "op": "gte", "value": 90},
            ]
        },
        "sort": {"field": "properties.score", "direction": "desc"},
        "limit": PAGE,
        "with_total": True,
    }
    found, pages = await _walk(_searcher(client, search))
    assert [page["total"] for page in pages] == [len(wanted)] + [None] * (len(pages) - 1)
    assert len(found) == len(set(found)) == len(wanted)
    assert set(found) == {ids[n] for n in wanted}
    score_of = {ids[n]: _score(n) for n in wanted}
    assert [score_of[i] for i in found] == sorted((_score(n) for n in wanted), reverse=True)

    # A larger set, by an enum and a range: its count and its walk agree with the records.
    larger = [n for n in range(CONTACTS) if _plan(n) != "free" and _score(n) < 50]
    search = {
        "filter": {
            "and": [
                {"field": "properties.plan", "op": "in", "value": ["pro", "enterprise"]},
                {"field": "properties.score", "op": "lt", "value": 50},
            ]
        },
        "limit": PAGE,
        "with_total": True,
    }
    found, pages = await _walk(_searcher(client, search))
    assert pages[0]["total"] == len(larger)
    assert len(found) == len(set(found)) == len(larger)
    assert set(found) == {ids[n] for n in larger}
    clock.lap(f"searched by custom properties ({len(wanted)} and {len(larger)} matches)")

    # Every contact, page by page, while contacts are created and patched between (and during) pages.
    writer = Writer(client, ids)
    writing = asyncio.create_task(writer.run())
    try:
        everyone, pages = await _walk(_searcher(client, {"limit": PAGE}), writer.between_pages)
        during_search = len(writer.created)
        clock.lap(f"walked all by search in {len(pages)} pages during {during_search} creations and patches")
        listed, pages = await _walk(_lister(client), writer.between_pages)
        clock.lap(
            f"walked all by list in {len(pages)} pages during {len(writer.created) - during_search} more"
        )
    finally:
        writer.stop.set()
        await writing
    assert during_search >= CONTACTS // PAGE - 1, "a write should have gone through between every two pages"
    assert len(set(writer.patched)) > 1
    for seen in (everyone, listed):
        _assert_each_once(seen, ids, writer.created)

    # Both walks are newest first, and after the writes stop every contact is counted once.
    total = (await _searcher(client, {"limit": 1, "with_total": True})(None))["total"]
    assert total == CONTACTS + len(writer.created)
    clock.lap("checked")
