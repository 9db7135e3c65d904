"""A view rebuilt by replaying its topics equals the view built live (`crm replay`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update

from services.journeys.app import DEFINITION
from services.journeys.timeline.handlers import TIMELINE_CONSUMER
from services.journeys.timeline.models import TimelineEntry
from shared.bus.base import Message
from shared.bus.embedded import EmbeddedBus
from shared.db import Database, session_scope
from shared.events import topics
from shared.events.catalog import ContactCreated
from shared.events.envelope import to_message
from shared.replay import replay_consumer
from shared.runtime import ServiceRuntime
from shared.settings import PlatformSettings
from shared.testing.apps import service_client
from shared.testing.consumers import wait_until_caught_up


def _events(count: int) -> list[Message]:
    contacts = [uuid.uuid4() for _ in range(5)]
    return [
        to_message(
            ContactCreated(
                contact_id=contacts[n % 5],
                lifecycle_stage="lead",
                source=f"s{n}",
                created_at=datetime.now(UTC),
            ),
            source="/crm/contacts",
        )
        for n in range(count)
    ]


async def _view(database: Database) -> list[tuple[Any, ...]]:
    async with database.sessionmaker() as session:
        rows = await session.execute(
            select(
                TimelineEntry.id,
                TimelineEntry.event_id,
                TimelineEntry.contact_id,
                TimelineEntry.event_type,
                TimelineEntry.source,
                TimelineEntry.occurred_at,
                TimelineEntry.properties,
            ).order_by(TimelineEntry.event_id)
        )
        return [tuple(row) for row in rows]


async def _build_live_view(database_url: str, bus: EmbeddedBus, data_dir: Path) -> list[tuple[Any, ...]]:
    messages = _events(40)
    await bus.publish([*messages, messages[3]])  # and one repeat, as after a relay retry
    async with service_client(DEFINITION, database_url=database_url, bus=bus, data_dir=data_dir) as (
        _,
        runtime,
    ):
        await wait_until_caught_up(
            runtime.database, DEFINITION.consumer_tables, TIMELINE_CONSUMER.name, bus, [topics.CONTACTS.name]
        )
        return await _view(runtime.database)


async def _damage(database: Database) -> None:
    """Make the view wrong, as a bug in an old handler would have."""
    async with session_scope(database) as session:
        first = await session.scalar(select(TimelineEntry.id).order_by(TimelineEntry.event_id).limit(1))
        await session.execute(delete(TimelineEntry).where(TimelineEntry.id == first))
        await session.execute(update(TimelineEntry).values(properties={"wrong": True}))


async def test_a_replayed_view_equals_the_live_one(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    live = await _build_live_view(database_url, local_bus, tmp_path)
    assert len(live) == 40
    database = Database(database_url)
    try:
        await _damage(database)
        settings = DEFINITION.settings_class(database_url=database_url)
        # Its own data folder: a runtime keeps files there (the identity hash key), never in the checkout.
        platform = PlatformSettings(data_dir=tmp_path / "replay")
        runtime = ServiceRuntime(DEFINITION, platform=platform, settings=settings, bus=local_bus)
        runners = runtime.consumer_runners()
        [runner] = [runner for runner in runners if runner.spec is TIMELINE_CONSUMER]
        progress: list[tuple[int, int]] = []
        total = await replay_consumer(runner, on_progress=lambda done, of: progress.append((done, of)))
        assert await _view(runner.database) == live
        await runner.database.dispose()
    finally:
        await database.dispose()
    assert total == 41
    assert progress[-1] == (41, 41)


async def test_crm_replay_rebuilds_the_view_with_a_progress_bar(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path / "events.sqlite")  # where `crm` finds it with CRM_DATA_DIR=tmp_path
    await bus.start()
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'journeys.sqlite'}"
    try:
        live = await _build_live_view(database_url, bus, tmp_path)
    finally:
        await bus.stop()
    database = Database(database_url)
    await _damage(database)

    crm = Path(sys.executable).with_name("crm")
    result = await asyncio.to_thread(
        subprocess.run,
        [str(crm), "replay", "journeys"],
        env={**os.environ, "CRM_DATA_DIR": str(tmp_path), "CRM_BUS": "embedded", "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "journeys.timeline" in result.stdout
    assert "41/41" in result.stdout
    try:
        assert await _view(database) == live
    finally:
        await database.dispose()
