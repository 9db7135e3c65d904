"""Postbacks signed by their source (HMAC-SHA256 over timestamp and body) instead of an API key."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from services.referrals.conversions.signing import sign
from shared.bus.embedded import EmbeddedBus
from shared.db import utc_now
from tests.services.referrals.postback_support import counts
from tests.services.referrals.support import (
    make_affiliate,
    make_click,
    make_link,
    make_program,
    outbox_events,
    referrals_api,
)


async def signed(
    client: httpx.AsyncClient,
    name: str,
    secret: str,
    body: dict[str, Any],
    *,
    at: int | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    raw = json.dumps(body).encode()
    timestamp = at if at is not None else int(time.time())
    signature = f"t={timestamp},v1={sign(secret, timestamp, raw)}"
    return await client.post(
        f"/v1/postback-sources/{name}/postbacks",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-CRM-Signature": signature,
            "Authorization": "",
            **(headers or {}),
        },
    )


async def test_a_signed_postback_needs_no_key_and_a_bad_or_old_signature_is_refused(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program = await make_program(runtime)
        affiliate = await make_affiliate(runtime)
        click = await make_click(
            runtime, await make_link(runtime, program, affiliate), clicked_at=utc_now() - timedelta(hours=1)
        )
        created = await client.post("/v1/postback-sources", json={"name": "shopify", "description": "Shop"})
        assert created.status_code == 201
        secret = created.json()["secret"]
        listed = (await client.get("/v1/postback-sources")).json()
        assert listed == [
            {"name": "shopify", "description": "Shop", "created_at": created.json()["created_at"]}
        ]
        taken = await client.post("/v1/postback-sources", json={"name": "shopify"})
        assert taken.status_code == 409
        body = {"click_id": click.id, "order_id": "s-1", "amount": 2500}

        first = await signed(client, "shopify", secret, body)
        assert first.status_code == 201, first.text
        conversion = first.json()["conversion"]
        assert (conversion["source"], conversion["affiliate_id"]) == ("shopify", str(affiliate.id))
        # A copy replayed inside the window is a retry: a duplicate.
        again = await signed(client, "shopify", secret, body)
        assert again.json()["duplicate"] is True

        refused = [
            await signed(client, "shopify", "wrong secret", {**body, "order_id": "s-2"}),
            await signed(client, "shopify", secret, {**body, "order_id": "s-3"}, at=int(time.time()) - 301),
            await signed(client, "nobody", secret, {**body, "order_id": "s-4"}),
            await client.post(
                "/v1/postback-sources/shopify/postbacks",
                json={**body, "order_id": "s-5"},
                headers={"Authorization": ""},
            ),
        ]
        assert [answer.status_code for answer in refused] == [401] * 4
        assert all(answer.headers["content-type"] == "application/problem+json" for answer in refused)
        assert "300 s" in refused[1].json()["detail"]
        # The signature covers the body: the same signature on another body is refused.
        raw = json.dumps(body).encode()
        now = int(time.time())
        tampered = await client.post(
            "/v1/postback-sources/shopify/postbacks",
            content=raw.replace(b"2500", b"9900"),
            headers={
                "Content-Type": "application/json",
                "X-CRM-Signature": f"t={now},v1={sign(secret, now, raw)}",
                "Authorization": "",
            },
        )
        assert tampered.status_code == 401
        assert await counts(runtime) == (1, 2)
        assert [e["type"] for e in await outbox_events(runtime, "crm.conversion.")] == [
            "crm.conversion.recorded",
            "crm.conversion.duplicate",
        ]


async def test_a_signed_postback_with_bad_fields_is_a_422_naming_them(
    local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'referrals.sqlite'}"
    async with referrals_api(url, local_bus, tmp_path) as (client, runtime):
        await make_program(runtime)
        secret = (await client.post("/v1/postback-sources", json={"name": "s"})).json()["secret"]
        answer = await signed(client, "s", secret, {"click_id": "c", "txid": "t", "amount": "12.50"})
        assert answer.status_code == 422
        assert [error["field"] for error in answer.json()["errors"]] == ["amount"]
        assert await counts(runtime) == (0, 0)
