"""`/v1/programs`: created with validated rules, read with ETags, patched under If-Match, archived."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from services.referrals.programs.models import Program
from shared.bus.base import EventBus
from tests.services.contacts.sales_support import error_fields, problem
from tests.services.referrals.support import referrals_api, session_of

RULES = [
    {"goal": "lead", "type": "fixed", "amount": 500},
    {
        "goal": "sale",
        "type": "percent",
        "percent": "10",
        "tiers": [{"from_count": 10, "type": "percent", "percent": "12.5"}],
        "recurring_months": 12,
    },
]


async def _create(client: httpx.AsyncClient, **fields: Any) -> httpx.Response:
    return await client.post(
        "/v1/programs", json={"key": "partners-eu", "name": "EU partners", "currency": "EUR", **fields}
    )


async def test_a_program_is_created_with_defaults_and_read_back(
    database_url: str, local_bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, _runtime):
        created = await _create(
            client, commission_rules=RULES, referral_rewards={"referrer": {"type": "fixed", "amount": 1000}}
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert (body["attribution_model"], body["window_days"], body["hold_days"]) == ("last_click", 30, 30)
        assert body["count_purchases"] is False
        assert body["status"] == "active"
        assert body["commission_rules"][1]["tiers"][0]["percent"] == "12.5"
        assert body["referral_rewards"]["referrer"]["amount"] == 1000
        read = await client.get(created.headers["location"])
        assert read.json() == body
        assert read.headers["etag"] == created.headers["etag"] == '"1"'
        assert (
            await client.get(created.headers["location"], headers={"If-None-Match": '"1"'})
        ).status_code == 304
        listed = await client.get("/v1/programs")
        assert [item["id"] for item in listed.json()["items"]] == [body["id"]]


async def test_bad_rules_currency_and_model_are_422_naming_the_field_and_write_nothing(
    database_url: str, local_bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        assert error_fields(await _create(client, currency="EURO")) == ["currency"]
        assert error_fields(await _create(client, currency="XYZ")) == ["currency"]
        assert error_fields(await _create(client, attribution_model="linear")) == ["attribution_model"]
        assert error_fields(await _create(client, window_days=0)) == ["window_days"]
        fixed_without_amount = [{"goal": "sale", "type": "fixed", "percent": "5"}]
        assert error_fields(await _create(client, commission_rules=fixed_without_amount)) == [
            "commission_rules.0"
        ]
        twice = [
            {"goal": "sale", "type": "fixed", "amount": 1},
            {"goal": "sale", "type": "fixed", "amount": 2},
        ]
        assert error_fields(await _create(client, commission_rules=twice)) == ["commission_rules"]
        tiers_down = [
            {
                "goal": "sale",
                "type": "fixed",
                "amount": 1,
                "tiers": [
                    {"from_count": 5, "type": "fixed", "amount": 2},
                    {"from_count": 3, "type": "fixed", "amount": 3},
                ],
            }
        ]
        assert error_fields(await _create(client, commission_rules=tiers_down)) == ["commission_rules.0"]
        assert error_fields(await _create(client, key="Not A Key")) == ["key"]
        async with session_of(runtime) as session:
            assert await session.scalar(select(func.count()).select_from(Program)) == 0


async def test_a_taken_key_is_409_with_the_existing_id(
    database_url: str, local_bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, _runtime):
        first = (await _create(client)).json()
        assert problem(await _create(client), 409)["existing_id"] == first["id"]


async def test_patch_under_if_match_and_archive(
    database_url: str, local_bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, _runtime):
        created = await _create(client)
        url = created.headers["location"]
        patched = await client.patch(
            url, json={"attribution_model": "first_click", "hold_days": 0}, headers={"If-Match": '"1"'}
        )
        assert patched.status_code == 200, patched.text
        assert (patched.json()["attribution_model"], patched.json()["hold_days"]) == ("first_click", 0)
        assert patched.headers["etag"] == '"2"'
        stale = await client.patch(url, json={"name": "Other"}, headers={"If-Match": '"1"'})
        assert problem(stale, 412)
        assert stale.headers["etag"] == '"2"'
        assert error_fields(await client.patch(url, json={"window_days": None})) == ["window_days"]
        assert error_fields(await client.patch(url, json={"currency": "USD"})) == ["currency"]
        same = await client.patch(url, json={"hold_days": 0})
        assert same.headers["etag"] == '"2"'  # nothing changed, no new version
        archived = await client.post(f"{url}/archive")
        assert archived.json()["status"] == "archived"
        assert (await client.post(f"{url}/archive")).headers["etag"] == archived.headers["etag"]
        problem(await client.get("/v1/programs/00000000-0000-0000-0000-000000000000"), 404)


async def test_writing_needs_referrals_write(database_url: str, local_bus: EventBus, tmp_path: Path) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, _runtime):
        key = await client.post("/v1/keys", json={"scopes": ["referrals:read"]})
        reader = {"Authorization": f"Bearer {key.json()['key']}"}
        problem(await client.post("/v1/programs", json={}, headers=reader), 403)
        assert (await client.get("/v1/programs", headers=reader)).status_code == 200
