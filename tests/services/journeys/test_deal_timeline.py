"""Deal stage changes on the unified timeline: a deal's move goes on the timeline of each contact
associated with it, learnt from the deal events themselves (they name the deal's contacts), never from
a call to contacts. Merges move the associations, erasures remove them, also when the deal event comes
late on its own topic; a replay rebuilds the same view."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select

from services.journeys.timeline.models import TimelineContactAlias, TimelineDealContact, TimelineEntry
from shared.bus.base import Message
from shared.bus.embedded import EmbeddedBus
from shared.db import session_scope
from shared.events import topics
from shared.events.catalog import ContactErased, ContactMerged
from shared.events.deals import DealStageChanged
from shared.events.envelope import dataschema, to_message
from shared.replay import replay_consumer
from shared.runtime import ServiceRuntime
from tests.conftest import create_database, drop_database
from tests.services.contacts.sales_support import SALES_PIPELINE_ID, contacts_api, create_contact
from tests.services.journeys.support import caught_up, journeys_api

AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
STAGE_CHANGED = "crm.deal.stage_changed"
Pair = tuple[httpx.AsyncClient, ServiceRuntime]


@pytest.fixture
async def other_database_url(
    database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[str]:
    """A second database, of the kind `database_url` is: for contacts beside journeys, say."""
    if database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'other.sqlite'}"
        return
    server: str = request.getfixturevalue("postgres_url")
    name, url = await create_database(server)
    yield url
    await drop_database(name, server)


class Crm:
    """Contacts and journeys, each on its own database, on one bus: contacts' outbox is published when
    the test says, as its relay would, and journeys applies it."""

    def __init__(self, contacts: Pair, journeys: Pair, bus: EmbeddedBus) -> None:
        (self.contacts, self.contacts_runtime), (self.journeys, self.journeys_runtime) = contacts, journeys
        self.bus = bus

    async def settle(self) -> None:
        while await self.contacts_runtime.relay().publish_batch():
            pass
        await caught_up(self.journeys_runtime, self.bus, [topics.CONTACTS.name, topics.DEALS.name])

    async def deal(self) -> dict[str, Any]:
        body = {"name": "Acme renewal for Ada", "amount": 900, "currency": "EUR"}
        response = await self.contacts.post("/v1/deals", json=body)
        assert response.status_code == 201, response.text
        deal: dict[str, Any] = response.json()
        return deal

    async def associate(self, deal_id: str, contact_id: str, *, add: bool = True) -> None:
        url = f"/v1/deals/{deal_id}/contacts/{contact_id}"
        response = await (self.contacts.put(url) if add else self.contacts.delete(url))
        assert response.status_code == 204, response.text

    async def move(self, deal_id: str, stage: str, reason: str | None = None) -> None:
        body = {"stage": stage, "reason": reason, "note": "Ada said yes on the phone"}
        response = await self.contacts.post(f"/v1/deals/{deal_id}/stage", json=body)
        assert response.status_code == 200, response.text

    async def history(self, deal_id: str) -> list[dict[str, Any]]:
        response = await self.contacts.get(f"/v1/deals/{deal_id}/stages")
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def deal_entries(self, contact_id: str) -> list[dict[str, Any]]:
        response = await self.journeys.get(
            f"/v1/contacts/{contact_id}/timeline", params={"type": STAGE_CHANGED, "limit": 200}
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


@pytest.fixture
async def crm(
    database_url: str, other_database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> AsyncIterator[Crm]:
    async with AsyncExitStack() as stack:
        contacts = await stack.enter_async_context(
            contacts_api(other_database_url, local_bus, tmp_path / "contacts")
        )
        journeys = await stack.enter_async_context(journeys_api(database_url, local_bus, tmp_path))
        yield Crm(contacts, journeys, local_bus)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _moves(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(entry["properties"]["from_stage"], entry["properties"]["stage"]) for entry in entries]


async def test_a_deals_moves_go_on_each_associated_contacts_timeline_in_order(crm: Crm) -> None:
    ada, bob, eve = [await create_contact(crm.contacts) for _ in range(3)]
    deal = await crm.deal()
    deal_id = deal["id"]
    await crm.move(deal_id, "qualification")  # before anyone is associated: on no timeline
    await crm.associate(deal_id, ada)
    await crm.associate(deal_id, bob)
    await crm.move(deal_id, "demo")
    await crm.move(deal_id, "proposal")
    await crm.associate(deal_id, bob, add=False)
    await crm.move(deal_id, "won", reason="price")
    await crm.settle()

    ada_entries, bob_entries, eve_entries = [await crm.deal_entries(c) for c in (ada, bob, eve)]
    history = await crm.history(deal_id)
    everything = (await crm.journeys.get(f"/v1/contacts/{ada}/timeline", params={"limit": 200})).json()
    associated = await _associations(crm.journeys_runtime)
    assert (await crm.contacts.delete(f"/v1/deals/{deal_id}")).status_code == 204
    await crm.settle()

    assert associated == {(uuid.UUID(deal_id), uuid.UUID(ada))}
    # A deleted deal has no contacts left; the moves it made stay on the timelines.
    assert await _associations(crm.journeys_runtime) == set()
    assert await crm.deal_entries(ada) == ada_entries

    assert _moves(ada_entries) == [("qualification", "demo"), ("demo", "proposal"), ("proposal", "won")]
    # Removed from the deal: no further moves on bob's timeline.
    assert _moves(bob_entries) == [("qualification", "demo"), ("demo", "proposal")]
    assert eve_entries == []
    # At the time of the move, as the deal's history has it; one entry per contact for one event.
    assert [_instant(entry["occurred_at"]) for entry in ada_entries] == [
        _instant(move["changed_at"]) for move in history[2:]
    ]
    assert [e["event_id"] for e in bob_entries] == [e["event_id"] for e in ada_entries[:2]]
    assert {e["id"] for e in bob_entries}.isdisjoint(e["id"] for e in ada_entries)
    won = ada_entries[-1]
    assert (won["team"], won["type"], won["event_type"], won["source"]) == (
        "sales",
        STAGE_CHANGED,
        STAGE_CHANGED,
        "/crm/contacts",
    )
    assert won["properties"] == {
        "deal_id": deal_id,
        "pipeline_id": deal["pipeline_id"],
        "from_stage": "proposal",
        "stage": "won",
        "status": "won",
        "amount": 900,
        "currency": "EUR",
    }
    # `crm.deal.won` comes with the stage change: the move is on the timeline once.
    kinds = [item["type"] for item in everything["items"]]
    assert "crm.deal.won" not in kinds
    assert kinds.count(STAGE_CHANGED) == 3
    assert "crm.deal.updated" not in json.dumps(everything)
    # The team filter finds them.
    sales = await crm.journeys.get(f"/v1/contacts/{ada}/timeline", params={"team": "sales"})
    assert [item["id"] for item in sales.json()["items"]] == [e["id"] for e in ada_entries]


async def _associations(runtime: ServiceRuntime) -> set[tuple[uuid.UUID, uuid.UUID]]:
    async with runtime.database.sessionmaker() as session:
        rows = await session.execute(select(TimelineDealContact.deal_id, TimelineDealContact.contact_id))
        return {(deal_id, contact_id) for deal_id, contact_id in rows}


async def test_a_merge_moves_the_deal_entries_and_associations_and_an_erasure_removes_them(crm: Crm) -> None:
    ada, bob = [await create_contact(crm.contacts) for _ in range(2)]
    deal_id = (await crm.deal())["id"]
    for contact_id in (ada, bob):
        await crm.associate(deal_id, contact_id)
    await crm.move(deal_id, "demo")
    await crm.settle()
    assert len(await crm.deal_entries(bob)) == 1

    merged = await crm.contacts.post(f"/v1/contacts/{ada}/merge", json={"merge_id": bob})
    assert merged.status_code == 200, merged.text
    await crm.move(deal_id, "proposal")
    await crm.settle()
    after_merge = await crm.deal_entries(ada)
    bobs = await crm.deal_entries(bob)
    associated = await _associations(crm.journeys_runtime)

    erased = await crm.contacts.post(f"/v1/contacts/{ada}/erasure")
    assert erased.status_code == 202, erased.text
    await crm.move(deal_id, "negotiation")  # contacts still names the erased id on the deal
    await crm.settle()
    after_erasure = await crm.journeys.get(f"/v1/contacts/{ada}/timeline")

    # Both had the first move: the survivor keeps it once.
    assert _moves(after_merge) == [("prospecting", "demo"), ("demo", "proposal")]
    assert bobs == []
    assert associated == {(uuid.UUID(deal_id), uuid.UUID(ada))}
    assert after_erasure.json()["items"] == []
    assert await _associations(crm.journeys_runtime) == set()


def _snapshot(deal_id: uuid.UUID, contact_ids: list[uuid.UUID] | None) -> dict[str, Any]:
    return {
        "deal_id": deal_id,
        "pipeline_id": uuid.UUID(SALES_PIPELINE_ID),
        "stage": "demo",
        "status": "open",
        "amount": 500,
        "currency": "EUR",
        "owner": "rep-1",
        "expected_close_date": None,
        "created_at": AT,
        "closed_at": None,
        "contact_ids": contact_ids,
    }


def _stage_changed(deal_id: uuid.UUID, contact_ids: list[uuid.UUID], at: datetime) -> DealStageChanged:
    return DealStageChanged(
        **_snapshot(deal_id, sorted(contact_ids)),
        from_stage="prospecting",
        from_status="open",
        reason=None,
        changed_by="key-1",
        changed_at=at,
    )


def _as_version_1(message: Message) -> Message:
    """The message as a producer of the first schema version sent it: no `contact_ids`."""
    data = json.loads(message.value)
    del data["contact_ids"]
    data["schema_version"] = 1
    headers = {**message.headers, "ce_dataschema": dataschema(STAGE_CHANGED, 1).encode()}
    return Message(topic=message.topic, key=message.key, value=json.dumps(data).encode(), headers=headers)


async def _view(runtime: ServiceRuntime) -> tuple[list[tuple[Any, ...]], ...]:
    async with runtime.database.sessionmaker() as session:
        entries = await session.execute(
            select(TimelineEntry.id, TimelineEntry.contact_id, TimelineEntry.event_id).order_by(
                TimelineEntry.id
            )
        )
        deals = await session.execute(
            select(TimelineDealContact.deal_id, TimelineDealContact.contact_id).order_by(
                TimelineDealContact.deal_id, TimelineDealContact.contact_id
            )
        )
        aliases = await session.execute(
            select(TimelineContactAlias.contact_ref, TimelineContactAlias.survivor_id).order_by(
                TimelineContactAlias.contact_ref
            )
        )
        return [tuple(r) for r in entries], [tuple(r) for r in deals], [tuple(r) for r in aliases]


async def _apply_in_order(
    database_url: str, bus: EmbeddedBus, data_dir: Path, batches: list[list[Message]]
) -> tuple[dict[uuid.UUID, list[str]], tuple[list[tuple[Any, ...]], ...]]:
    """Publish the batches one after the other, each applied before the next; then the deal entries
    (event ids) of every contact they name, and the whole view."""
    async with journeys_api(database_url, bus, data_dir) as (client, runtime):
        for batch in batches:
            await bus.publish(batch)
            await caught_up(runtime, bus, [topics.CONTACTS.name, topics.DEALS.name])
        seen = {}
        for contact_id in sorted({uuid.UUID(named) for batch in batches for named in _named(batch)}):
            response = await client.get(f"/v1/contacts/{contact_id}/timeline", params={"type": STAGE_CHANGED})
            seen[contact_id] = [item["event_id"] for item in response.json()["items"]]
        return seen, await _view(runtime)


def _named(batch: list[Message]) -> list[str]:
    """Every contact id the messages name."""
    named: list[str] = []
    for message in batch:
        data = json.loads(message.value)
        named += data.get("contact_ids") or []
        named += [data[key] for key in ("contact_id", "merged_contact_id") if key in data]
    return named


async def test_a_deal_event_that_comes_after_a_merge_or_erasure_follows_it_and_a_replay_agrees(
    database_url: str, other_database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    """`crm.deals` and `crm.contacts` are two topics, in no set order: a deal event may still name a
    contact that journeys already knows was merged (its move goes to the survivor) or erased (to nobody),
    or the merge or erasure may come after it. Either way the timelines end up the same, ids included,
    and so does a replay. An event of the first version does not say the deal's contacts: those known
    (merges and erasures applied) stay."""
    survivor, moved, merged, erased, kept = (uuid.uuid4() for _ in range(5))
    deal_id = uuid.uuid4()

    def contacts_event(event: ContactMerged | ContactErased) -> Message:
        return to_message(event, source="/crm/contacts")

    def merge(loser: uuid.UUID) -> Message:
        return contacts_event(
            ContactMerged(
                contact_id=survivor, merged_contact_id=loser, merge_id=uuid.uuid4(), actor="k", merged_at=AT
            )
        )

    first = to_message(_stage_changed(deal_id, [moved, kept], AT), source="/crm/contacts")
    contacts = [
        merge(moved),
        merge(merged),
        contacts_event(ContactErased(contact_id=erased, receipt_id=uuid.uuid4(), erased_at=AT)),
    ]
    late = to_message(
        _stage_changed(deal_id, [merged, erased, kept], AT + timedelta(minutes=1)), source="/crm/contacts"
    )
    old = _as_version_1(
        to_message(_stage_changed(deal_id, [], AT + timedelta(minutes=2)), source="/crm/contacts")
    )

    seen, live = await _apply_in_order(database_url, local_bus, tmp_path, [[first], contacts, [late], [old]])
    other_bus = EmbeddedBus(tmp_path / "other-events.sqlite", poll_interval_s=0.05)
    await other_bus.start()
    try:
        seen_early, live_early = await _apply_in_order(
            other_database_url, other_bus, tmp_path / "other", [[first], [late], contacts, [old]]
        )
    finally:
        await other_bus.stop()

    async with journeys_api(database_url, local_bus, tmp_path, consumers=False) as (_, runtime):
        async with session_scope(runtime.database) as session:  # a view gone wrong
            for table in (TimelineEntry, TimelineDealContact, TimelineContactAlias):
                await session.execute(delete(table))
        [runner] = [r for r in runtime.consumer_runners() if r.spec.name == "journeys.timeline"]
        await replay_consumer(runner)
        rebuilt = await _view(runtime)

    ids = [message.headers["ce_id"].decode() for message in (first, late, old)]
    assert seen == {survivor: ids, moved: [], merged: [], erased: [], kept: ids}
    assert live[1] == [(deal_id, contact_id) for contact_id in sorted([survivor, kept])]
    assert (seen_early, live_early) == (seen, live)
    assert rebuilt == live
