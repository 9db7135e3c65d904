"""What the journey maps API reads and writes.

A journey is an ordered list of stages. A stage is entered when an event about a contact matches one of
its `entry` rules; its `goal`, if any, is reached when a contact who entered the stage then matches one
of the goal's rules. Rules are checked strictly: an unknown field, channel, stage, team or lifecycle
stage is a 422 naming where it is.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    field_validator,
    model_validator,
)

from services.journeys.touchpoints.schemas import Channel, Stage, Team
from shared.iso_codes import CurrencyCode

Slug = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$", examples=["onboarding"])]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
MAX_STAGES = 30
MAX_RULES = 20


class LifecycleStage(StrEnum):
    """The contacts service's lifecycle stages (`crm.contact.*` events carry these codes)."""

    SUBSCRIBER = "subscriber"
    LEAD = "lead"
    MARKETING_QUALIFIED_LEAD = "marketing_qualified_lead"
    SALES_QUALIFIED_LEAD = "sales_qualified_lead"
    OPPORTUNITY = "opportunity"
    CUSTOMER = "customer"
    EVANGELIST = "evangelist"
    CHURNED = "churned"
    OTHER = "other"


def _is_none(value: object) -> bool:
    return value is None


def _condition(description: str | None = None) -> Any:
    """An optional condition of a rule; left out of what a rule reads back as when not given."""
    return Field(None, description=description, exclude_if=_is_none)


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class TouchpointWhere(_Rule):
    """Equality on further fields of `crm.touchpoint.recorded` (the event carries no free properties)."""

    utm_source: Text | None = _condition()
    utm_medium: Text | None = _condition()
    utm_campaign: Text | None = _condition()
    utm_term: Text | None = _condition()
    utm_content: Text | None = _condition()
    currency: CurrencyCode | None = _condition()
    order_id: Text | None = _condition()
    revenue: int | None = _condition("In minor units of `currency`.")
    score: float | None = _condition()

    def conditions(self) -> dict[str, object]:
        return {name: value for name, value in self if value is not None}

    @model_validator(mode="after")
    def _something(self) -> TouchpointWhere:
        if not self.conditions():
            raise ValueError("give at least one field a value, or leave `where` out")
        return self


class TouchpointRule(_Rule):
    """Matches a touchpoint (`crm.touchpoint.recorded`, or `crm.touchpoint.resolved` once its person is
    known) whose fields equal every one given; one with none given matches any touchpoint."""

    on: Literal["touchpoint"]
    type: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] | None = (
        _condition("The touchpoint's `type`, e.g. `webinar_attended`.")
    )
    channel: Channel | None = _condition()
    stage: Stage | None = _condition()
    team: Team | None = _condition()
    campaign: Text | None = _condition()
    content_id: Text | None = _condition()
    where: TouchpointWhere | None = _condition()


class ContactCreatedRule(_Rule):
    """Matches `crm.contact.created`, of any lifecycle stage or of the one given."""

    on: Literal["contact_created"]
    lifecycle_stage: LifecycleStage | None = _condition()


class LifecycleRule(_Rule):
    """Matches a contact's lifecycle stage becoming `to`: created in it, or changed to it
    (`crm.contact.created`, `crm.contact.lifecycle_changed`, `crm.contact.updated`)."""

    on: Literal["lifecycle_stage"]
    to: LifecycleStage


Rule = Annotated[TouchpointRule | ContactCreatedRule | LifecycleRule, Field(discriminator="on")]
Rules = Annotated[list[Rule], Field(min_length=1, max_length=MAX_RULES)]


class Goal(BaseModel):
    """A stage's success: a contact who entered the stage reaches its goal on matching one of `rules`
    afterwards. The funnel counts who did, and compares the rate with `target_rate` if one is set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: Rules
    target_rate: float | None = Field(
        None, ge=0, le=1, description="The share of the stage's entrants meant to reach the goal, 0 to 1."
    )


class StageIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    key: Slug = Field(description="Names the stage for ever: history and events refer to it.")
    name: Text
    entry: Rules = Field(description="The stage is entered when an event matches any of these.")
    goal: Goal | None = None


def _unique_keys(stages: list[StageIn]) -> list[StageIn]:
    keys = [stage.key for stage in stages]
    if duplicates := sorted({key for key in keys if keys.count(key) > 1}):
        raise ValueError(f"stage keys must be unique; repeated: {', '.join(duplicates)}")
    return stages


Stages = Annotated[
    list[StageIn],
    Field(min_length=1, max_length=MAX_STAGES, description="In the order contacts pass through them."),
]

EXAMPLE: dict[str, JsonValue] = {
    "key": "onboarding",
    "name": "Webinar to customer",
    "stages": [
        {"key": "aware", "name": "Aware", "entry": [{"on": "touchpoint", "channel": "social_ad"}]},
        {
            "key": "engaged",
            "name": "Engaged",
            "entry": [{"on": "touchpoint", "type": "webinar_attended", "channel": "webinar"}],
            "goal": {
                "rules": [{"on": "touchpoint", "type": "demo_requested"}],
                "target_rate": 0.3,
            },
        },
        {"key": "customer", "name": "Customer", "entry": [{"on": "lifecycle_stage", "to": "customer"}]},
    ],
}


class JourneyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [EXAMPLE]}
    )

    key: Slug = Field(description="Unique; the journey's name in URLs and events.")
    name: Text
    stages: Stages

    @field_validator("stages")
    @classmethod
    def _stages_unique(cls, stages: list[StageIn]) -> list[StageIn]:
        return _unique_keys(stages)


class JourneyPatch(BaseModel):
    """A merge patch: `name`, and/or the full new list of `stages`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Text | None = Field(None, description="Cannot be cleared.")
    stages: Stages | None = Field(
        None,
        description="The stages as they are to be, in order. Every current stage key stays, in the same "
        "order (history refers to them); new keys may be added anywhere. Names, rules and goals may "
        "change. The new version applies to events from now on.",
    )

    @field_validator("name", "stages", mode="before")
    @classmethod
    def _not_cleared(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null; leave it out to keep it")
        return value

    @field_validator("stages")
    @classmethod
    def _stages_unique(cls, stages: list[StageIn] | None) -> list[StageIn] | None:
        return None if stages is None else _unique_keys(stages)


class StageRead(StageIn):
    position: int = Field(description="1 for the first stage.")


class JourneyRead(BaseModel):
    id: uuid.UUID
    key: str
    name: str
    version: int = Field(description="Goes up with every change; the `ETag` is this number, quoted.")
    stages: list[StageRead]
    active_from: datetime = Field(
        description="When this version began to apply: events that reach the service from then on."
    )
    created_at: datetime
    updated_at: datetime


class ContactJourneyStage(BaseModel):
    journey_key: str
    journey_name: str
    stage_key: str
    stage_name: str
    position: int = Field(description="The stage's place in the journey, 1 for the first.")
    entered_at: datetime


class ContactJourneys(BaseModel):
    """A contact's current stage in each journey they have entered."""

    contact_id: uuid.UUID
    journeys: list[ContactJourneyStage]


class FunnelStage(BaseModel):
    key: str
    name: str
    position: int
    entered: int = Field(description="Contacts who entered this very stage in the range.")
    reached: int = Field(
        description="Contacts who entered this stage or a later one in the range: one who skipped a "
        "stage has passed it. The funnel's count."
    )
    conversion_rate: float | None = Field(
        description="`reached` of the next stage over `reached` of this one; null for the last stage or "
        "when none reached this one."
    )
    dropped_off: int | None = Field(
        description="Reached this stage but not the next (in the range); null for the last stage."
    )
    median_seconds_to_next: float | None = Field(
        description="Median time from entering this stage to entering the next, over the contacts who "
        "entered the next one in the range having entered this one; null when there are none."
    )
    goal_reached: int | None = Field(
        description="Contacts who reached the stage's goal in the range; null when the stage has no goal."
    )
    goal_rate: float | None = Field(
        description="`goal_reached` over `entered`; null without a goal or without entrants."
    )
    target_rate: float | None = Field(description="The goal's target rate, if set.")


class Funnel(BaseModel):
    journey_key: str
    since: datetime | None
    until: datetime | None
    stages: list[FunnelStage]
