"""Journey events, on `crm.journeys`, keyed by contact id: where contacts stand on the journeys
defined in the journeys service (`/v1/journeys`).

Ids and codes only: the journey's and stage's keys (chosen by whoever defined the journey), never its
names or the rules' values.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.events import topics
from shared.events.base import Event


class JourneyStageEntered(Event):
    """A contact entered a stage of a journey: an event about them matched the stage's entry rules while
    they were at an earlier stage, or at none. Contacts move forward only, and may pass stages over
    (`skipped_stage_keys`). Once per contact, journey and stage, also when the view is rebuilt."""

    topic = topics.JOURNEYS.name
    type: Literal["crm.journey.stage_entered"] = "crm.journey.stage_entered"
    schema_version: Literal[1] = 1

    contact_id: uuid.UUID
    journey_id: uuid.UUID
    journey_key: str
    journey_version: int = Field(description="The version of the journey whose rules matched.")
    stage_key: str
    stage_position: int = Field(description="The stage's place in that version, 1 for the first.")
    from_stage_key: str | None = Field(description="The stage the contact was at; null for none.")
    skipped_stage_keys: list[str] = Field(
        description="Stages between `from_stage_key` and this one that the contact passed over."
    )
    entered_at: datetime = Field(
        description="When: the touchpoint's `occurred_at`, or the contact event's time; never before the "
        "contact entered `from_stage_key`."
    )
    cause_event_id: str = Field(description="The CloudEvents id of the event that matched.")
    cause_event_type: str

    @property
    def key(self) -> str:
        return str(self.contact_id)
