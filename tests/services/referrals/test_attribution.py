"""Attribution: the program's rule and window over the visitor's clicks, codes, customers, and the reasons
a conversion credits no one; `GET /v1/conversions/{id}/attribution` explains each."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from services.referrals.affiliates.models import Affiliate
from shared.bus.embedded import EmbeddedBus
from shared.db import utc_now
from tests.services.referrals.postback_support import post, postback_key
from tests.services.referrals.support import (
    make_affiliate,
    make_click,
    make_link,
    make_program,
    referrals_api,
    session_of,
)


async def explained(client: httpx.AsyncClient, conversion: dict[str, Any]) -> dict[str, Any]:
    answer = await client.get(f"/v1/conversions/{conversion['id']}/attribution")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def days_ago(days: float) -> datetime:
    return utc_now() - timedelta(days=days)


@pytest.mark.parametrize(("model", "expected"), [("last_click", "b"), ("first_click", "a")])
async def test_the_programs_rule_picks_among_the_visitors_clicks_inside_the_window(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path, model: str, expected: str
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program = await make_program(runtime, attribution_model=model, window_days=30)
        affiliates = {name: await make_affiliate(runtime, name=name) for name in ("old", "a", "b", "bot")}
        links = {name: await make_link(runtime, program, affiliate) for name, affiliate in affiliates.items()}
        visitor = "visitor-1"
        old = await make_click(runtime, links["old"], visitor_id=visitor, clicked_at=days_ago(40))
        a = await make_click(runtime, links["a"], visitor_id=visitor, clicked_at=days_ago(20))
        b = await make_click(runtime, links["b"], visitor_id=visitor, clicked_at=days_ago(5))
        bot = await make_click(runtime, links["bot"], visitor_id=visitor, clicked_at=days_ago(1), is_bot=True)
        # Another visitor's click and another program's click are no candidates.
        await make_click(runtime, links["a"], visitor_id="someone-else", clicked_at=days_ago(2))
        other_program = await make_program(runtime)
        await make_click(
            runtime,
            await make_link(runtime, other_program, affiliates["a"]),
            visitor_id=visitor,
            clicked_at=days_ago(2),
        )
        key = await postback_key(client)

        # The postback names the bot's click: the visitor's other clicks are the candidates.
        taken = (await post(client, key, {"click_id": bot.id, "transaction_id": "t-1"})).json()
        conversion = taken["conversion"]
        assert conversion["affiliate_id"] == str(affiliates[expected].id)
        winner = {"a": a, "b": b}[expected]
        assert (conversion["click_id"], conversion["link_id"]) == (winner.id, str(links[expected].id))

        explanation = await explained(client, conversion)
        assert explanation["rule"] == model
        assert explanation["named_click_id"] == bot.id
        assert explanation["window"]["days"] == 30
        window_end = datetime.fromisoformat(explanation["window"]["ends_at"])
        assert datetime.fromisoformat(explanation["window"]["starts_at"]) == window_end - timedelta(days=30)
        candidates = {c["click_id"]: (c["in_window"], c["is_bot"]) for c in explanation["candidates"]}
        assert candidates == {
            old.id: (False, False),
            a.id: (True, False),
            b.id: (True, False),
            bot.id: (True, True),
        }
        assert explanation["winner"] == {
            "affiliate_id": str(affiliates[expected].id),
            "link_id": str(links[expected].id),
            "click_id": winner.id,
            "conversion_id": None,
        }
        assert explanation["reason"] is None


async def test_conversions_that_credit_no_one_are_kept_with_the_reason(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program = await make_program(runtime, window_days=7)
        affiliate = await make_affiliate(runtime)
        link = await make_link(runtime, program, affiliate)
        expired = await make_click(runtime, link, clicked_at=days_ago(8))
        bot = await make_click(runtime, link, clicked_at=days_ago(1), is_bot=True)
        key = await postback_key(client)

        cases = {
            "click_expired": {"click_id": expired.id},
            "bot_click": {"click_id": bot.id},
            "unknown_click": {"click_id": "never-issued"},
            "unknown_code": {"code": "no-such-code"},
            "no_click": {"customer_id": "never-seen"},
        }
        for reason, names in cases.items():
            answer = await post(client, key, {**names, "transaction_id": reason})
            assert answer.status_code == 201, answer.text
            conversion = answer.json()["conversion"]
            assert (conversion["attributed"], conversion["unattributed_reason"]) == (False, reason)
            explanation = await explained(client, conversion)
            assert explanation["reason"] == reason
            assert explanation["winner"] is None
        expired_explanation = await explained(
            client, (await client.get("/v1/conversions", params={"attributed": "false"})).json()["items"][-1]
        )
        assert expired_explanation["candidates"][0]["in_window"] is False

        # A suspended affiliate is credited nothing.
        async with session_of(runtime) as session:
            await session.execute(
                update(Affiliate).where(Affiliate.id == affiliate.id).values(status="suspended")
            )
        fresh = await make_click(runtime, link, clicked_at=days_ago(1))
        suspended = (await post(client, key, {"click_id": fresh.id, "transaction_id": "suspended"})).json()
        assert suspended["conversion"]["unattributed_reason"] == "inactive_affiliate"

        listed = (await client.get("/v1/conversions", params={"attributed": "false", "limit": 200})).json()
        assert len(listed["items"]) == 6


async def test_a_code_credits_its_link_and_a_customer_credits_their_first_affiliate(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program = await make_program(runtime, key="saas")
        await make_program(runtime)
        first, later = (
            await make_affiliate(runtime, name="first"),
            await make_affiliate(runtime, name="later"),
        )
        first_link = await make_link(runtime, program, first, code="ADA10")
        later_click = await make_click(
            runtime, await make_link(runtime, program, later), clicked_at=days_ago(1)
        )
        key = await postback_key(client)

        by_code = (
            await post(client, key, {"code": "ADA10", "transaction_id": "m-1", "customer_id": "cus-1"})
        ).json()
        assert by_code["conversion"]["affiliate_id"] == str(first.id)
        assert (by_code["conversion"]["link_id"], by_code["conversion"]["click_id"]) == (
            str(first_link.id),
            None,
        )
        assert (await explained(client, by_code["conversion"]))["rule"] == "code"

        # A renewal names only the customer (and the program): the affiliate of their first conversion.
        renewal = await post(
            client, key, {"customer_id": "cus-1", "program": "saas", "transaction_id": "m-2"}
        )
        assert renewal.json()["conversion"]["affiliate_id"] == str(first.id)
        explanation = await explained(client, renewal.json()["conversion"])
        assert explanation["rule"] == "customer"
        assert explanation["winner"]["conversion_id"] == by_code["conversion"]["id"]
        # A click wins over the customer's history.
        clicked = await post(
            client, key, {"click_id": later_click.id, "customer_id": "cus-1", "transaction_id": "m-3"}
        )
        assert clicked.json()["conversion"]["affiliate_id"] == str(later.id)
        # By program id too.
        by_id = await post(
            client, key, {"customer_id": "cus-1", "program": str(program.id), "transaction_id": "m-4"}
        )
        assert by_id.json()["conversion"]["affiliate_id"] == str(first.id)


async def test_an_unknown_conversion_has_no_explanation(local_bus: EmbeddedBus, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'referrals.sqlite'}"
    async with referrals_api(url, local_bus, tmp_path) as (client, _runtime):
        assert (await client.get(f"/v1/conversions/{uuid.uuid4()}/attribution")).status_code == 404
        assert (await client.get(f"/v1/conversions/{uuid.uuid4()}")).status_code == 404
