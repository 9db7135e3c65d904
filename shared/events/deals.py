"""Deal events, on `crm.deals` with the deal id as the record key.

Every deal event carries the deal as it stands after the change (`DealSnapshot`): pipeline, stage and
its status, amount and currency, owner, created and closed times. So a consumer such as the KPI service
computes win rate, deal size, sales cycle (`closed_at - created_at`) and sales per owner from any one
event, without keeping the deal's earlier events. A move into a won or lost stage is announced twice:
`crm.deal.stage_changed` (for funnels) and then `crm.deal.won` or `crm.deal.lost` (for outcomes); a
deal moved out of a closed stage again has `status` back at `open` and `closed_at` null.

The snapshot names the deal's contacts by id (`contact_ids`), so a consumer can put a deal's moves on
its people's timelines without asking the contacts service. Associating a contact with a deal, or
removing one, is announced as `crm.deal.contact_added` / `crm.deal.contact_removed`, as companies
announce theirs. Merges move associations without a deal event (`crm.contact.merged` says it for
every deal at once); an erased contact stays named by id, which is not personal data.

No free text goes on the stream: not the deal's name (sales people write customers' names into it) and
not the note given with a stage change. Reasons are short codes (`price`, `competitor`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import Field

from shared.events import topics
from shared.events.base import Event, Payload, Upcaster, ValueChange, string_changes_are_json

DealStatus = Literal["open", "won", "lost"]


def _contacts_not_said(payload: Payload) -> Payload:
    """Upcaster to the version that added `contact_ids`: an older event did not say which contacts the
    deal had (it may have had some), which is null, not an empty list."""
    return {**payload, "contact_ids": None}


_CONTACTS_NOT_SAID: Mapping[int, Upcaster] = {1: _contacts_not_said}


class DealSnapshot(Event):
    """The fields every deal event carries; not an event type of its own."""

    topic = topics.DEALS.name

    deal_id: uuid.UUID
    pipeline_id: uuid.UUID
    stage: str = Field(description="Key of the deal's stage in its pipeline, after the change.")
    status: DealStatus = Field(description="Kind of that stage: `open`, `won` or `lost`.")
    amount: int | None = Field(description="In minor units of `currency` (cents for EUR).")
    currency: str | None = Field(description="ISO 4217.")
    owner: str | None = Field(description="Id of the sales person who owns the deal.")
    expected_close_date: date | None
    created_at: datetime
    closed_at: datetime | None = Field(description="When the deal entered its won or lost stage; else null.")
    contact_ids: list[uuid.UUID] | None = Field(
        description="Ids of the contacts associated with the deal after the change, sorted. Null only "
        "in events of an earlier schema version, which did not say (not: had none)."
    )

    @property
    def key(self) -> str:
        return str(self.deal_id)


class DealCreated(DealSnapshot):
    """A deal was created (always in an open stage).

    v2: `contact_ids`.
    """

    type: Literal["crm.deal.created"] = "crm.deal.created"
    schema_version: Literal[2] = 2
    upcasters: ClassVar[Mapping[int, Upcaster]] = _CONTACTS_NOT_SAID


class DealUpdated(DealSnapshot):
    """Fields of a deal other than its stage were changed; emitted only when a value changed.

    `changed_fields` names every field that changed, custom properties as `properties.<key>`. `changes`
    has old and new values of the standard fields but `name`, as strings (numbers in decimal, dates in
    ISO 8601), and of the custom properties defined with `personal_data: false`, as their JSON values.
    Other custom properties are named, never shown.

    v3: `contact_ids`. v2: values are any JSON, for custom properties (v1: strings only).
    """

    type: Literal["crm.deal.updated"] = "crm.deal.updated"
    schema_version: Literal[3] = 3
    upcasters: ClassVar[Mapping[int, Upcaster]] = {1: string_changes_are_json, 2: _contacts_not_said}

    changed_fields: list[str] = Field(
        description="Every field that changed, `name` and personal custom properties included, sorted."
    )
    changes: dict[str, ValueChange] = Field(
        description="Old and new values of the changed fields but `name` and personal custom properties."
    )
    updated_at: datetime


class DealStageChanged(DealSnapshot):
    """A deal moved from one stage of its pipeline to another.

    v2: `contact_ids`.
    """

    type: Literal["crm.deal.stage_changed"] = "crm.deal.stage_changed"
    schema_version: Literal[2] = 2
    upcasters: ClassVar[Mapping[int, Upcaster]] = _CONTACTS_NOT_SAID

    from_stage: str
    from_status: DealStatus
    reason: str | None = Field(
        description="Short code given with the move, e.g. `price`; required into won/lost."
    )
    changed_by: str = Field(description="Id of the API key that made the move.")
    changed_at: datetime


class DealWon(DealSnapshot):
    """A deal entered its pipeline's won stage.

    v2: `contact_ids`.
    """

    type: Literal["crm.deal.won"] = "crm.deal.won"
    schema_version: Literal[2] = 2
    upcasters: ClassVar[Mapping[int, Upcaster]] = _CONTACTS_NOT_SAID

    from_stage: str
    reason: str = Field(description="Short code for why it was won, e.g. `price`.")
    changed_by: str = Field(description="Id of the API key that closed it.")


class DealDeleted(DealSnapshot):
    """A deal was deleted, with its stage history, associations and custom property values. It carries
    the deal as it stood, so that a consumer can take it out of what it counted.

    v2: `contact_ids`.
    """

    type: Literal["crm.deal.deleted"] = "crm.deal.deleted"
    schema_version: Literal[2] = 2
    upcasters: ClassVar[Mapping[int, Upcaster]] = _CONTACTS_NOT_SAID

    deleted_at: datetime


class DealLost(DealSnapshot):
    """A deal entered its pipeline's lost stage.

    v2: `contact_ids`.
    """

    type: Literal["crm.deal.lost"] = "crm.deal.lost"
    schema_version: Literal[2] = 2
    upcasters: ClassVar[Mapping[int, Upcaster]] = _CONTACTS_NOT_SAID

    from_stage: str
    reason: str = Field(description="Short code for why it was lost, e.g. `competitor`.")
    changed_by: str = Field(description="Id of the API key that closed it.")


class DealContactAdded(DealSnapshot):
    """A contact was associated with the deal (sent once, when the association is made); `contact_ids`
    lists it."""

    type: Literal["crm.deal.contact_added"] = "crm.deal.contact_added"
    schema_version: Literal[1] = 1

    contact_id: uuid.UUID
    associated_at: datetime


class DealContactRemoved(DealSnapshot):
    """A contact's association with the deal was removed; `contact_ids` no longer lists it."""

    type: Literal["crm.deal.contact_removed"] = "crm.deal.contact_removed"
    schema_version: Literal[1] = 1

    contact_id: uuid.UUID
    removed_at: datetime
