"""Fraud checks at recording hold a conversion for review; a review approves or rejects it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from shared.bus.embedded import EmbeddedBus
from shared.db import utc_now
from shared.runtime import ServiceRuntime
from tests.services.referrals.postback_support import hasher, post, postback_key
from tests.services.referrals.support import (
    make_affiliate,
    make_click,
    make_link,
    make_program,
    outbox_events,
    referrals_api,
)


async def _flags(client: httpx.AsyncClient, key: str, body: dict[str, Any]) -> tuple[str, list[str]]:
    answer = await post(client, key, body)
    assert answer.status_code == 201, answer.text
    conversion = answer.json()["conversion"]
    return conversion["review"], [flag["check"] for flag in conversion["fraud_flags"]]


async def _clean_click(runtime: ServiceRuntime, **affiliate: Any) -> tuple[Any, Any]:
    program = await make_program(runtime)
    partner = await make_affiliate(runtime, **affiliate)
    click = await make_click(
        runtime,
        await make_link(runtime, program, partner),
        clicked_at=utc_now() - timedelta(hours=1),
        ip_hash="ip-1",
    )
    return partner, click


async def test_self_referral_is_held_by_contact_or_by_email_hash(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        contact_id = uuid.uuid4()
        _, by_contact = await _clean_click(runtime, contact_id=contact_id)
        _, by_email = await _clean_click(runtime, email_hash=hasher(runtime).email("ada@example.com"))
        _, clean = await _clean_click(runtime, contact_id=uuid.uuid4())
        key = await postback_key(client)

        same_contact = {"click_id": by_contact.id, "transaction_id": "f-1", "contact_id": str(contact_id)}
        assert await _flags(client, key, same_contact) == ("held", ["self_referral"])
        same_email = {"click_id": by_email.id, "transaction_id": "f-2", "customer_email": " Ada@Example.com"}
        assert await _flags(client, key, same_email) == ("held", ["self_referral"])
        other = {"click_id": clean.id, "transaction_id": "f-3", "contact_id": str(uuid.uuid4())}
        assert await _flags(client, key, other) == ("none", [])

        recorded = await outbox_events(runtime, "crm.conversion.recorded")
        assert [event["held_for_review"] for event in recorded] == [True, True, False]
        # The email is kept only as its keyed hash, never in clear.
        detail = (await client.get(f"/v1/conversions/{recorded[1]['conversion_id']}")).json()
        assert "ada@example.com" not in str(detail).lower()


async def test_a_conversion_seconds_after_its_click_and_a_burst_from_one_address_are_held(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program = await make_program(runtime)
        link = await make_link(runtime, program, await make_affiliate(runtime))
        now = utc_now()
        fast = await make_click(runtime, link, clicked_at=now - timedelta(seconds=3))
        key = await postback_key(client)
        review, flags = await _flags(client, key, {"click_id": fast.id, "transaction_id": "f-4"})
        assert (review, flags) == ("held", ["click_to_conversion_too_fast"])
        # Ten seconds is enough (the default threshold).
        slow = await make_click(runtime, link, clicked_at=now - timedelta(seconds=11))
        assert await _flags(client, key, {"click_id": slow.id, "transaction_id": "f-5"}) == ("none", [])

        # 20 clicks in 5 minutes from one address (the defaults); 19 are not a burst.
        start = now - timedelta(hours=2)
        for index in range(19):
            await make_click(runtime, link, clicked_at=start + timedelta(seconds=index), ip_hash="busy")
        nineteenth = await make_click(runtime, link, clicked_at=start + timedelta(seconds=30), ip_hash="calm")
        assert await _flags(client, key, {"click_id": nineteenth.id, "transaction_id": "f-6"}) == ("none", [])
        twentieth = await make_click(runtime, link, clicked_at=start + timedelta(seconds=40), ip_hash="busy")
        assert await _flags(client, key, {"click_id": twentieth.id, "transaction_id": "f-7"}) == (
            "held",
            ["click_burst"],
        )
        # Clicks older than the span do not count.
        later = await make_click(runtime, link, clicked_at=start + timedelta(minutes=6), ip_hash="busy")
        assert await _flags(client, key, {"click_id": later.id, "transaction_id": "f-8"}) == ("none", [])

        held = (await client.get("/v1/conversions", params={"review": "held"})).json()["items"]
        assert sorted(conversion["transaction_id"] for conversion in held) == ["f-4", "f-7"]


async def test_a_review_approves_or_rejects_a_held_conversion_once(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program = await make_program(runtime)
        link = await make_link(runtime, program, await make_affiliate(runtime))
        key = await postback_key(client)
        ids = []
        for transaction in ("r-1", "r-2", "r-3"):
            click = await make_click(runtime, link, clicked_at=utc_now())
            answer = await post(client, key, {"click_id": click.id, "transaction_id": transaction})
            assert answer.json()["conversion"]["review"] == "held"
            ids.append(answer.json()["conversion"]["id"])

        approved = await client.post(f"/v1/conversions/{ids[0]}/review", json={"decision": "approve"})
        assert approved.status_code == 200, approved.text
        assert (approved.json()["review"], approved.json()["status"]) == ("approved", "pending")
        rejected = await client.post(
            f"/v1/conversions/{ids[1]}/review", json={"decision": "reject", "note": "own purchase"}
        )
        assert (rejected.json()["review"], rejected.json()["status"]) == ("rejected", "rejected")

        again = await client.post(f"/v1/conversions/{ids[0]}/review", json={"decision": "reject"})
        assert again.status_code == 409
        assert again.headers["content-type"] == "application/problem+json"
        bad = await client.post(f"/v1/conversions/{ids[2]}/review", json={"decision": "maybe"})
        assert bad.status_code == 422
        assert [error["field"] for error in bad.json()["errors"]] == ["decision"]
        missing = await client.post(f"/v1/conversions/{uuid.uuid4()}/review", json={"decision": "approve"})
        assert missing.status_code == 404
        reader = (await client.post("/v1/keys", json={"scopes": ["referrals:read"]})).json()["key"]
        forbidden = await client.post(
            f"/v1/conversions/{ids[2]}/review",
            json={"decision": "approve"},
            headers={"Authorization": f"Bearer {reader}"},
        )
        assert forbidden.status_code == 403

        changes = await outbox_events(runtime, "crm.conversion.status_changed")
        assert [(e["conversion_id"], e["new_status"], e["reason"]) for e in changes] == [
            (ids[1], "rejected", "review: own purchase")
        ]
        still = (await client.get(f"/v1/conversions/{ids[2]}")).json()
        assert still["review"] == "held"
