"""A commission's life reaches `crm.referrals` through the relay, in order under its conversion's key, as
events every reader parses: on the embedded log and on Kafka."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.referrals.commissions.approval import approve_due
from shared.bus.base import EventBus, Record
from shared.events import topics
from shared.events.envelope import from_record
from shared.events.referrals import CommissionPaid, CommissionReversed
from tests.services.referrals.commission_support import change_status, no_background_sweep, record
from tests.services.referrals.support import make_affiliate, make_program, referrals_api

__all__ = ["no_background_sweep"]

T0 = datetime(2026, 10, 5, 12, 0, tzinfo=UTC)


async def test_a_commission_created_approved_paid_and_clawed_back_is_announced_in_order(
    database_url: str, bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, bus, tmp_path, relay=True) as (client, runtime):
        program = await make_program(runtime, hold_days=1)
        ada = await make_affiliate(runtime)
        conversion = await record(runtime, program, ada, occurred_at=T0)
        await approve_due(runtime.database, T0 + timedelta(days=1))
        paid = await client.post("/v1/payouts", json={"affiliate_id": str(ada.id)})
        assert paid.status_code == 201
        await change_status(runtime, conversion.id, "chargeback")

        # The topic may hold earlier tests' events too (one Kafka broker per session): keep this key's.
        records: list[Record] = []
        deadline = time.monotonic() + 30
        async with bus.consumer(f"reader-{uuid.uuid4().hex[:8]}", [topics.REFERRALS.name]) as consumer:
            await consumer.seek_to_beginning()
            while len(records) < 4 and time.monotonic() < deadline:
                polled = await consumer.poll(timeout_s=0.5)
                records += [r for r in polled if r.key == str(conversion.id)]
    mine = [from_record(r) for r in records]
    assert [envelope.type for envelope in mine] == [
        "crm.commission.created",
        "crm.commission.approved",
        "crm.commission.paid",
        "crm.commission.reversed",
    ]
    assert len({r.partition for r in records}) == 1
    paid_event, reversed_event = mine[2].event, mine[3].event
    assert isinstance(paid_event, CommissionPaid)
    assert str(paid_event.payout_id) == paid.json()["id"]
    assert isinstance(reversed_event, CommissionReversed)
    assert (reversed_event.reason, reversed_event.clawback, reversed_event.amount) == (
        "chargeback",
        True,
        1000,
    )
