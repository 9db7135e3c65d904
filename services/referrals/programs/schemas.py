"""The HTTP shapes of a program: what it pays (`rules.py`), how it credits, and how long it holds."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.referrals.programs.rules import CommissionRule, ReferralRewards
from shared.iso_codes import CurrencyCode

AttributionModel = Literal["last_click", "first_click"]
KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"

_ATTRIBUTION = (
    "Which click a conversion is credited to among the visitor's clicks in the window: `last_click` "
    "(the default) or `first_click`."
)
_RULES = (
    "What an affiliate earns, one rule per goal (`lead`, `sale` or a custom goal): a fixed amount "
    "(CPL/CPA) or a percentage of the conversion's amount (revenue share), optional tiers by volume and "
    "a recurring limit in months."
)
_REWARDS = "Double-sided referral rewards: what the referring customer and the new customer each earn."
_NOT_NULL = ("name", "attribution_model", "window_days", "hold_days", "commission_rules", "count_purchases")


def _one_rule_per_goal(rules: list[CommissionRule]) -> list[CommissionRule]:
    goals = [rule.goal for rule in rules]
    if len(goals) != len(set(goals)):
        raise ValueError("one rule per goal: a goal is named twice")
    return rules


class ProgramCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    key: str = Field(
        pattern=KEY_PATTERN,
        description="A stable name for the program (lower-case letters, digits, `-`, `_`); unique.",
        examples=["partners-eu"],
    )
    name: str = Field(min_length=1, max_length=200, examples=["EU partner program"])
    currency: CurrencyCode = Field(description="ISO 4217: commissions are computed and paid in it.")
    attribution_model: AttributionModel = Field("last_click", description=_ATTRIBUTION)
    window_days: int = Field(30, ge=1, le=365, description="How long after a click a conversion counts.")
    hold_days: int = Field(
        30, ge=0, le=365, description="How long a commission stays pending before it may be approved."
    )
    commission_rules: list[CommissionRule] = Field(default_factory=list, max_length=50, description=_RULES)
    referral_rewards: ReferralRewards | None = Field(None, description=_REWARDS)
    count_purchases: bool = Field(
        False, description="Purchases reported to the journeys service count as sales of this program."
    )

    _rules = field_validator("commission_rules")(_one_rule_per_goal)


class ProgramPatch(BaseModel):
    """A merge patch: fields left out are kept; `referral_rewards: null` removes the rewards."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(None, min_length=1, max_length=200)
    attribution_model: AttributionModel | None = Field(None, description=_ATTRIBUTION)
    window_days: int | None = Field(None, ge=1, le=365)
    hold_days: int | None = Field(None, ge=0, le=365)
    commission_rules: list[CommissionRule] | None = Field(None, max_length=50, description=_RULES)
    referral_rewards: ReferralRewards | None = Field(None, description=_REWARDS)
    count_purchases: bool | None = None

    @field_validator("commission_rules")
    @classmethod
    def _rules(cls, rules: list[CommissionRule] | None) -> list[CommissionRule] | None:
        return None if rules is None else _one_rule_per_goal(rules)

    # Runs only for values given: a field left out is kept, a null is refused, naming the field.
    @field_validator(*_NOT_NULL)
    @classmethod
    def _not_cleared(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null; leave it out to keep it")
        return value

    def given(self) -> dict[str, Any]:
        """The fields the patch names, as the program stores them (rules as JSON)."""
        return self.model_dump(include=self.model_fields_set, mode="json")


class ProgramRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    key: str
    name: str
    currency: str
    attribution_model: str
    window_days: int
    hold_days: int
    commission_rules: list[CommissionRule]
    referral_rewards: ReferralRewards | None
    count_purchases: bool
    status: Literal["active", "archived"] = Field(
        description="`archived`: its links still redirect and record clicks; its conversions earn "
        "nothing new."
    )
    created_at: datetime
    updated_at: datetime
