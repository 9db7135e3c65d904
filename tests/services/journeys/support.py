"""Helpers for the journeys tests: the app on a test's database, its outbox, contacts events in."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text

from services.journeys.app import DEFINITION
from services.journeys.db import tables
from services.journeys.touchpoints.models import Touchpoint
from shared.bus.base import EventBus, Message
from shared.events import topics
from shared.events.base import Event
from shared.events.envelope import to_message
from shared.identity import IdentityHasher, identity_key
from shared.runtime import ServiceRuntime
from shared.testing.apps import service_client
from shared.testing.consumers import wait_until_caught_up

Api = tuple[httpx.AsyncClient, ServiceRuntime]


@asynccontextmanager
async def journeys_api(
    database_url: str, bus: EventBus, data_dir: Path, *, relay: bool = False, consumers: bool = True
) -> AsyncIterator[Api]:
    # No relay by default: the tests read the outbox itself.
    async with service_client(
        DEFINITION, database_url=database_url, bus=bus, data_dir=data_dir, relay=relay, consumers=consumers
    ) as pair:
        yield pair


def hasher(runtime: ServiceRuntime) -> IdentityHasher:
    """The deployment's email hasher, as contacts hashes the addresses its events carry."""
    return IdentityHasher(identity_key(runtime.platform))


async def contacts_say(
    runtime: ServiceRuntime, bus: EventBus, *events: Event, at: datetime | None = None
) -> None:
    """Publish contacts events, as the contacts service would (made `at` that time, default now), and
    wait until journeys applied them."""
    await bus.publish([to_message(event, source="/crm/contacts", time=at) for event in events])
    await caught_up(runtime, bus, [topics.CONTACTS.name])


async def caught_up(runtime: ServiceRuntime, bus: EventBus, names: Sequence[str]) -> None:
    await wait_until_caught_up(
        runtime.database, DEFINITION.consumer_tables, "journeys.timeline", bus, list(names)
    )


async def outbox_events(runtime: ServiceRuntime, prefix: str = "") -> list[dict[str, Any]]:
    """Staged events whose type starts with `prefix`, oldest first: `type`, `key`, `raw` and the data."""
    events = tables.outbox_tables.events
    async with runtime.database.sessionmaker() as session:
        rows = await session.execute(
            select(events.c.event_type, events.c.partition_key, events.c.payload)
            .where(events.c.event_type.startswith(prefix))
            .order_by(events.c.id)
        )
        return [
            {"type": kind, "key": key, "raw": bytes(payload), **json.loads(payload)}
            for kind, key, payload in rows
        ]


async def publish_staged(runtime: ServiceRuntime, bus: EventBus, prefix: str = "crm.touchpoint.") -> None:
    """Publish the staged events whose type starts with `prefix` as the relay would, at a moment the test
    chooses (all of them each time: the consumer skips those it applied), and wait until applied."""
    staged = tables.outbox_tables.events
    async with runtime.database.sessionmaker() as session:
        rows = await session.execute(
            select(staged.c.topic, staged.c.partition_key, staged.c.headers, staged.c.payload)
            .where(staged.c.event_type.startswith(prefix))
            .order_by(staged.c.id)
        )
        messages = [
            Message(
                topic=topic,
                key=key,
                value=bytes(payload),
                headers={k: v.encode() for k, v in hs.items()},
            )
            for topic, key, hs, payload in rows
        ]
    await bus.publish(messages)
    await caught_up(runtime, bus, [topics.TOUCHPOINTS.name])


async def touchpoint_count(runtime: ServiceRuntime) -> int:
    async with runtime.database.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Touchpoint)) or 0)


async def everything_stored(runtime: ServiceRuntime) -> str:
    """Every row of every table of the service, as text."""
    dumped = []
    async with runtime.database.engine.connect() as connection:
        for table in DEFINITION.metadata.sorted_tables:
            rows = await connection.execute(text(f'SELECT * FROM "{table.name}"'))
            dumped += [f"{table.name}: {tuple(row)!r}" for row in rows]
    return "\n".join(dumped)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The problem document of an answer that must be one, with that status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def error_fields(response: httpx.Response) -> list[str]:
    return [error["field"] for error in problem(response, 422)["errors"]]
