"""Approval after the hold (the sweep, run at a chosen `now`, and its endpoint), payouts with clawbacks
deducted, the balance, and the commissions API."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.referrals.commissions.approval import approve_due
from shared.bus.embedded import EmbeddedBus
from shared.runtime import ServiceRuntime
from tests.services.referrals.commission_support import (
    change_status,
    earned,
    ledger,
    no_background_sweep,
    record,
)
from tests.services.referrals.support import make_affiliate, make_program, outbox_events, referrals_api

__all__ = ["no_background_sweep"]

T0 = datetime(2026, 10, 5, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


async def _statuses(runtime: ServiceRuntime, *conversion_ids: uuid.UUID) -> list[str]:
    return [(await earned(runtime, cid))["commission"].status for cid in conversion_ids]


async def test_the_sweep_approves_what_is_due_at_its_now_in_batches_and_only_once(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program = await make_program(runtime, hold_days=30)
        ada = await make_affiliate(runtime)
        due = [
            await record(runtime, program, ada, occurred_at=T0 + minutes * timedelta(minutes=1))
            for minutes in range(5)
        ]
        later = await record(runtime, program, ada, occurred_at=T0 + DAY)
        held = await record(runtime, program, ada, occurred_at=T0, review="held")
        refunded = await record(runtime, program, ada, occurred_at=T0)
        await change_status(runtime, refunded.id, "refunded")

        assert await approve_due(runtime.database, T0 + 30 * DAY - timedelta(seconds=1)) == 0
        # The hold's last instant counts as ended; batches of two still approve all five.
        assert await approve_due(runtime.database, T0 + 30 * DAY + timedelta(minutes=4), batch=2) == 5
        assert await approve_due(runtime.database, T0 + 30 * DAY + timedelta(minutes=4)) == 0
        assert await _statuses(runtime, *(c.id for c in due)) == ["approved"] * 5
        assert await _statuses(runtime, later.id, held.id, refunded.id) == ["pending", "held", "reversed"]
        first = (await earned(runtime, due[0].id))["commission"]
        assert await ledger(runtime, first.id) == [("earned", 1000), ("approved", 0)]
        approved = await outbox_events(runtime, "crm.commission.approved")
        assert sorted(event["key"] for event in approved) == sorted(str(c.id) for c in due)

        # The endpoint runs the same sweep, now: `later`'s hold ended long ago.
        answer = await client.post("/v1/commissions/approve-due")
        assert (answer.status_code, answer.json()) == (200, {"approved": 1})
        assert await _statuses(runtime, later.id) == ["approved"]


async def test_a_payout_pays_the_approved_commissions_less_clawbacks_and_never_goes_negative(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program = await make_program(
            runtime, hold_days=0, commission_rules=[{"type": "percent", "percent": "10"}]
        )
        ada, bea = await make_affiliate(runtime), await make_affiliate(runtime, name="Bea")
        first = [
            await record(runtime, program, ada, amount=amount, occurred_at=T0)
            for amount in (10_000, 20_000, 5_000)
        ]
        pending = await record(runtime, program, ada, occurred_at=T0 + 365 * DAY)
        await record(runtime, program, bea, occurred_at=T0)
        await approve_due(runtime.database, T0 + DAY)

        paid = await client.post("/v1/payouts", json={"affiliate_id": str(ada.id), "reference": "SEPA-1"})
        assert paid.status_code == 201, paid.text
        payout = paid.json()
        assert paid.headers["Location"].endswith(f"/v1/payouts/{payout['id']}")
        assert (payout["amount"], payout["currency"], payout["commission_count"]) == (3500, "EUR", 3)
        assert (payout["commissions_amount"], payout["clawbacks_amount"], payout["reference"]) == (
            3500,
            0,
            "SEPA-1",
        )
        assert await _statuses(runtime, *(c.id for c in first)) == ["paid"] * 3
        assert await _statuses(runtime, pending.id) == ["pending"]
        commission = (await earned(runtime, first[1].id))["commission"]
        assert commission.payout_id == uuid.UUID(payout["id"])
        assert await ledger(runtime, commission.id) == [("earned", 2000), ("approved", 0), ("paid", 0)]
        paid_events = await outbox_events(runtime, "crm.commission.paid")
        assert sorted(e["amount"] for e in paid_events) == [500, 1000, 2000]
        assert {e["payout_id"] for e in paid_events} == {payout["id"]}
        # Nothing approved is left: a second payout (a retry without Idempotency-Key) pays nothing twice.
        again = await client.post("/v1/payouts", json={"affiliate_id": str(ada.id)})
        assert again.status_code == 409

        # A paid sale is refunded: clawed back, owed by the affiliate.
        await change_status(runtime, first[1].id, "refunded")
        assert await ledger(runtime, commission.id) == [
            ("earned", 2000),
            ("approved", 0),
            ("paid", 0),
            ("clawback", -2000),
        ]
        reversed_event = (await outbox_events(runtime, "crm.commission.reversed"))[-1]
        assert (reversed_event["reason"], reversed_event["clawback"]) == ("refunded", True)
        balance = (await client.get(f"/v1/affiliates/{ada.id}/balance")).json()
        assert balance["currencies"] == [
            {"currency": "EUR", "pending": 1000, "approved": 0, "paid": 1500, "clawbacks_owed": 2000}
        ]

        # Approved 1,000 cannot cover 2,000 owed: nothing is paid, and nothing changes.
        small = await record(runtime, program, ada, amount=10_000, occurred_at=T0 + DAY)
        await approve_due(runtime.database, T0 + 2 * DAY)
        refused = await client.post("/v1/payouts", json={"affiliate_id": str(ada.id)})
        assert refused.status_code == 409
        assert "clawbacks" in refused.json()["detail"]
        assert await _statuses(runtime, small.id) == ["approved"]

        # 1,000 + 3,000 approved covers it: 2,000 is sent, and the clawback is settled by this payout.
        big = await record(runtime, program, ada, amount=30_000, occurred_at=T0 + DAY)
        await approve_due(runtime.database, T0 + 2 * DAY)
        settled = await client.post("/v1/payouts", json={"affiliate_id": str(ada.id), "currency": "eur"})
        assert settled.status_code == 201, settled.text
        second = settled.json()
        assert (second["amount"], second["commissions_amount"], second["clawbacks_amount"]) == (
            2000,
            4000,
            2000,
        )
        assert await _statuses(runtime, small.id, big.id) == ["paid", "paid"]
        assert (await ledger(runtime, commission.id))[-1] == ("deducted", 0)
        balance = (await client.get(f"/v1/affiliates/{ada.id}/balance")).json()
        assert balance["currencies"][0]["clawbacks_owed"] == 0
        # Settled once: the next payout deducts nothing.
        await record(runtime, program, ada, amount=5_000, occurred_at=T0 + DAY)
        await approve_due(runtime.database, T0 + 2 * DAY)
        third = (await client.post("/v1/payouts", json={"affiliate_id": str(ada.id)})).json()
        assert (third["amount"], third["clawbacks_amount"]) == (500, 0)

        listed = (await client.get("/v1/payouts", params={"affiliate_id": str(ada.id)})).json()
        assert [p["id"] for p in listed["items"]] == [third["id"], second["id"], payout["id"]]
        got = await client.get(f"/v1/payouts/{payout['id']}")
        assert got.json() == payout
        assert (await client.get(f"/v1/payouts/{uuid.uuid4()}")).status_code == 404


async def test_a_payout_refuses_bad_input_naming_the_field_and_keeps_nothing(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        euros = await make_program(runtime, hold_days=0)
        dollars = await make_program(runtime, hold_days=0, currency="USD")
        ada = await make_affiliate(runtime)
        await record(runtime, euros, ada, occurred_at=T0)
        await record(runtime, dollars, ada, occurred_at=T0, currency="USD")
        await approve_due(runtime.database, T0 + DAY)

        cases = [
            ({"affiliate_id": str(uuid.uuid4())}, 422, "affiliate_id"),
            ({"affiliate_id": "not-a-uuid"}, 422, "affiliate_id"),
            ({"affiliate_id": str(ada.id)}, 422, "currency"),  # EUR and USD approved: which?
            ({"affiliate_id": str(ada.id), "currency": "EURO"}, 422, "currency"),
            ({"affiliate_id": str(ada.id), "amount": 5}, 422, "amount"),
        ]
        for body, status, field in cases:
            answer = await client.post("/v1/payouts", json=body)
            assert answer.status_code == status, (body, answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert field in str(answer.json()["errors"]), (body, answer.json())
        nothing = await client.post("/v1/payouts", json={"affiliate_id": str(ada.id), "currency": "GBP"})
        assert nothing.status_code == 409
        assert (await client.get("/v1/payouts")).json()["items"] == []

        usd = await client.post("/v1/payouts", json={"affiliate_id": str(ada.id), "currency": "USD"})
        assert (usd.status_code, usd.json()["amount"], usd.json()["currency"]) == (201, 1000, "USD")


async def test_commissions_are_listed_filtered_and_read_with_their_ledger(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program = await make_program(runtime)
        ada, bea = await make_affiliate(runtime), await make_affiliate(runtime, name="Bea")
        mine = [await record(runtime, program, ada, occurred_at=T0) for _ in range(3)]
        theirs = await record(runtime, program, bea, occurred_at=T0)
        await change_status(runtime, mine[0].id, "refunded")

        first = await client.get("/v1/commissions", params={"affiliate_id": str(ada.id), "limit": 2})
        assert first.status_code == 200
        rest = await client.get(
            "/v1/commissions",
            params={"affiliate_id": str(ada.id), "limit": 2, "cursor": first.json()["next_cursor"]},
        )
        listed = first.json()["items"] + rest.json()["items"]
        assert sorted(c["conversion_id"] for c in listed) == sorted(str(c.id) for c in mine)
        assert rest.json()["next_cursor"] is None
        reversed_only = (await client.get("/v1/commissions", params={"status": "reversed"})).json()["items"]
        assert [c["conversion_id"] for c in reversed_only] == [str(mine[0].id)]
        by_conversion = (await client.get("/v1/commissions", params={"conversion_id": str(theirs.id)})).json()
        assert [c["affiliate_id"] for c in by_conversion["items"]] == [str(bea.id)]
        assert (await client.get("/v1/commissions", params={"kind": "referrer_reward"})).json()["items"] == []
        assert (await client.get("/v1/commissions", params={"status": "lost"})).status_code == 422
        assert (await client.get("/v1/commissions", params={"cursor": "nonsense"})).status_code == 422

        commission_id = reversed_only[0]["id"]
        detail = (await client.get(f"/v1/commissions/{commission_id}")).json()
        assert (detail["amount"], detail["status"], detail["rule"]) == (1000, "reversed", "sale:percent:10")
        assert [(e["entry"], e["amount"], e["reason"]) for e in detail["ledger"]] == [
            ("earned", 1000, None),
            ("reversed", -1000, "refunded"),
        ]
        assert (await client.get(f"/v1/commissions/{uuid.uuid4()}")).status_code == 404
        assert (await client.get(f"/v1/affiliates/{uuid.uuid4()}/balance")).status_code == 404


async def test_the_service_runs_the_sweep_in_the_background(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_REFERRALS_APPROVAL_SWEEP_SECONDS", "0.05")
    async with referrals_api(database_url, local_bus, tmp_path) as (_, runtime):
        program = await make_program(runtime, hold_days=1)
        conversion = await record(runtime, program, await make_affiliate(runtime), occurred_at=T0)
        deadline = time.monotonic() + 10
        while await _statuses(runtime, conversion.id) != ["approved"]:
            assert time.monotonic() < deadline, "the background sweep approved nothing"
            await asyncio.sleep(0.02)


async def test_a_payout_retried_with_its_idempotency_key_or_raced_pays_once(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program = await make_program(runtime, hold_days=0)
        ada, bea = await make_affiliate(runtime), await make_affiliate(runtime, name="Bea")
        await record(runtime, program, ada, occurred_at=T0)
        await record(runtime, program, bea, occurred_at=T0)
        await approve_due(runtime.database, T0 + DAY)

        body = {"affiliate_id": str(ada.id)}
        first = await client.post("/v1/payouts", json=body, headers={"Idempotency-Key": "payout-1"})
        retried = await client.post("/v1/payouts", json=body, headers={"Idempotency-Key": "payout-1"})
        assert (first.status_code, retried.status_code) == (201, 201)
        assert retried.json() == first.json()

        # Two payouts of one affiliate at once: one pays, the other finds nothing left.
        raced = await asyncio.gather(
            *(client.post("/v1/payouts", json={"affiliate_id": str(bea.id)}) for _ in range(2))
        )
        assert sorted(answer.status_code for answer in raced) == [201, 409]
        assert len((await client.get("/v1/payouts")).json()["items"]) == 2
        assert len(await outbox_events(runtime, "crm.commission.paid")) == 2
