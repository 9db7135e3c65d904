"""Errors as a new user meets them: malformed JSON, a crash, and URLs in embedded mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.contacts.app import DEFINITION
from shared.bus.embedded import EmbeddedBus
from shared.runtime import ServiceDefinition
from shared.testing.apps import service_client
from shared.web.auth import PUBLIC
from shared.web.routing import api_router
from tests.services.support import embedded_client


@pytest.fixture
async def contacts(tmp_path: Path, local_bus: EmbeddedBus) -> AsyncIterator[httpx.AsyncClient]:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'contacts.sqlite'}"
    async with service_client(DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path) as (
        client,
        _runtime,
    ):
        yield client


async def test_malformed_json_names_the_body_and_where_it_breaks(contacts: httpx.AsyncClient) -> None:
    response = await contacts.post(
        "/v1/contacts", content=b'{"email": "a@example.com",', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["field"], error["location"], error["code"]) == ("body", "body", "json_invalid")
    assert "character 26" in error["message"], error


async def test_a_crash_is_a_500_problem_that_carries_the_request_id(
    tmp_path: Path, local_bus: EmbeddedBus
) -> None:
    crashing = api_router()

    @crashing.get("/v1/crash", dependencies=[PUBLIC])
    async def crash() -> None:
        raise RuntimeError("boom")

    definition = ServiceDefinition(**{**DEFINITION.__dict__, "routers": [*DEFINITION.routers, crashing]})
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'contacts.sqlite'}"
    async with service_client(definition, database_url=database_url, bus=local_bus, data_dir=tmp_path) as (
        client,
        _runtime,
    ):
        transport = httpx.ASGITransport(app=client._transport.app, raise_app_exceptions=False)  # type: ignore[attr-defined]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as raw:
            response = await raw.get("/v1/crash", headers={"X-Request-ID": "crash-1"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "crash-1"
    assert response.json()["request_id"] == "crash-1"


async def test_location_after_a_create_in_embedded_mode_leads_to_the_contact(tmp_path: Path) -> None:
    async with embedded_client(tmp_path) as client:
        created = await client.post("/contacts/v1/contacts", json={"email": "loc@example.com"})
        assert created.status_code == 201, created.text
        location = created.headers["location"]
        assert location == f"http://testserver/contacts/v1/contacts/{created.json()['id']}"
        followed = await client.get(location)
    assert followed.status_code == 200
    assert followed.json() == created.json()
