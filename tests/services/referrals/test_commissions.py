"""Commissions from a program's rules: fixed and percent (rounded half up), tiers by volume in the
calendar period, recurring months per customer, currencies; held and reviewed conversions; reversals;
and retries that never double anything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.bus.embedded import EmbeddedBus
from shared.db import utc_now
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


async def test_fixed_rules_pay_per_lead_and_per_sale_in_the_program_currency(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (_, runtime):
        program = await make_program(
            runtime,
            hold_days=14,
            commission_rules=[
                {"goal": "lead", "type": "fixed", "amount": 200},
                {"goal": "sale", "type": "fixed", "amount": 1500},
            ],
        )
        ada = await make_affiliate(runtime)
        lead = await record(runtime, program, ada, goal="lead", amount=None, currency=None, occurred_at=T0)
        # A fixed amount is in the program's currency, whatever the sale's.
        sale = await record(runtime, program, ada, amount=9_900, currency="USD", occurred_at=T0)
        signup = await record(runtime, program, ada, goal="signup", occurred_at=T0)
        unattributed = await record(runtime, program, None, occurred_at=T0)

        commission = (await earned(runtime, lead.id))["commission"]
        assert (commission.amount, commission.currency, commission.rule) == (200, "EUR", "lead:fixed:200")
        assert (commission.status, commission.hold_until) == ("pending", T0 + timedelta(days=14))
        assert commission.affiliate_id == ada.id
        assert (await earned(runtime, sale.id))["commission"].amount == 1500
        assert await earned(runtime, signup.id) == {}  # no rule for the goal
        assert await earned(runtime, unattributed.id) == {}
        assert await ledger(runtime, commission.id) == [("earned", 200)]

        created = await outbox_events(runtime, "crm.commission.created")
        assert [(event["key"], event["amount"], event["rule"]) for event in created] == [
            (str(lead.id), 200, "lead:fixed:200"),
            (str(sale.id), 1500, "sale:fixed:1500"),
        ]
        assert created[0]["commission_id"] == str(commission.id)
        assert await outbox_events(runtime, "crm.referral_reward") == []


async def test_percent_rules_round_half_up_and_need_an_amount_in_the_program_currency(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (_, runtime):
        program = await make_program(
            runtime,
            commission_rules=[
                {"goal": "sale", "type": "percent", "percent": "10"},
                {"goal": "upgrade", "type": "percent", "percent": "12.5"},
            ],
        )
        ada = await make_affiliate(runtime)
        cases = [
            ({"amount": 10_005}, 1001, "sale:percent:10"),  # 1000.5 -> 1001
            ({"amount": 10_004}, 1000, "sale:percent:10"),  # 1000.4 -> 1000
            ({"amount": 999, "goal": "upgrade"}, 125, "upgrade:percent:12.5"),  # 124.875 -> 125
            ({"amount": 4, "goal": "upgrade"}, 1, "upgrade:percent:12.5"),  # 0.5 -> 1
        ]
        for fields, amount, rule in cases:
            conversion = await record(runtime, program, ada, **fields)  # type: ignore[arg-type]
            commission = (await earned(runtime, conversion.id))["commission"]
            assert (commission.amount, commission.rule) == (amount, rule), fields

        no_amount = await record(runtime, program, ada, amount=None, currency=None)
        other_currency = await record(runtime, program, ada, amount=10_000, currency="USD")
        rounds_to_nothing = await record(runtime, program, ada, amount=4)  # 0.4 -> 0
        for conversion in (no_amount, other_currency, rounds_to_nothing):
            assert await earned(runtime, conversion.id) == {}


async def test_tiers_count_the_affiliates_standing_conversions_of_the_goal_in_the_calendar_month(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (_, runtime):
        rule = {
            "goal": "sale",
            "type": "fixed",
            "amount": 1000,
            "tiers": [
                {"from_count": 3, "type": "fixed", "amount": 1500},
                {"from_count": 5, "type": "percent", "percent": "20"},
            ],
        }
        program = await make_program(
            runtime, commission_rules=[rule, {"goal": "lead", "type": "fixed", "amount": 1}]
        )
        other_program = await make_program(runtime, commission_rules=[rule])
        ada, bea = await make_affiliate(runtime), await make_affiliate(runtime, name="Bea")
        october = datetime(2026, 10, 1, tzinfo=UTC)
        # Volume that does not count: another affiliate, another program, another goal, the months before
        # and after, and a refunded sale.
        await record(runtime, program, bea, occurred_at=october + timedelta(days=1))
        await record(runtime, other_program, ada, occurred_at=october + timedelta(days=1))
        await record(runtime, program, ada, goal="lead", occurred_at=october + timedelta(days=1))
        await record(runtime, program, ada, occurred_at=october - timedelta(seconds=1))
        await record(runtime, program, ada, occurred_at=datetime(2026, 11, 1, tzinfo=UTC))  # next month's
        refunded = await record(runtime, program, ada, occurred_at=october)
        await change_status(runtime, refunded.id, "refunded")

        rules = []
        for day in range(1, 6):
            conversion = await record(
                runtime, program, ada, amount=10_000, occurred_at=october + timedelta(days=day)
            )
            commission = (await earned(runtime, conversion.id))["commission"]
            rules.append((commission.rule, commission.amount))
        assert rules == [
            ("sale:fixed:1000", 1000),
            ("sale:fixed:1000", 1000),
            ("sale:tier:1", 1500),  # the third: the first tier's boundary
            ("sale:tier:1", 1500),
            ("sale:tier:2", 2000),  # the fifth: 20 % of 10,000
        ]
        # The first instant of November starts a new period.
        november = await record(runtime, program, ada, occurred_at=datetime(2026, 11, 1, tzinfo=UTC))
        assert (await earned(runtime, november.id))["commission"].rule == "sale:fixed:1000"


async def test_a_quarterly_tier_counts_across_the_months_of_the_quarter(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (_, runtime):
        tiers = [{"from_count": 2, "type": "fixed", "amount": 700}]
        program = await make_program(
            runtime,
            commission_rules=[{"type": "fixed", "amount": 500, "tiers": tiers, "tier_period": "quarter"}],
        )
        ada = await make_affiliate(runtime)
        first = await record(runtime, program, ada, occurred_at=datetime(2026, 10, 31, tzinfo=UTC))
        second = await record(runtime, program, ada, occurred_at=datetime(2026, 12, 31, 23, tzinfo=UTC))
        next_quarter = await record(runtime, program, ada, occurred_at=datetime(2027, 1, 1, tzinfo=UTC))
        amounts = [(await earned(runtime, c.id))["commission"].amount for c in (first, second, next_quarter)]
        assert amounts == [500, 700, 500]


async def test_recurring_commissions_stop_n_months_after_the_customers_first_conversion(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (_, runtime):
        program = await make_program(
            runtime, commission_rules=[{"type": "percent", "percent": "10", "recurring_months": 3}]
        )
        ada = await make_affiliate(runtime)
        first = datetime(2026, 1, 31, 10, tzinfo=UTC)
        renewals = [
            first,
            datetime(2026, 2, 28, 10, tzinfo=UTC),  # month 2 (31 Jan + 1 month is 28 Feb)
            datetime(2026, 4, 30, 9, 59, tzinfo=UTC),  # the last moment inside the three months
            datetime(2026, 4, 30, 10, tzinfo=UTC),  # three months on: over
        ]
        got = []
        for at in renewals:
            conversion = await record(
                runtime, program, ada, customer_id="cus_1", amount=5_000, occurred_at=at
            )
            commission = (await earned(runtime, conversion.id)).get("commission")
            got.append(None if commission is None else commission.rule)
        assert got == [
            "sale:percent:10",
            "sale:percent:10+recurring:2/3",
            "sale:percent:10+recurring:3/3",
            None,
        ]
        # Another customer starts their own months; a conversion without a customer id always earns.
        other = await record(runtime, program, ada, customer_id="cus_2", occurred_at=renewals[-1])
        anonymous = await record(runtime, program, ada, occurred_at=renewals[-1])
        assert (await earned(runtime, other.id))["commission"].rule == "sale:percent:10"
        assert "commission" in await earned(runtime, anonymous.id)


async def test_a_held_conversion_waits_for_its_review_which_releases_or_reverses(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (_, runtime):
        program = await make_program(runtime, hold_days=10)
        ada = await make_affiliate(runtime)
        kept = await record(runtime, program, ada, review="held", occurred_at=T0)
        dropped = await record(runtime, program, ada, review="held", occurred_at=T0)
        commission = (await earned(runtime, kept.id))["commission"]
        assert (commission.status, commission.hold_until) == ("held", None)
        assert (await outbox_events(runtime, "crm.commission.created"))[0]["hold_until"] is None

        before = utc_now()
        await review(runtime, kept.id, "approved")
        released = (await earned(runtime, kept.id))["commission"]
        assert released.status == "pending"
        # The hold runs from the review, not from the conversion (which is long past).
        assert released.hold_until is not None
        assert before + timedelta(days=10) <= released.hold_until <= utc_now() + timedelta(days=10)
        assert await ledger(runtime, released.id) == [("earned", 1000), ("released", 0)]

        await review(runtime, dropped.id, "rejected")
        rejected = (await earned(runtime, dropped.id))["commission"]
        assert rejected.status == "reversed"
        assert await ledger(runtime, rejected.id) == [("earned", 1000), ("reversed", -1000)]
        reversed_events = await outbox_events(runtime, "crm.commission.reversed")
        assert [(e["key"], e["reason"], e["clawback"]) for e in reversed_events] == [
            (str(dropped.id), "rejected", False)
        ]
        # A review repeated changes nothing more.
        await review(runtime, kept.id, "approved")
        await review(runtime, dropped.id, "rejected")
        assert len(await ledger(runtime, released.id)) == 2
        assert len(await outbox_events(runtime, "crm.commission.reversed")) == 1


async def test_refunds_chargebacks_and_rejections_reverse_once_and_approval_changes_nothing_early(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (_, runtime):
        program = await make_program(runtime)
        ada = await make_affiliate(runtime)
        refunded, charged_back, rejected = [
            await record(runtime, program, ada, occurred_at=T0) for _ in range(3)
        ]
        await change_status(runtime, refunded.id, "approved")
        assert (await earned(runtime, refunded.id))["commission"].status == "pending"

        await change_status(runtime, refunded.id, "refunded", "customer returned the order")
        await change_status(runtime, charged_back.id, "chargeback")
        await change_status(runtime, rejected.id, "rejected")
        # Retried: nothing is reversed twice.
        await change_status(runtime, refunded.id, "refunded")
        await change_status(runtime, charged_back.id, "refunded")

        for conversion in (refunded, charged_back, rejected):
            commission = (await earned(runtime, conversion.id))["commission"]
            assert commission.status == "reversed"
            assert commission.amount == 1000  # the amount itself never changes
            assert await ledger(runtime, commission.id) == [("earned", 1000), ("reversed", -1000)]
        events = await outbox_events(runtime, "crm.commission.reversed")
        assert [(e["key"], e["reason"], e["clawback"]) for e in events] == [
            (str(refunded.id), "refunded", False),
            (str(charged_back.id), "chargeback", False),
            (str(rejected.id), "rejected", False),
        ]


async def test_a_conversion_recorded_refunded_earns_nothing_and_a_retried_recording_nothing_twice(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (_, runtime):
        program = await make_program(runtime)
        ada = await make_affiliate(runtime)
        refund_first = await record(runtime, program, ada, status="refunded")
        assert await earned(runtime, refund_first.id) == {}

        conversion = await record(runtime, program, ada)
        await record_again(runtime, conversion)
        await record_again(runtime, conversion)
        commission = (await earned(runtime, conversion.id))["commission"]
        assert await ledger(runtime, commission.id) == [("earned", 1000)]
        assert len(await outbox_events(runtime, "crm.commission.created")) == 1


async def test_the_longest_rule_name_fits(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (_, runtime):
        goal = "g" * 64
        rule = {"goal": goal, "type": "percent", "percent": "12.3456", "recurring_months": 120}
        program = await make_program(runtime, commission_rules=[rule])
        ada = await make_affiliate(runtime)
        await record(runtime, program, ada, goal=goal, customer_id="cus_1", occurred_at=T0)
        renewal = await record(
            runtime, program, ada, goal=goal, customer_id="cus_1", occurred_at=T0 + timedelta(days=3640)
        )
        commission = (await earned(runtime, renewal.id))["commission"]
        assert commission.rule == f"{goal}:percent:12.3456+recurring:120/120"
        assert commission.amount == 1235  # 1234.56
