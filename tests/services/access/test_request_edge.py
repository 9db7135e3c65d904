"""The edge every route passes: Idempotency-Key, rate limits, body size and content type.

A small router of the test's own stands in for "a POST that creates something", so each guarantee is
seen apart from any one service's rules; it runs inside a real service app on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import Response, status
from pydantic import BaseModel
from sqlalchemy import Table, func, select, update

from services.kpi.app import DEFINITION
from shared.auth.keys import create_key
from shared.bus.embedded import EmbeddedBus
from shared.errors import AlreadyExists
from shared.runtime import ServiceDefinition, ServiceRuntime
from shared.settings import RateLimit
from shared.testing.apps import service_client
from shared.web.auth import AffiliateDep, requires
from shared.web.deps import RuntimeDep, SessionDep
from shared.web.routing import api_router


class Thing(BaseModel):
    name: str


class Made(BaseModel):
    number: int
    name: str


class Workshop:
    """Counts what the endpoint really did, and can hold a request half-way."""

    def __init__(self) -> None:
        self.numbers = itertools.count(1)
        self.made: list[int] = []
        self.hold: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.fail_next = False


def _definition(workshop: Workshop) -> ServiceDefinition:
    router = api_router(prefix="/v1/things", tags=["things"])

    @router.post("", status_code=status.HTTP_201_CREATED, dependencies=[requires("kpi:write")])
    async def make(body: Thing, response: Response) -> Made:
        workshop.entered.set()
        if workshop.hold is not None:
            await workshop.hold.wait()
        if workshop.fail_next:
            workshop.fail_next = False
            raise RuntimeError("the workshop caught fire")
        number = next(workshop.numbers)
        workshop.made.append(number)
        response.headers["Location"] = f"/v1/things/{number}"
        return Made(number=number, name=body.name)

    @router.get("/count", dependencies=[requires("kpi:read")])
    async def count() -> int:
        return len(workshop.made)

    @router.post("/keys", status_code=status.HTTP_201_CREATED, dependencies=[requires("kpi:write")])
    async def make_key(body: Thing, session: SessionDep, runtime: RuntimeDep) -> Thing:
        """Writes through the session dependency, as most endpoints do; a name of `taken` writes a row
        and then fails, so the row must be rolled back."""
        definition = runtime.definition
        await create_key(session, definition.access, definition.event_outbox, scopes=["kpi:read"])
        if body.name == "taken":
            raise AlreadyExists("That name is taken.", existing_id="k-0")
        return body

    @router.get("/mine", dependencies=[requires("referrals:read")])
    async def mine(principal: AffiliateDep) -> dict[str, str | None]:
        return {"affiliate_id": principal.affiliate_id}

    @router.get("/everyones", dependencies=[requires("referrals:read")])
    async def everyones() -> dict[str, str]:
        return {"all": "affiliates"}

    @router.get("/posted", dependencies=[requires("referrals:read", affiliate_keys=True)])
    async def posted() -> dict[str, str]:
        return {"open": "to affiliates"}

    @router.post("/small", dependencies=[requires("kpi:write")], openapi_extra={"x-max-body-bytes": 64})
    async def small(body: Thing) -> Thing:
        return body

    fields = {**DEFINITION.__dict__, "routers": [*DEFINITION.routers, router]}
    return ServiceDefinition(**fields)


@pytest.fixture
def workshop() -> Workshop:
    return Workshop()


@pytest.fixture
async def api(
    workshop: Workshop, database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, ServiceRuntime]]:
    async with service_client(
        _definition(workshop),
        database_url=database_url,
        bus=local_bus,
        data_dir=tmp_path,
        max_body_bytes=4096,
        rate_limits={"kpi:read": RateLimit(per_second=0.5, burst=3)},
    ) as pair:
        yield pair


def _key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


async def _count(runtime: ServiceRuntime, table: Table) -> int:
    async with runtime.database.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def _records(runtime: ServiceRuntime) -> int:
    return await _count(runtime, runtime.definition.access.idempotency)


async def _key_rows(runtime: ServiceRuntime) -> int:
    return await _count(runtime, runtime.definition.access.api_keys)


async def test_a_repeat_gets_the_first_answer_marked_as_a_replay(
    api: tuple[httpx.AsyncClient, ServiceRuntime], workshop: Workshop
) -> None:
    client, _ = api
    first = await client.post("/v1/things", json={"name": "chair"}, headers=_key("k-1"))
    again = await client.post("/v1/things", json={"name": "chair"}, headers=_key("k-1"))
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() == {"number": 1, "name": "chair"}
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert workshop.made == [1]

    other = await client.post("/v1/things", json={"name": "chair"}, headers=_key("k-2"))
    unkeyed = await client.post("/v1/things", json={"name": "chair"})
    assert (other.json()["number"], unkeyed.json()["number"]) == (2, 3)


async def test_the_same_key_with_another_body_is_a_422_and_runs_nothing(
    api: tuple[httpx.AsyncClient, ServiceRuntime], workshop: Workshop
) -> None:
    client, _ = api
    await client.post("/v1/things", json={"name": "chair"}, headers=_key("k-1"))
    reused = await client.post("/v1/things", json={"name": "table"}, headers=_key("k-1"))
    assert reused.status_code == 422
    assert reused.headers["content-type"] == "application/problem+json"
    assert reused.json()["type"].endswith("idempotency-key-reused")
    assert workshop.made == [1]


async def test_a_repeat_while_the_first_runs_is_a_409(
    api: tuple[httpx.AsyncClient, ServiceRuntime], workshop: Workshop
) -> None:
    client, _ = api
    workshop.hold = asyncio.Event()
    first = asyncio.create_task(client.post("/v1/things", json={"name": "chair"}, headers=_key("k-1")))
    await workshop.entered.wait()
    meanwhile = await client.post("/v1/things", json={"name": "chair"}, headers=_key("k-1"))
    assert meanwhile.status_code == 409
    assert meanwhile.headers["retry-after"] == "1"
    workshop.hold.set()
    assert (await first).status_code == 201
    after = await client.post("/v1/things", json={"name": "chair"}, headers=_key("k-1"))
    assert after.headers["idempotent-replayed"] == "true"
    assert workshop.made == [1]


async def test_a_failed_request_is_not_kept_so_a_retry_runs(
    api: tuple[httpx.AsyncClient, ServiceRuntime], workshop: Workshop
) -> None:
    client, runtime = api
    workshop.fail_next = True
    transport = httpx.ASGITransport(app=client._transport.app, raise_app_exceptions=False)  # type: ignore[attr-defined]
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=client.headers
    ) as raw:
        crashed = await raw.post("/v1/things", json={"name": "chair"}, headers=_key("k-1"))
    assert crashed.status_code == 500
    assert await _records(runtime) == 0
    retried = await client.post("/v1/things", json={"name": "chair"}, headers=_key("k-1"))
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers
    assert workshop.made == [1]


async def test_keys_belong_to_their_caller_and_expire(
    api: tuple[httpx.AsyncClient, ServiceRuntime], workshop: Workshop
) -> None:
    client, runtime = api
    other = (await client.post("/v1/keys", json={"scopes": ["kpi:write"]})).json()["key"]
    mine = await client.post("/v1/things", json={"name": "chair"}, headers=_key("k-1"))
    theirs = await client.post(
        "/v1/things", json={"name": "chair"}, headers={**_key("k-1"), "Authorization": f"Bearer {other}"}
    )
    assert (mine.json()["number"], theirs.json()["number"]) == (1, 2)

    async with runtime.database.sessionmaker() as session, session.begin():
        table = runtime.definition.access.idempotency
        await session.execute(update(table).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert await runtime.idempotency.prune() == 2
    fresh = await client.post("/v1/things", json={"name": "chair"}, headers=_key("k-1"))
    assert "idempotent-replayed" not in fresh.headers
    assert workshop.made == [1, 2, 3]


async def test_an_unauthenticated_repeat_is_refused_before_any_replay(
    api: tuple[httpx.AsyncClient, ServiceRuntime],
) -> None:
    client, runtime = api
    await client.post("/v1/things", json={"name": "chair"}, headers=_key("k-1"))
    anonymous = await client.post(
        "/v1/things", json={"name": "chair"}, headers={**_key("k-1"), "Authorization": ""}
    )
    assert anonymous.status_code == 401
    bad_key = await client.post("/v1/things", json={"name": "chair"}, headers=_key("no spaces allowed"))
    assert bad_key.status_code == 422
    assert bad_key.json()["errors"][0]["field"] == "Idempotency-Key"
    assert await _records(runtime) == 1


async def test_rate_limits_answer_429_with_retry_after_per_key_and_scope(
    api: tuple[httpx.AsyncClient, ServiceRuntime],
) -> None:
    client, _ = api
    one = (await client.post("/v1/keys", json={"scopes": ["kpi:read", "kpi:write"]})).json()["key"]
    two = (await client.post("/v1/keys", json={"scopes": ["kpi:read"]})).json()["key"]
    first, second = {"Authorization": f"Bearer {one}"}, {"Authorization": f"Bearer {two}"}

    # kpi:read: a burst of 3, then one every 2 s.
    answers = [await client.get("/v1/things/count", headers=first) for _ in range(4)]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused.headers["retry-after"] == "2"
    assert refused.headers["content-type"] == "application/problem+json"
    assert "kpi:read" in refused.json()["detail"]

    assert (await client.get("/v1/things/count", headers=second)).status_code == 200  # its own bucket
    made = await client.post("/v1/things", json={"name": "x"}, headers=first)
    assert made.status_code == 201  # another scope, another bucket (the default limit)
    assert (await client.get("/openapi.json")).status_code == 200  # public: no key, no bucket


async def test_bodies_too_large_or_not_json_are_refused_before_the_endpoint(
    api: tuple[httpx.AsyncClient, ServiceRuntime], workshop: Workshop
) -> None:
    client, _ = api
    huge = await client.post("/v1/things", json={"name": "x" * 5000})
    assert huge.status_code == 413
    assert huge.headers["content-type"] == "application/problem+json"
    route_limit = await client.post("/v1/things/small", json={"name": "x" * 100})
    assert route_limit.status_code == 413
    assert route_limit.headers["content-type"] == "application/problem+json"
    assert (await client.post("/v1/things/small", json={"name": "ok"})).status_code == 200

    form = await client.post("/v1/things", content=b"name=chair", headers={"Content-Type": "text/plain"})
    assert form.status_code == 415
    assert form.headers["content-type"] == "application/problem+json"
    assert "application/json" in form.json()["detail"]
    merge_patch = await client.post(
        "/v1/things", content=b'{"name": "chair"}', headers={"Content-Type": "application/merge-patch+json"}
    )
    assert merge_patch.status_code == 201
    assert workshop.made == [1]


async def test_a_key_bound_to_an_affiliate_is_a_principal_of_its_own(
    api: tuple[httpx.AsyncClient, ServiceRuntime],
) -> None:
    client, _ = api
    created = await client.post("/v1/keys", json={"scopes": ["referrals:read"], "affiliate_id": "aff-7"})
    affiliate = {"Authorization": f"Bearer {created.json()['key']}"}
    assert (await client.get("/v1/things/mine", headers=affiliate)).json() == {"affiliate_id": "aff-7"}
    admin = await client.get("/v1/things/mine")
    assert admin.status_code == 403
    assert "affiliate" in admin.json()["detail"]


async def test_a_key_bound_to_an_affiliate_gets_only_the_routes_open_to_affiliates(
    api: tuple[httpx.AsyncClient, ServiceRuntime],
) -> None:
    client, _ = api
    created = await client.post("/v1/keys", json={"scopes": ["referrals:read"], "affiliate_id": "aff-7"})
    affiliate = {"Authorization": f"Bearer {created.json()['key']}"}
    # The scope would let it in; the route does not open itself to affiliates, so it is refused.
    refused = await client.get("/v1/things/everyones", headers=affiliate)
    assert refused.status_code == 403
    assert "/v1/me" in refused.json()["detail"]
    assert (await client.get("/v1/things/posted", headers=affiliate)).json() == {"open": "to affiliates"}
    # Other keys are not affected.
    assert (await client.get("/v1/things/everyones")).json() == {"all": "affiliates"}


async def test_an_idempotent_post_commits_before_its_answer_is_kept(
    api: tuple[httpx.AsyncClient, ServiceRuntime],
) -> None:
    client, runtime = api
    # On SQLite, keeping the answer while the request's transaction is open would wait for ever.
    first = await asyncio.wait_for(
        client.post("/v1/things/keys", json={"name": "ok"}, headers=_key("s-1")), timeout=10
    )
    again = await client.post("/v1/things/keys", json={"name": "ok"}, headers=_key("s-1"))
    assert (first.status_code, again.headers["idempotent-replayed"]) == (201, "true")
    assert await _key_rows(runtime) == 1


async def test_an_idempotent_post_that_fails_writes_nothing_and_replays_its_failure(
    api: tuple[httpx.AsyncClient, ServiceRuntime],
) -> None:
    client, runtime = api
    refused = await client.post("/v1/things/keys", json={"name": "taken"}, headers=_key("f-1"))
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert await _key_rows(runtime) == 0, "the failed request's write must roll back"
    again = await client.post("/v1/things/keys", json={"name": "taken"}, headers=_key("f-1"))
    assert (again.status_code, again.headers["idempotent-replayed"]) == (409, "true")
    assert again.json()["detail"] == refused.json()["detail"]
    assert await _key_rows(runtime) == 0


async def test_expired_idempotency_records_are_deleted_when_a_service_starts(
    workshop: Workshop, database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    definition = _definition(workshop)
    async with service_client(definition, database_url=database_url, bus=local_bus, data_dir=tmp_path) as (
        client,
        runtime,
    ):
        await client.post("/v1/things", json={"name": "chair"}, headers=_key("k-1"))
        async with runtime.database.sessionmaker() as session, session.begin():
            table = runtime.definition.access.idempotency
            await session.execute(update(table).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    async with service_client(definition, database_url=database_url, bus=local_bus, data_dir=tmp_path) as (
        _client,
        runtime,
    ):
        assert await _records(runtime) == 0


async def test_an_address_presenting_bad_keys_is_slowed_down_and_good_keys_are_not(
    api: tuple[httpx.AsyncClient, ServiceRuntime],
) -> None:
    client, _ = api
    bad = {"Authorization": "Bearer crm_0123456789abcdef_not-a-secret"}
    answers = [(await client.get("/v1/things/count", headers=bad)).status_code for _ in range(21)]
    assert answers == [401] * 20 + [429]  # the default burst for bad keys is 20 per address
    refused = await client.get("/v1/things/count", headers=bad)
    assert refused.headers["retry-after"] == "1"
    assert "bad API keys" in refused.json()["detail"]
    assert (await client.get("/v1/keys")).status_code == 200  # the admin key needs no lookup
