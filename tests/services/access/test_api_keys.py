"""API keys through the real ASGI apps: every route needs a key and its scope, keys are shown once and
kept as hashes, and revocation bites at once where it happened."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from services.registry import SERVICES
from shared.auth.principal import ADMIN, SCOPES
from shared.bus.embedded import EmbeddedBus
from shared.runtime import ServiceRuntime
from shared.testing.apps import service_client

# The operations anyone may call. A route added to this list must be public on purpose.
PUBLIC_OPERATIONS = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/asyncapi.json"),
    ("get", "/schemas/events/{event_type}/v{version}.json"),
    ("get", "/r/{code}"),  # the click redirect: followed by anyone with the link
    # Signed by its source instead (HMAC over timestamp and body; tests/services/referrals).
    ("post", "/v1/postback-sources/{name}/postbacks"),
}


@pytest.fixture(params=sorted(SERVICES))
async def service(
    request: pytest.FixtureRequest, database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, ServiceRuntime]]:
    # No relay: the tests look at the outbox rows themselves.
    async with service_client(
        SERVICES[request.param], database_url=database_url, bus=local_bus, data_dir=tmp_path, relay=False
    ) as pair:
        yield pair


async def _create_key(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/keys", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _concrete(path: str) -> str:
    """A path with each parameter filled in; a random UUID fits every id parameter."""
    out, _, rest = path.partition("{")
    while rest:
        _name, _, rest = rest.partition("}")
        out += str(uuid.uuid4().hex[:16]) if "key_id" in _name else str(uuid.uuid4())
        more, _, rest = rest.partition("{")
        out += more
    return out


async def test_every_route_needs_a_key_and_its_scope(
    service: tuple[httpx.AsyncClient, ServiceRuntime],
) -> None:
    client, runtime = service
    document = (await client.get("/openapi.json")).json()
    operations = [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    assert operations, "no routes found"
    checked = 0
    for method, path, operation in operations:
        if (method, path) in PUBLIC_OPERATIONS:
            assert "security" not in operation, f"{method} {path} is public but documents a key"
            continue
        # One requirement, the key; the tracking routes take it as a write key (HTTP Basic) too.
        requirements = {
            name: scopes for item in operation.get("security") or [] for name, scopes in item.items()
        }
        assert "apiKey" in requirements, f"{runtime.name}: {method.upper()} {path} declares no scope"
        assert set(requirements) <= {"apiKey", "writeKey"}, f"{method.upper()} {path}: {requirements}"
        assert all(scopes == requirements["apiKey"] for scopes in requirements.values())
        [scope] = requirements["apiKey"]
        url = _concrete(path)
        anonymous = await client.request(method, url, headers={"Authorization": ""})
        assert anonymous.status_code == 401, f"{method.upper()} {path} without a key: {anonymous.status_code}"
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.headers["content-type"] == "application/problem+json"

        others = sorted(set(SCOPES) - {scope, ADMIN})
        token = (await _create_key(client, scopes=others, name="lacks " + scope))["key"]
        refused = await client.request(method, url, headers=_bearer(token))
        assert refused.status_code == 403, f"{method.upper()} {path} without {scope}: {refused.status_code}"
        assert refused.headers["content-type"] == "application/problem+json"
        assert scope in refused.json()["detail"]
        assert refused.json()["required_scope"] == scope
        checked += 1
    assert checked >= 4  # the key routes at least, in every service


async def test_a_key_is_shown_once_kept_as_a_hash_and_announced_without_the_secret(
    service: tuple[httpx.AsyncClient, ServiceRuntime],
) -> None:
    client, runtime = service
    created = await _create_key(client, scopes=["kpi:read", "contacts:read"], name="reporting")
    token = created["key"]
    assert token.startswith("crm_")
    assert created["scopes"] == ["contacts:read", "kpi:read"]

    shown = await client.get(f"/v1/keys/{created['key_id']}")
    assert shown.status_code == 200
    assert "key" not in shown.json()
    listed = await client.get("/v1/keys")
    assert [key["key_id"] for key in listed.json()["items"]] == [created["key_id"]]

    tables = runtime.definition.access
    async with runtime.database.sessionmaker() as session:
        row = (await session.execute(select(tables.api_keys))).one()
        events = (await session.execute(select(runtime.definition.outbox.events))).all()
    assert token not in str(tuple(row))
    assert row.secret_hash != token
    assert [event.event_type for event in events] == ["crm.api_key.created"]
    assert token.encode() not in events[0].payload
    assert row.secret_hash.encode() in events[0].payload

    assert (await client.get("/v1/keys", headers=_bearer(token))).status_code == 403  # not admin


async def test_revoked_expired_and_unknown_keys_get_401(
    service: tuple[httpx.AsyncClient, ServiceRuntime],
) -> None:
    client, runtime = service
    admin = await _create_key(client, scopes=[ADMIN])
    assert (await client.get("/v1/keys", headers=_bearer(admin["key"]))).status_code == 200

    revoked = await client.delete(f"/v1/keys/{admin['key_id']}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    refused = await client.get("/v1/keys", headers=_bearer(admin["key"]))
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    again = await client.delete(f"/v1/keys/{admin['key_id']}")
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]

    expiring = await _create_key(
        client, scopes=[ADMIN], expires_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat()
    )
    assert (await client.get("/v1/keys", headers=_bearer(expiring["key"]))).status_code == 200
    async with runtime.database.sessionmaker() as session, session.begin():
        table = runtime.definition.access.api_keys
        await session.execute(
            update(table)
            .where(table.c.key_id == expiring["key_id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    runtime.keys.forget(expiring["key_id"])
    assert (await client.get("/v1/keys", headers=_bearer(expiring["key"]))).status_code == 401

    tampered = admin["key"][:-4] + "AAAA"
    assert (await client.get("/v1/keys", headers=_bearer(tampered))).status_code == 401
    assert (await client.get("/v1/keys", headers=_bearer("crm_nope"))).status_code == 401
    assert (await client.get("/v1/keys", headers={"Authorization": "Basic eDp5"})).status_code == 401


async def test_grants_are_checked(service: tuple[httpx.AsyncClient, ServiceRuntime]) -> None:
    client, runtime = service
    unknown = await client.post("/v1/keys", json={"scopes": ["contacts:read", "contacts:delete-all"]})
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "scopes"
    assert "contacts:delete-all" in unknown.json()["detail"]
    for scopes in ([ADMIN], ["referrals:read", "contacts:read"], ["referrals:write"]):
        widened = await client.post("/v1/keys", json={"scopes": scopes, "affiliate_id": "aff-1"})
        assert widened.status_code == 422, scopes
        assert "affiliate" in widened.json()["detail"]
    past = await client.post("/v1/keys", json={"scopes": ["kpi:read"], "expires_at": "2000-01-01T00:00:00Z"})
    assert past.status_code == 422
    assert past.json()["errors"][0]["field"] == "expires_at"
    affiliate = await _create_key(client, scopes=["referrals:read"], affiliate_id="aff-1")
    assert affiliate["affiliate_id"] == "aff-1"
    async with runtime.database.sessionmaker() as session:
        count = len((await session.execute(select(runtime.definition.access.api_keys))).all())
    assert count == 1, "a refused grant must write nothing"


async def test_the_key_list_is_cursor_paginated(service: tuple[httpx.AsyncClient, ServiceRuntime]) -> None:
    client, _ = service
    made = [(await _create_key(client, scopes=["kpi:read"], name=f"k{n}"))["key_id"] for n in range(3)]
    first = await client.get("/v1/keys", params={"limit": 2})
    assert [key["key_id"] for key in first.json()["items"]] == made[:2]
    link = first.headers["link"]
    assert link.endswith('>; rel="next"')
    second = await client.get(link[1 : link.index(">")])
    assert [key["key_id"] for key in second.json()["items"]] == made[2:]
    assert second.json()["next_cursor"] is None
    assert "link" not in second.headers


def test_crm_keys_create_list_and_revoke(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from services.cli import app

    runner = CliRunner()
    env = {"CRM_DATA_DIR": str(tmp_path), "CRM_BUS": "embedded"}
    created = runner.invoke(
        app, ["keys", "create", "--scope", "contacts:read", "--name", "cli", "--expires", "30d"], env=env
    )
    assert created.exit_code == 0, created.output
    key_id, token = created.output.splitlines()[-1].split()
    assert token.startswith(f"crm_{key_id}_")

    listed = runner.invoke(app, ["keys", "list"], env=env)
    assert key_id in listed.output
    assert "active" in listed.output
    assert token not in listed.output

    refused = runner.invoke(app, ["keys", "create", "--scope", "contacts:everything"], env=env)
    assert refused.exit_code == 2
    assert "contacts:everything" in refused.output

    assert runner.invoke(app, ["keys", "revoke", key_id], env=env).exit_code == 0
    assert "revoked" in runner.invoke(app, ["keys", "list"], env=env).output
    missing = runner.invoke(app, ["keys", "revoke", "0000000000000000"], env=env)
    assert missing.exit_code == 2


def test_a_route_cannot_be_public_and_need_a_scope() -> None:
    from fastapi import FastAPI

    from shared.web.auth import PUBLIC, requires
    from shared.web.routing import api_router, unguarded_routes

    router = api_router()

    @router.get("/both", dependencies=[PUBLIC, requires("kpi:read")])
    async def both() -> None: ...

    @router.get("/neither")
    async def neither() -> None: ...

    plain = FastAPI().router

    @plain.get("/plain")
    async def unguarded() -> None: ...

    problems = unguarded_routes([*router.routes, *plain.routes])
    assert problems == [
        "/both: declares both PUBLIC and requires(<scope>)",
        "/neither: declares neither requires(<scope>) nor PUBLIC",
        "/plain: not made with shared.web.routing.api_router()",
    ]


async def test_every_documented_error_is_a_problem_document(
    service: tuple[httpx.AsyncClient, ServiceRuntime],
) -> None:
    client, _ = service
    document = (await client.get("/openapi.json")).json()
    wrong = [
        f"{method.upper()} {path} {status}"
        for path, item in document["paths"].items()
        for method, operation in item.items()
        for status, answer in operation["responses"].items()
        if status[0] in "45"
        and list(answer.get("content", {})) != ["application/problem+json"]
        # A person's browser follows the click redirect: it answers its errors with a plain HTML page.
        and (method, path) != ("get", "/r/{code}")
    ]
    assert wrong == []
