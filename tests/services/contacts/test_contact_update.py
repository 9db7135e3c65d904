"""ETags on GET /v1/contacts/{id}; PATCH with If-Match, merge-patch semantics and `crm.contact.updated`."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from services.contacts.app import DEFINITION
from services.contacts.contacts.models import Contact
from services.contacts.db import tables
from shared.bus.embedded import EmbeddedBus
from shared.runtime import ServiceRuntime
from shared.testing.apps import service_client

Api = tuple[httpx.AsyncClient, ServiceRuntime]
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture
async def api(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[Api]:
    # No relay: the tests read the outbox itself.
    async with service_client(
        DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path, relay=False
    ) as pair:
        yield pair


async def _create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/contacts", json={"email": f"{uuid.uuid4().hex}@example.com", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _update_events(runtime: ServiceRuntime) -> list[dict[str, Any]]:
    events = tables.outbox_tables.events
    async with runtime.database.sessionmaker() as session:
        rows = await session.execute(
            select(events.c.partition_key, events.c.payload)
            .where(events.c.event_type == "crm.contact.updated")
            .order_by(events.c.id)
        )
        return [{"key": key, "raw": bytes(payload), **json.loads(payload)} for key, payload in rows]


async def test_a_read_carries_an_etag_and_if_none_match_answers_304(api: Api) -> None:
    client, _ = api
    contact = await _create(client)
    url = f"/v1/contacts/{contact['id']}"
    read = await client.get(url)
    assert read.headers["etag"] == '"1"'

    for header in ('"1"', 'W/"1"', '"7", "1"', "*"):
        unchanged = await client.get(url, headers={"If-None-Match": header})
        assert unchanged.status_code == 304, header
        assert unchanged.content == b""
        assert unchanged.headers["etag"] == '"1"'
    changed = await client.get(url, headers={"If-None-Match": '"0"'})
    assert (changed.status_code, changed.json()) == (200, read.json())

    await client.patch(url, json={"source": "webinar"})
    assert (await client.get(url, headers={"If-None-Match": '"1"'})).status_code == 200


async def test_a_patch_changes_the_given_fields_and_announces_them_without_personal_data(api: Api) -> None:
    client, runtime = api
    contact = await _create(client, first_name="Ada", last_name="Lovelace", phone="+44 20 1234", source="ads")
    response = await client.patch(
        f"/v1/contacts/{contact['id']}",
        content=json.dumps(
            {"first_name": "Augusta", "phone": None, "lifecycle_stage": "customer", "last_name": "Lovelace"}
        ),
        headers={**MERGE_PATCH, "If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    updated = response.json()
    assert (updated["first_name"], updated["last_name"], updated["phone"]) == ("Augusta", "Lovelace", None)
    assert (updated["lifecycle_stage"], updated["source"]) == ("customer", "ads")  # left out: kept
    assert updated["updated_at"] > contact["updated_at"]
    assert (await client.get(f"/v1/contacts/{contact['id']}")).json() == updated

    [event] = await _update_events(runtime)
    assert event["key"] == contact["id"]
    assert event["contact_id"] == contact["id"]
    assert event["changed_fields"] == ["first_name", "lifecycle_stage", "phone"]  # last_name was the same
    assert event["changes"] == {"lifecycle_stage": {"old": "subscriber", "new": "customer"}}
    for personal in (b"Ada", b"Augusta", b"Lovelace", b"+44"):
        assert personal not in event["raw"], "PII must stay out of the log"


async def test_a_patch_that_changes_nothing_writes_and_announces_nothing(api: Api) -> None:
    client, runtime = api
    contact = await _create(client, first_name="Ada", lifecycle_stage="lead")
    same = await client.patch(
        f"/v1/contacts/{contact['id']}", json={"first_name": "Ada", "lifecycle_stage": "lead"}
    )
    assert same.status_code == 200
    assert same.headers["etag"] == '"1"'
    assert same.json() == contact
    assert await _update_events(runtime) == []


async def test_a_stale_if_match_is_a_412_with_the_current_etag_and_writes_nothing(api: Api) -> None:
    client, runtime = api
    contact = await _create(client, source="ads")
    url = f"/v1/contacts/{contact['id']}"
    assert (await client.patch(url, json={"source": "fair"}, headers={"If-Match": '"1"'})).status_code == 200

    for stale in ('"1"', 'W/"2"', "garbage"):  # older; weak (If-Match compares strongly); unparsable
        response = await client.patch(url, json={"source": "webinar"}, headers={"If-Match": stale})
        assert response.status_code == 412, stale
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["etag"] == '"2"'
    assert (await client.get(url)).json()["source"] == "fair"
    assert len(await _update_events(runtime)) == 1  # the first patch's only

    anything = await client.patch(url, json={"source": "webinar"}, headers={"If-Match": "*"})
    assert (anything.status_code, anything.headers["etag"]) == (200, '"3"')
    missing = await client.patch(
        f"/v1/contacts/{uuid.uuid4()}", json={"source": "x"}, headers={"If-Match": "*"}
    )
    assert missing.status_code == 404


async def test_a_patch_refuses_unknown_fields_and_clearing_the_stage(api: Api) -> None:
    client, runtime = api
    contact = await _create(client)
    url = f"/v1/contacts/{contact['id']}"
    for body, field in (
        ({"nickname": "Addie"}, "nickname"),
        ({"lifecycle_stage": None}, "lifecycle_stage"),
        ({"lifecycle_stage": "king"}, "lifecycle_stage"),
    ):
        response = await client.patch(url, json=body)
        assert response.status_code == 422, body
        assert [error["field"] for error in response.json()["errors"]] == [field]
    assert await _update_events(runtime) == []


async def _waiting_on_locks(runtime: ServiceRuntime) -> int:
    async with runtime.database.engine.connect() as connection:
        waiting = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return int(waiting or 0)


async def test_two_patches_from_the_same_version_cannot_both_win(api: Api) -> None:
    client, runtime = api
    contact = await _create(client)
    url = f"/v1/contacts/{contact['id']}"

    def patch(stage: str) -> Any:
        return client.patch(url, json={"lifecycle_stage": stage}, headers={"If-Match": '"1"'})

    if runtime.database.is_sqlite:
        # One writer at a time: the second reads the first one's version and fails before writing.
        responses = await asyncio.gather(patch("lead"), patch("customer"))
    else:
        # Make both read version 1 before either writes: hold the row, let both reach their UPDATE and
        # wait for it, then let go. Only the version check in the UPDATE itself can stop the second.
        async with runtime.database.engine.connect() as holder:
            await holder.execute(
                select(Contact.id).where(Contact.id == uuid.UUID(contact["id"])).with_for_update()
            )
            racing = asyncio.gather(patch("lead"), patch("customer"))
            for _ in range(500):
                if await _waiting_on_locks(runtime) == 2:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the two patches never both reached their UPDATE")
            await holder.rollback()
        responses = await racing

    assert sorted(response.status_code for response in responses) == [200, 412]
    winner = next(response for response in responses if response.status_code == 200)
    loser = next(response for response in responses if response.status_code == 412)
    assert loser.headers["etag"] == winner.headers["etag"] == '"2"'
    assert (await client.get(url)).json()["lifecycle_stage"] == winner.json()["lifecycle_stage"]
    assert len(await _update_events(runtime)) == 1
    async with runtime.database.sessionmaker() as session:
        assert await session.scalar(select(func.max(Contact.version))) == 2


async def test_patches_without_if_match_both_apply(api: Api) -> None:
    client, runtime = api
    contact = await _create(client)
    url = f"/v1/contacts/{contact['id']}"
    responses = await asyncio.gather(
        client.patch(url, json={"source": "a"}), client.patch(url, json={"first_name": "B"})
    )
    assert [response.status_code for response in responses] == [200, 200]
    final = (await client.get(url)).json()
    assert (final["source"], final["first_name"]) == ("a", "B")
    assert len(await _update_events(runtime)) == 2
