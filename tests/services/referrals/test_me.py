"""The affiliate's own API: a key bound to an affiliate reads its links, clicks, conversions,
commissions, payouts and stats under `/v1/me`, and nothing of another affiliate's."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.bus.embedded import EmbeddedBus
from tests.services.referrals.commission_support import (
    affiliate_key,
    affiliate_world,
    change_status,
    no_background_sweep,
    record,
)
from tests.services.referrals.support import (
    make_affiliate,
    make_click,
    make_link,
    make_program,
    referrals_api,
)

__all__ = ["no_background_sweep"]

T0 = datetime(2026, 10, 5, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


async def test_an_affiliate_sees_its_own_rows_and_another_affiliates_ids_answer_404(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        ada, bea = await make_affiliate(runtime), await make_affiliate(runtime, name="Bea")
        adas, beas = await affiliate_world(client, runtime, ada), await affiliate_world(client, runtime, bea)
        as_ada = await affiliate_key(client, ada)

        me = await client.get("/v1/me", headers=as_ada)
        assert (me.status_code, me.json()["id"], me.json()["name"]) == (200, str(ada.id), "Ada's Reviews")
        for collection, parameter in [
            ("links", "link_id"),
            ("clicks", "click_id"),
            ("conversions", "conversion_id"),
            ("commissions", "commission_id"),
            ("payouts", "payout_id"),
        ]:
            listed = await client.get(f"/v1/me/{collection}", headers=as_ada)
            assert listed.status_code == 200, listed.text
            assert [item["id"] for item in listed.json()["items"]] == [adas[parameter]], collection

        # Every `/v1/me` route with an id in its path, as the OpenAPI document lists them (so a route
        # added later is covered): Ada's own id answers, Bea's answers 404 as an unknown id would.
        document = (await client.get("/openapi.json")).json()
        templated = [path for path in document["paths"] if path.startswith("/v1/me/") and "{" in path]
        assert len(templated) == 5
        for template in templated:
            parameter = re.findall(r"{(\w+)}", template)[0]
            mine = await client.get(template.replace(f"{{{parameter}}}", adas[parameter]), headers=as_ada)
            assert (mine.status_code, mine.json()["id"]) == (200, adas[parameter]), template
            theirs = await client.get(template.replace(f"{{{parameter}}}", beas[parameter]), headers=as_ada)
            assert theirs.status_code == 404, template
            assert theirs.headers["content-type"].startswith("application/problem+json")
        commission = await client.get(f"/v1/me/commissions/{adas['commission_id']}", headers=as_ada)
        assert [entry["entry"] for entry in commission.json()["ledger"]] == ["earned", "approved", "paid"]

        # The staff API stays closed to Ada's key, and `/v1/me` to keys bound to no affiliate.
        for path in ("/v1/commissions", f"/v1/commissions/{beas['commission_id']}", "/v1/payouts"):
            assert (await client.get(path, headers=as_ada)).status_code == 403, path
        assert (await client.get(f"/v1/affiliates/{bea.id}/balance", headers=as_ada)).status_code == 403
        assert (await client.post("/v1/commissions/approve-due", headers=as_ada)).status_code == 403
        assert (await client.get("/v1/me")).status_code == 403  # the admin key
        assert (await client.get("/v1/me/links", headers={"Authorization": "Bearer nope"})).status_code == 401


async def test_stats_count_clicks_conversions_and_earnings_in_the_period(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program = await make_program(runtime)
        ada, bea = await make_affiliate(runtime), await make_affiliate(runtime, name="Bea")
        link, beas_link = await make_link(runtime, program, ada), await make_link(runtime, program, bea)
        for at in (T0, T0, T0 + DAY, T0 + DAY):
            await make_click(runtime, link, clicked_at=at)
        await make_click(runtime, link, clicked_at=T0, is_bot=True)
        await make_click(runtime, link, clicked_at=T0 - 10 * DAY)  # before the period
        await make_click(runtime, beas_link, clicked_at=T0)
        await record(runtime, program, ada, amount=10_000, occurred_at=T0)
        await record(runtime, program, ada, amount=20_005, occurred_at=T0 + DAY)
        refunded = await record(runtime, program, ada, amount=50_000, occurred_at=T0 + DAY)
        await change_status(runtime, refunded.id, "refunded")  # converted; earns nothing any more
        rejected = await record(runtime, program, ada, amount=50_000, occurred_at=T0 + DAY)
        await change_status(runtime, rejected.id, "rejected")
        await record(runtime, program, ada, amount=70_000, occurred_at=T0 + 3 * DAY)  # after it
        await record(runtime, program, bea, amount=90_000, occurred_at=T0)
        as_ada = await affiliate_key(client, ada)

        period = {"since": (T0 - DAY).isoformat(), "until": (T0 + 2 * DAY).isoformat()}
        stats = await client.get("/v1/me/stats", params=period, headers=as_ada)
        assert stats.status_code == 200, stats.text
        body: dict[str, Any] = stats.json()
        assert (body["clicks"], body["conversions"], body["conversion_rate"]) == (4, 3, 0.75)
        # 1,000 + 2,001 over four clicks.
        assert body["earnings"] == [{"currency": "EUR", "amount": 3001, "epc": 750.25}]
        assert body["earnings_per_day"] == [
            {"day": "2026-10-05", "currency": "EUR", "amount": 1000},
            {"day": "2026-10-06", "currency": "EUR", "amount": 2001},
        ]

        quiet = {"since": (T0 - 9 * DAY).isoformat(), "until": (T0 - 8 * DAY).isoformat()}
        empty = (await client.get("/v1/me/stats", params=quiet, headers=as_ada)).json()
        assert (empty["clicks"], empty["conversion_rate"], empty["earnings"]) == (0, None, [])
        backwards = {"since": period["until"], "until": period["since"]}
        assert (await client.get("/v1/me/stats", params=backwards, headers=as_ada)).status_code == 422
        too_long = {"since": (T0 - 400 * DAY).isoformat(), "until": T0.isoformat()}
        assert (await client.get("/v1/me/stats", params=too_long, headers=as_ada)).status_code == 422
        naive = {"since": "2026-10-01T00:00:00"}
        assert (await client.get("/v1/me/stats", params=naive, headers=as_ada)).status_code == 422
        assert (await client.get("/v1/me/stats", headers=as_ada)).status_code == 200


async def test_a_key_bound_to_no_known_affiliate_reads_nothing(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, _):
        for bound_to in (str(uuid.uuid4()), "aff-7"):
            created = await client.post(
                "/v1/keys", json={"scopes": ["referrals:read"], "affiliate_id": bound_to}
            )
            headers = {"Authorization": f"Bearer {created.json()['key']}"}
            assert (await client.get("/v1/me", headers=headers)).status_code == 404
            listed = await client.get("/v1/me/commissions", headers=headers)
            assert listed.status_code == (200 if bound_to != "aff-7" else 404)
