"""`GET /v1/clicks`: the clicks recorded, newest first, by link, affiliate, program and time."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from shared.bus.base import EventBus
from shared.db import utc_now
from tests.services.contacts.sales_support import error_fields, problem
from tests.services.referrals.support import (
    make_affiliate,
    make_click,
    make_link,
    make_program,
    referrals_api,
)


async def test_clicks_are_listed_newest_first_with_filters_and_cursors(
    database_url: str, local_bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        one, other = await make_program(runtime), await make_program(runtime)
        ada, bob = await make_affiliate(runtime), await make_affiliate(runtime, name="Bob")
        ada_one, bob_other = await make_link(runtime, one, ada), await make_link(runtime, other, bob)
        now = utc_now()
        made = [
            await make_click(runtime, link, clicked_at=now - timedelta(hours=hours), is_bot=hours == 3)
            for hours, link in enumerate([ada_one, bob_other, ada_one, ada_one, bob_other])
        ]

        async def listed(**params: str) -> list[str]:
            found: list[str] = []
            cursor: str | None = None
            while True:
                query = {**params, "limit": "2", **({"cursor": cursor} if cursor else {})}
                answer = await client.get("/v1/clicks", params=query)
                assert answer.status_code == 200, answer.text
                found += [item["id"] for item in answer.json()["items"]]
                cursor = answer.json()["next_cursor"]
                if cursor is None:
                    return found

        assert await listed() == [click.id for click in made]
        assert await listed(link_id=str(ada_one.id)) == [made[0].id, made[2].id, made[3].id]
        assert await listed(affiliate_id=str(bob.id)) == [made[1].id, made[4].id]
        assert await listed(program_id=str(one.id), since=(now - timedelta(hours=2)).isoformat()) == [
            made[0].id,
            made[2].id,
        ]
        assert await listed(until=(now - timedelta(hours=2)).isoformat()) == [made[3].id, made[4].id]
        first = (await client.get("/v1/clicks", params={"link_id": str(ada_one.id), "limit": 1})).json()
        assert first["items"][0]["is_bot"] is False
        assert first["items"][0]["code"] == ada_one.code
        assert error_fields(await client.get("/v1/clicks", params={"since": "2026-01-01T00:00:00"})) == [
            "since"
        ]
        assert error_fields(await client.get("/v1/clicks", params={"link_id": "nope"})) == ["link_id"]


async def test_clicks_need_referrals_read(database_url: str, local_bus: EventBus, tmp_path: Path) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, _runtime):
        key = await client.post("/v1/keys", json={"scopes": ["contacts:read"]})
        problem(await client.get("/v1/clicks", headers={"Authorization": f"Bearer {key.json()['key']}"}), 403)
