"""Company events, on `crm.contacts` with the company id as the record key.

Companies travel beside people because associations join the two: a consumer that follows contacts
and their accounts reads one topic. No phone number goes on the stream, a company's neither: the log
keeps every event for ever, where an erasure could not reach it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from shared.events import topics
from shared.events.base import Event, Upcaster, ValueChange, string_changes_are_json


class CompanyCreated(Event):
    """A company (a B2B account) was created."""

    topic = topics.CONTACTS.name
    type: Literal["crm.company.created"] = "crm.company.created"
    schema_version: Literal[1] = 1

    company_id: uuid.UUID
    name: str
    domain: str | None = Field(None, description="Lower-case host name, e.g. `example.com`.")
    industry: str | None = None
    employee_count: int | None = None
    annual_revenue: int | None = Field(None, description="In minor units of `currency`.")
    currency: str | None = Field(None, description="ISO 4217.")
    country: str | None = Field(None, description="ISO 3166-1 alpha-2.")
    region: str | None = Field(None, description="Sales region, e.g. `EMEA`.")
    owner: str | None = Field(None, description="Id of the account manager.")
    created_at: datetime

    @property
    def key(self) -> str:
        return str(self.company_id)


class CompanyUpdated(Event):
    """Fields of a company were changed; emitted only when at least one value changed.

    `changed_fields` names every field that changed, custom properties as `properties.<key>`. `changes`
    has old and new values of the standard fields but `phone`, as strings (numbers in decimal, `"250"`),
    and of the custom properties defined with `personal_data: false`, as their JSON values (a number, a
    list of options). Other custom properties are named, never shown.

    v2: values are any JSON, for custom properties (v1: strings only).
    """

    topic = topics.CONTACTS.name
    type: Literal["crm.company.updated"] = "crm.company.updated"
    schema_version: Literal[2] = 2
    upcasters: ClassVar[Mapping[int, Upcaster]] = {1: string_changes_are_json}

    company_id: uuid.UUID
    changed_fields: list[str] = Field(
        description="Every field that changed, `phone` and personal custom properties included, sorted."
    )
    changes: dict[str, ValueChange] = Field(
        description="Old and new values of the changed fields but `phone` and personal custom properties."
    )
    updated_at: datetime

    @property
    def key(self) -> str:
        return str(self.company_id)


class CompanyContactAdded(Event):
    """A contact was associated with a company (sent once, when the association is made)."""

    topic = topics.CONTACTS.name
    type: Literal["crm.company.contact_added"] = "crm.company.contact_added"
    schema_version: Literal[1] = 1

    company_id: uuid.UUID
    contact_id: uuid.UUID
    associated_at: datetime

    @property
    def key(self) -> str:
        return str(self.company_id)


class CompanyDeleted(Event):
    """A company was deleted, and with it its custom property values and its associations with contacts
    and deals: no `crm.company.contact_removed` is sent for those, this event stands for them all."""

    topic = topics.CONTACTS.name
    type: Literal["crm.company.deleted"] = "crm.company.deleted"
    schema_version: Literal[1] = 1

    company_id: uuid.UUID
    deleted_at: datetime

    @property
    def key(self) -> str:
        return str(self.company_id)


class CompanyContactRemoved(Event):
    """A contact's association with a company was removed."""

    topic = topics.CONTACTS.name
    type: Literal["crm.company.contact_removed"] = "crm.company.contact_removed"
    schema_version: Literal[1] = 1

    company_id: uuid.UUID
    contact_id: uuid.UUID
    removed_at: datetime

    @property
    def key(self) -> str:
        return str(self.company_id)
