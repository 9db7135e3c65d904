"""The arithmetic of a commission, apart from the database: amounts, tiers, periods, recurring months."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from services.referrals.programs.rules import CommissionRule, RewardSide, Tier

AmountRule = CommissionRule | Tier | RewardSide


@dataclass(frozen=True)
class Earned:
    """What a rule gives one conversion: minor units, and how the rule is named on the commission."""

    amount: int
    rule: str


@dataclass(frozen=True)
class Nothing:
    """Why a rule gives this conversion nothing (kept in the log; no commission is made)."""

    reason: str


def percent_text(percent: Decimal) -> str:
    """`10`, `12.5`: the percentage as a rule name shows it, without trailing zeros or an exponent."""
    text = format(percent.normalize(), "f")
    return text


def apply_amount(
    amount_rule: AmountRule, *, amount: int | None, currency: str | None, program_currency: str
) -> int | Nothing:
    """Fixed: its amount, in the program's currency whatever the conversion's. Percent: of the
    conversion's amount, rounded half up to minor units; only when the conversion has an amount in the
    program's currency (no exchange rates are guessed)."""
    if amount_rule.type == "fixed":
        assert amount_rule.amount is not None
        return amount_rule.amount
    assert amount_rule.percent is not None
    if amount is None:
        return Nothing("percent rule and the conversion has no amount")
    if currency != program_currency:
        return Nothing(
            f"percent rule and the conversion is in {currency}, the program pays {program_currency}"
        )
    share = Decimal(amount) * amount_rule.percent / Decimal(100)
    return int(share.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def amount_name(amount_rule: AmountRule) -> str:
    if amount_rule.type == "fixed":
        return f"fixed:{amount_rule.amount}"
    assert amount_rule.percent is not None
    return f"percent:{percent_text(amount_rule.percent)}"


def tier_reached(rule: CommissionRule, count: int) -> tuple[int, Tier] | None:
    """The highest tier whose `from_count` `count` reaches (1-based position), or None below the first."""
    reached = None
    for position, tier in enumerate(rule.tiers, start=1):
        if tier.from_count <= count:
            reached = (position, tier)
    return reached


def period_of(moment: datetime, period: Literal["month", "quarter", "year"]) -> tuple[datetime, datetime]:
    """The calendar period (UTC) holding `moment`: its start, inclusive, and the next one's start."""
    moment = moment.astimezone(UTC)
    if period == "year":
        first_month, months = 1, 12
    elif period == "quarter":
        first_month, months = 3 * ((moment.month - 1) // 3) + 1, 3
    else:
        first_month, months = moment.month, 1
    start = datetime(moment.year, first_month, 1, tzinfo=UTC)
    return start, add_months(start, months)


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time `months` later; a day the month lacks becomes its last (31 Jan + 1 = 28 Feb)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def recurring_month(first: datetime, moment: datetime, months: int) -> int | None:
    """Which month of the subscription `moment` falls in (1 = the first `months` window's first), or
    None once `months` months from `first` are over."""
    if moment >= add_months(first, months):
        return None
    month = 1
    while month < months and moment >= add_months(first, month):
        month += 1
    return month
