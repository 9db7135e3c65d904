"""Helpers for the companies, pipelines and deals tests: the app on a test's database, its outbox."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from services.contacts.app import DEFINITION
from services.contacts.db import tables
from services.contacts.properties.models import CustomValue
from shared.bus.embedded import EmbeddedBus
from shared.runtime import ServiceRuntime
from shared.testing.apps import service_client

Api = tuple[httpx.AsyncClient, ServiceRuntime]
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
# The default pipeline the migration seeds.
SALES_PIPELINE_ID = "5a1e5000-0000-4000-8000-000000000001"


@asynccontextmanager
async def contacts_api(database_url: str, bus: EmbeddedBus, data_dir: Path) -> AsyncIterator[Api]:
    # No relay: the tests read the outbox itself, and publish explicitly where they need the bus.
    async with service_client(
        DEFINITION, database_url=database_url, bus=bus, data_dir=data_dir, relay=False
    ) as pair:
        yield pair


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


async def create_contact(client: httpx.AsyncClient) -> str:
    response = await client.post("/v1/contacts", json={"email": f"{uuid.uuid4().hex}@example.com"})
    assert response.status_code == 201, response.text
    contact_id: str = response.json()["id"]
    return contact_id


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The problem document of an answer that must be one, with that status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def error_fields(response: httpx.Response) -> list[str]:
    return [error["field"] for error in problem(response, 422)["errors"]]


async def define_property(
    client: httpx.AsyncClient, object_type: str, key: str, kind: str, **fields: Any
) -> None:
    """A custom property of `object_type`; `fields` as `POST /v1/properties` takes them."""
    body = {"object_type": object_type, "key": key, "label": key.title(), "type": kind, **fields}
    response = await client.post("/v1/properties", json=body)
    assert response.status_code == 201, response.text


async def custom_values(runtime: ServiceRuntime, object_type: str) -> dict[str, dict[str, list[Any]]]:
    """The searchable rows of `object_type`'s records: by record id, then by key, the values in order."""
    async with runtime.database.sessionmaker() as session:
        rows = await session.scalars(
            select(CustomValue)
            .where(CustomValue.object_type == object_type)
            .order_by(CustomValue.object_id, CustomValue.property_key, CustomValue.ordinal)
        )
        found: dict[str, dict[str, list[Any]]] = {}
        for row in rows:
            value = next(v for v in (row.value_text, row.value_number, row.value_date) if v is not None)
            found.setdefault(str(row.object_id), {}).setdefault(row.property_key, []).append(value)
        return found
