"""`crm dlq list` and `crm dlq redrive` (also `--skip`) through the real command, on embedded data."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from services.journeys.app import DEFINITION
from services.journeys.maps.handlers import MAPS_CONSUMER
from services.journeys.timeline.handlers import TIMELINE_CONSUMER
from shared.bus.base import Message
from shared.bus.embedded import EmbeddedBus
from shared.events import topics
from shared.testing.apps import service_client
from shared.testing.consumers import wait_until_caught_up


async def _crm(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    crm = Path(sys.executable).with_name("crm")
    return await asyncio.to_thread(
        subprocess.run,
        [str(crm), *args],
        env={**os.environ, "CRM_DATA_DIR": str(data_dir), "CRM_BUS": "embedded", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_an_unreadable_record_is_listed_and_redrive_stops_at_it(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path / "events.sqlite")
    await bus.start()
    garbage = Message(
        topic=topics.CONTACTS.name,
        key="k",
        value=b"not json",
        headers={"ce_type": b"crm.contact.created", "ce_id": b"broken-1"},
    )
    await bus.publish([garbage])
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'journeys.sqlite'}"
    try:
        async with service_client(DEFINITION, database_url=database_url, bus=bus, data_dir=tmp_path) as (
            _,
            runtime,
        ):
            # Each consumer of crm.contacts dead-letters the record on its own.
            for consumer in (TIMELINE_CONSUMER, MAPS_CONSUMER):
                await wait_until_caught_up(
                    runtime.database, DEFINITION.consumer_tables, consumer.name, bus, [topics.CONTACTS.name]
                )
    finally:
        await bus.stop()

    listed = await _crm(tmp_path, "dlq", "list", "journeys")
    assert listed.returncode == 0, listed.stderr
    assert "pending" in listed.stdout
    assert "journeys.timeline" in listed.stdout
    assert "journeys.maps" in listed.stdout
    assert "broken-1" in listed.stdout
    assert "EventParseError" in listed.stdout

    redriven = await _crm(tmp_path, "dlq", "redrive", "journeys")
    assert redriven.returncode == 1, "a record that still cannot be read must stop the redrive"
    assert "0 applied" in redriven.stdout
    assert "stopped at crm.contacts.dlq/0@" in redriven.stderr
    assert "(broken-1)" in redriven.stderr

    both = ("--skip", "crm.contacts.dlq/0@0", "--skip", "crm.contacts.dlq/0@1")
    skipped = await _crm(tmp_path, "dlq", "redrive", "journeys", *both)
    assert skipped.returncode == 0, skipped.stderr
    assert "2 skipped" in skipped.stdout
    settled = await _crm(tmp_path, "dlq", "list", "journeys")
    assert "settled" in settled.stdout
    assert "pending" not in settled.stdout

    nothing = await _crm(tmp_path, "dlq", "list", "contacts")
    assert nothing.returncode == 0, nothing.stderr
    assert "contacts: no dead letters" in nothing.stdout
