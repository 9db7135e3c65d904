"""Double-sided referral rewards: a customer who refers and the new customer each earn their side when
it qualifies (goal, minimum amount, first conversion only), held, approved and reversed like
commissions, announced as `crm.referral_reward.granted`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.referrals.commissions.approval import approve_due
from shared.bus.embedded import EmbeddedBus
from tests.services.referrals.commission_support import (
    change_status,
    earned,
    ledger,
    no_background_sweep,
    record,
    record_again,
    review,
)
from tests.services.referrals.support import make_affiliate, make_program, outbox_events, referrals_api

__all__ = ["no_background_sweep"]

T0 = datetime(2026, 10, 5, 12, 0, tzinfo=UTC)

REWARDS: dict[str, Any] = {
    "referrer": {"type": "fixed", "amount": 1000, "qualifies_on": "sale", "min_amount": 5000},
    "referee": {"type": "percent", "percent": "10", "qualifies_on": "sale"},
}


async def test_both_sides_of_a_customer_referral_are_rewarded_once(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (_, runtime):
        program = await make_program(runtime, hold_days=7, commission_rules=[], referral_rewards=REWARDS)
        referrer = await make_affiliate(runtime, kind="customer", name="Cleo", contact_id=uuid.uuid4())
        newcomer = uuid.uuid4()
        first = await record(runtime, program, referrer, contact_id=newcomer, amount=6_000, occurred_at=T0)

        rewards = await earned(runtime, first.id)
        assert set(rewards) == {"referrer_reward", "referee_reward"}  # no rule: no commission
        to_referrer, to_referee = rewards["referrer_reward"], rewards["referee_reward"]
        assert (to_referrer.affiliate_id, to_referrer.contact_id) == (referrer.id, None)
        assert (to_referrer.amount, to_referrer.rule, to_referrer.status) == (
            1000,
            "referrer:fixed:1000",
            "pending",
        )
        assert to_referrer.hold_until == T0 + timedelta(days=7)
        # The new customer is no affiliate: paid as a contact.
        assert (to_referee.affiliate_id, to_referee.contact_id) == (None, newcomer)
        assert (to_referee.amount, to_referee.rule) == (600, "referee:percent:10")
        granted = await outbox_events(runtime, "crm.referral_reward.granted")
        assert sorted((e["side"], e["kind"], e["amount"], e["key"]) for e in granted) == [
            ("referee", "referee_reward", 600, str(first.id)),
            ("referrer", "referrer_reward", 1000, str(first.id)),
        ]
        assert await outbox_events(runtime, "crm.commission.created") == []

        # Retried, and the same customer buying again: first conversion only, on both sides.
        await record_again(runtime, first)
        second = await record(runtime, program, referrer, contact_id=newcomer, amount=9_000, occurred_at=T0)
        assert await earned(runtime, second.id) == {}
        assert len(await outbox_events(runtime, "crm.referral_reward.granted")) == 2

        # They follow the commissions' hold and approval.
        assert await approve_due(runtime.database, T0 + timedelta(days=7)) == 2
        assert await ledger(runtime, to_referee.id) == [("earned", 600), ("approved", 0)]


async def test_each_side_qualifies_on_its_own_rules(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (_, runtime):
        rewards = {**REWARDS, "referee": {**REWARDS["referee"], "first_conversion_only": False}}
        program = await make_program(
            runtime, commission_rules=[{"type": "fixed", "amount": 300}], referral_rewards=rewards
        )
        referrer = await make_affiliate(runtime, kind="customer", name="Cleo")
        partner = await make_affiliate(runtime, name="Deals Daily")
        someone, again = uuid.uuid4(), uuid.uuid4()

        below_minimum = await record(runtime, program, referrer, contact_id=someone, amount=4_999)
        assert set(await earned(runtime, below_minimum.id)) == {"commission", "referee_reward"}
        # Not first for the referee, but its side does not ask; the referrer's first qualifying one.
        at_minimum = await record(runtime, program, referrer, contact_id=someone, amount=5_000)
        assert set(await earned(runtime, at_minimum.id)) == {
            "commission",
            "referrer_reward",
            "referee_reward",
        }
        lead = await record(runtime, program, referrer, goal="lead", contact_id=again, amount=50_000)
        assert await earned(runtime, lead.id) == {}  # neither side qualifies on a lead, and no lead rule
        # No known contact: nobody to pay on the referee's side; the referrer's side knows the customer by
        # the advertiser's id.
        by_customer_id = await record(runtime, program, referrer, customer_id="cus_9", amount=8_000)
        assert set(await earned(runtime, by_customer_id.id)) == {"commission", "referrer_reward"}
        # Nobody identified at all: first-conversion-only cannot be checked, so the referrer earns nothing.
        anonymous = await record(runtime, program, referrer, amount=8_000)
        assert set(await earned(runtime, anonymous.id)) == {"commission"}
        # Another currency is below no minimum it can be compared with; the percent side has no base.
        dollars = await record(
            runtime, program, referrer, contact_id=uuid.uuid4(), amount=9_000, currency="USD"
        )
        assert set(await earned(runtime, dollars.id)) == {"commission"}
        # A partner's conversions earn commissions, never referral rewards.
        partners = await record(runtime, program, partner, contact_id=uuid.uuid4(), amount=9_000)
        assert set(await earned(runtime, partners.id)) == {"commission"}


async def test_a_referee_who_is_an_affiliate_sees_the_reward_as_theirs(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (_, runtime):
        program = await make_program(runtime, commission_rules=[], referral_rewards=REWARDS)
        referrer = await make_affiliate(runtime, kind="customer", name="Cleo")
        contact = uuid.uuid4()
        referee = await make_affiliate(runtime, kind="customer", name="Dan", contact_id=contact)
        conversion = await record(runtime, program, referrer, contact_id=contact, amount=7_000)
        reward = (await earned(runtime, conversion.id))["referee_reward"]
        assert (reward.affiliate_id, reward.contact_id) == (referee.id, contact)


async def test_rewards_are_held_reviewed_and_reversed_like_commissions(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (_, runtime):
        program = await make_program(runtime, commission_rules=[], referral_rewards=REWARDS)
        referrer = await make_affiliate(runtime, kind="customer", name="Cleo")
        held = await record(runtime, program, referrer, contact_id=uuid.uuid4(), amount=7_000, review="held")
        assert {r.status for r in (await earned(runtime, held.id)).values()} == {"held"}
        await review(runtime, held.id, "rejected")
        assert {r.status for r in (await earned(runtime, held.id)).values()} == {"reversed"}

        refunded = await record(runtime, program, referrer, contact_id=uuid.uuid4(), amount=7_000)
        await change_status(runtime, refunded.id, "chargeback")
        rewards = await earned(runtime, refunded.id)
        assert {r.status for r in rewards.values()} == {"reversed"}
        assert await ledger(runtime, rewards["referee_reward"].id) == [("earned", 700), ("reversed", -700)]
        events = await outbox_events(runtime, "crm.commission.reversed")
        assert sorted((e["kind"], e["reason"]) for e in events if e["key"] == str(refunded.id)) == [
            ("referee_reward", "chargeback"),
            ("referrer_reward", "chargeback"),
        ]
