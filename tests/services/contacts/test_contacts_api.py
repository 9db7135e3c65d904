"""Contacts over HTTP through the real ASGI app, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from services.contacts.app import DEFINITION
from services.contacts.contacts import service
from services.contacts.contacts.models import Contact
from services.contacts.contacts.schemas import ContactCreate
from services.contacts.db import tables
from shared.bus.embedded import EmbeddedBus
from shared.db import session_scope
from shared.errors import AlreadyExists
from shared.events import topics
from shared.events.catalog import ContactCreated
from shared.events.envelope import from_record
from shared.runtime import ServiceRuntime
from shared.testing.apps import service_client
from shared.testing.bus import drain


@pytest.fixture
async def api(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, ServiceRuntime]]:
    # No relay: tests look at the outbox itself, and publish explicitly where they need the bus.
    async with service_client(
        DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path, relay=False
    ) as pair:
        yield pair


async def _rows(runtime: ServiceRuntime) -> tuple[int, int]:
    async with runtime.database.sessionmaker() as session:
        contacts = await session.scalar(select(func.count()).select_from(Contact))
        events = await session.scalar(select(func.count()).select_from(tables.outbox_tables.events))
    return int(contacts or 0), int(events or 0)


async def test_creating_a_contact_announces_it_on_the_stream(
    api: tuple[httpx.AsyncClient, ServiceRuntime], local_bus: EmbeddedBus
) -> None:
    client, runtime = api
    response = await client.post(
        "/v1/contacts", json={"email": "Ada@Example.com", "first_name": "Ada", "lifecycle_stage": "lead"}
    )
    assert response.status_code == 201, response.text
    contact = response.json()
    assert contact["email"] == "ada@example.com"
    assert response.headers["location"] == f"http://testserver/v1/contacts/{contact['id']}"
    assert await _rows(runtime) == (1, 1)

    assert await runtime.relay().publish_batch() == 1
    async with local_bus.consumer("reader", [topics.CONTACTS.name]) as consumer:
        [record] = await drain(consumer, count=1)
    event = from_record(record).event
    assert isinstance(event, ContactCreated)
    assert (str(event.contact_id), event.lifecycle_stage) == (contact["id"], "lead")
    assert record.key == contact["id"]
    assert b"ada@example.com" not in record.value, "PII must stay out of the log"

    assert 'crm_events_published_total{service="contacts"}' in (await client.get("/metrics")).text

    fetched = await client.get(f"/v1/contacts/{contact['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == contact


async def test_an_invalid_email_is_a_422_problem_naming_the_field_and_writes_nothing(
    api: tuple[httpx.AsyncClient, ServiceRuntime],
) -> None:
    client, runtime = api
    response = await client.post("/v1/contacts", json={"email": "not-an-email", "first_name": "Bob"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert [error["field"] for error in problem["errors"]] == ["email"]
    assert problem["errors"][0]["location"] == "body"
    assert "email" in problem["detail"]
    assert await _rows(runtime) == (0, 0)


async def test_unknown_and_missing_fields_are_named(api: tuple[httpx.AsyncClient, ServiceRuntime]) -> None:
    client, _ = api
    response = await client.post("/v1/contacts", json={"first_name": "Bob", "favourite_colour": "green"})
    assert response.status_code == 422
    fields = {error["field"]: error["code"] for error in response.json()["errors"]}
    assert fields == {"email": "missing", "favourite_colour": "extra_forbidden"}


async def test_a_bad_additional_email_without_a_primary_one_names_both(
    api: tuple[httpx.AsyncClient, ServiceRuntime],
) -> None:
    client, runtime = api
    response = await client.post("/v1/contacts", json={"emails": ["nope"]})
    assert response.status_code == 422, response.text
    fields = {error["field"]: error["code"] for error in response.json()["errors"]}
    assert fields == {"emails.0": "value_error", "email": "missing"}
    assert "@-sign" in response.json()["errors"][0]["message"]
    assert await _rows(runtime) == (0, 0)


async def test_a_duplicate_email_is_a_409_with_the_existing_id(
    api: tuple[httpx.AsyncClient, ServiceRuntime],
) -> None:
    client, runtime = api
    first = await client.post("/v1/contacts", json={"email": "sam@example.com"})
    again = await client.post("/v1/contacts", json={"email": "SAM@example.com"})
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["existing_id"] == first.json()["id"]
    assert await _rows(runtime) == (1, 1)


async def test_an_unknown_contact_is_a_404_problem(api: tuple[httpx.AsyncClient, ServiceRuntime]) -> None:
    client, _ = api
    response = await client.get(f"/v1/contacts/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["title"] == "Contact not found"
    malformed = await client.get("/v1/contacts/not-a-uuid")
    assert malformed.status_code == 422
    assert malformed.json()["errors"][0]["field"] == "contact_id"


async def test_operations_endpoints(api: tuple[httpx.AsyncClient, ServiceRuntime]) -> None:
    client, _ = api
    assert (await client.get("/healthz")).json() == {"status": "ok", "service": "contacts"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "bus": "ok"}
    echoed = await client.get("/healthz", headers={"X-Request-ID": "trace-123"})
    assert echoed.headers["x-request-id"] == "trace-123"
    await client.post("/v1/contacts", json={"email": "m@example.com"})
    metrics = (await client.get("/metrics")).text
    assert (
        'crm_http_requests_total{method="POST",route="/v1/contacts",service="contacts",status="201"}'
        in metrics
    )
    schema = (await client.get("/openapi.json")).json()
    assert "/v1/contacts" in schema["paths"]
    for method, path in (("post", "/v1/contacts"), ("get", "/v1/contacts/{contact_id}")):
        documented = schema["paths"][path][method]["responses"]["422"]["content"]
        assert documented["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}


async def test_concurrent_creations_commit_together_and_one_email_wins(
    api: tuple[httpx.AsyncClient, ServiceRuntime],
) -> None:
    client, runtime = api
    commits = 0

    def count_commit(_session: Session) -> None:
        nonlocal commits
        commits += 1

    emails = [f"p{n}@example.com" for n in range(30)] + ["twice@example.com"] * 3
    event.listen(Session, "after_commit", count_commit)
    try:
        responses = await asyncio.gather(*(client.post("/v1/contacts", json={"email": e}) for e in emails))
    finally:
        event.remove(Session, "after_commit", count_commit)

    statuses = [response.status_code for response in responses]
    assert statuses[:30] == [201] * 30
    assert sorted(statuses[30:]) == [201, 409, 409]
    winner = next(r.json()["id"] for r in responses[30:] if r.status_code == 201)
    assert {r.json()["existing_id"] for r in responses[30:] if r.status_code == 409} == {winner}
    assert await _rows(runtime) == (31, 31)  # one event per contact created, none for a conflict
    assert commits < len(emails) / 2, f"{commits} commits for {len(emails)} concurrent requests"


async def test_repeats_of_a_taken_email_in_a_later_batch_name_its_holder(
    api: tuple[httpx.AsyncClient, ServiceRuntime],
) -> None:
    """Concurrent requests may fall into different batches: the holder is created by one, and a later
    batch holds two more requests for its email. The first of those is refused by the database, the
    second as a repeat of the first: both must name the holder, not the contact the batch planned for
    the first and never created (the intermittent failure of the test above)."""
    client, runtime = api
    holder = (await client.post("/v1/contacts", json={"email": "twice@example.com"})).json()["id"]
    author = service.Author("k-1")
    async with session_scope(runtime.database) as session:
        outcomes = await service.create_contacts(
            session,
            [
                service.NewContact(ContactCreate(email="twice@example.com"), author),
                service.NewContact(ContactCreate(email="twice@example.com"), author),
            ],
        )
    assert [type(outcome) for outcome in outcomes] == [AlreadyExists, AlreadyExists]
    assert [str(getattr(outcome, "existing_id", None)) for outcome in outcomes] == [holder, holder]


async def test_a_create_repeated_with_its_idempotency_key_makes_one_contact(
    api: tuple[httpx.AsyncClient, ServiceRuntime],
) -> None:
    client, runtime = api
    headers = {"Idempotency-Key": "create-ada-1"}
    first = await client.post("/v1/contacts", json={"email": "ada@example.com"}, headers=headers)
    again = await client.post("/v1/contacts", json={"email": "ada@example.com"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert await _rows(runtime) == (1, 1)
