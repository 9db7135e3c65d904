"""What a program pays, as data: commission rules per goal, and the two sides of a referral reward.

Kept apart from the program's HTTP schemas because two features read it: programs validate and store it
(as JSON on `Program`), commissions apply it to each conversion.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

GoalName = str
"""`lead`, `sale`, or a custom goal a program names (lower-case letters, digits, `_`)."""
GOAL_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


class _Amount(BaseModel):
    """Either a fixed amount in the program's currency, or a percentage of the conversion's amount."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["fixed", "percent"] = Field(
        description="`fixed`: `amount` minor units per conversion (CPL/CPA). `percent`: `percent` of the "
        "conversion's amount (revenue share)."
    )
    amount: int | None = Field(default=None, ge=0, description="For `fixed`: minor units of the currency.")
    percent: Decimal | None = Field(
        default=None, gt=0, le=100, max_digits=7, decimal_places=4, description="For `percent`: 0-100."
    )

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if self.type == "fixed" and (self.amount is None or self.percent is not None):
            raise ValueError("a fixed rule needs `amount` and no `percent`")
        if self.type == "percent" and (self.percent is None or self.amount is not None):
            raise ValueError("a percent rule needs `percent` and no `amount`")
        return self


class Tier(_Amount):
    """From the `from_count`-th conversion of the goal in the period on, the affiliate earns this."""

    from_count: int = Field(ge=1, description="The tier starts at this many conversions in the period.")


class CommissionRule(_Amount):
    """What an affiliate earns for one conversion of `goal`."""

    goal: str = Field(default="sale", pattern=GOAL_PATTERN, description="`lead`, `sale` or a custom goal.")
    tiers: list[Tier] = Field(
        default_factory=list,
        description="Tiers by volume: the affiliate's attributed conversions of this goal in the program "
        "within the current `tier_period`, this one included, choose the highest tier reached; below the "
        "first tier the rule's own amount applies. In ascending `from_count`.",
    )
    tier_period: Literal["month", "quarter", "year"] = Field(
        default="month", description="The calendar period (UTC) over which tier volume is counted."
    )
    recurring_months: int | None = Field(
        default=None,
        ge=1,
        le=120,
        description="For subscriptions: a later conversion of a customer already converted (same "
        "`customer_id`) earns only within this many months of their first conversion. Null: every "
        "conversion earns.",
    )

    @model_validator(mode="after")
    def _tiers_ascend(self) -> Self:
        counts = [tier.from_count for tier in self.tiers]
        if counts != sorted(set(counts)):
            raise ValueError("tiers must have distinct `from_count` in ascending order")
        return self


class RewardSide(_Amount):
    """One side of a double-sided referral reward, and when it qualifies."""

    qualifies_on: str = Field(
        default="sale", pattern=GOAL_PATTERN, description="The goal whose conversion earns the reward."
    )
    min_amount: int | None = Field(
        default=None, ge=0, description="The conversion's amount must be at least this (minor units)."
    )
    first_conversion_only: bool = Field(
        default=True, description="Only the referred customer's first qualifying conversion earns it."
    )


class ReferralRewards(BaseModel):
    """Double-sided referral rewards: paid when a customer referred by another customer (an affiliate of
    kind `customer`) converts. Each side is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    referrer: RewardSide | None = Field(default=None, description="What the customer who referred earns.")
    referee: RewardSide | None = Field(default=None, description="What the new customer earns.")
