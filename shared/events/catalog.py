"""Every event type the platform emits, and the one registry that parses them.

Event data carries ids, not PII: consumers that need a person's details ask the owning service.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from shared.auth.events import ApiKeyCreated, ApiKeyRevoked
from shared.events import topics
from shared.events.base import Event, Payload, Upcaster, string_changes_are_json
from shared.events.base import FieldChange as FieldChange  # re-exported: it moved to base, shared by all
from shared.events.base import ValueChange as ValueChange  # re-exported, as FieldChange
from shared.events.companies import (
    CompanyContactAdded,
    CompanyContactRemoved,
    CompanyCreated,
    CompanyDeleted,
    CompanyUpdated,
)
from shared.events.deals import (
    DealContactAdded,
    DealContactRemoved,
    DealCreated,
    DealDeleted,
    DealLost,
    DealStageChanged,
    DealUpdated,
    DealWon,
)
from shared.events.entries import ContactFeedbackRecorded, ContactFeedbackRemoved
from shared.events.journeys import JourneyStageEntered
from shared.events.referrals import (
    ClickRecorded,
    CommissionApproved,
    CommissionCreated,
    CommissionPaid,
    CommissionReversed,
    ConversionDuplicate,
    ConversionRecorded,
    ConversionStatusChanged,
    ReferralRewardGranted,
)
from shared.events.registry import EventRegistry
from shared.events.touchpoints import TouchpointRecorded, TouchpointResolved


def _no_owner_region_or_country(payload: Payload) -> Payload:
    return {**payload, "owner": None, "region": None, "country": None}


def _no_email_hashes(payload: Payload) -> Payload:
    return {**payload, "email_hashes": []}


EMAIL_HASHES = (
    "Keyed hashes (HMAC-SHA256, hex, `shared.identity`) of the contact's emails, the primary one first: "
    "a service matching people by email compares its own hash of an address, never the address."
)


class ContactCreated(Event):
    """A contact was created in the contacts service.

    v3: `email_hashes`. v2: owner, region and country.
    """

    topic = topics.CONTACTS.name
    type: Literal["crm.contact.created"] = "crm.contact.created"
    schema_version: Literal[3] = 3
    upcasters: ClassVar[Mapping[int, Upcaster]] = {1: _no_owner_region_or_country, 2: _no_email_hashes}

    contact_id: uuid.UUID
    lifecycle_stage: str
    source: str | None = None
    # v2: who owns the contact and where it is, for per-owner and per-region KPIs (not personal data).
    owner: str | None = None
    region: str | None = None
    country: str | None = Field(None, description="ISO 3166-1 alpha-2.")
    email_hashes: list[str] = Field(default_factory=list, description=EMAIL_HASHES)
    created_at: datetime

    @property
    def key(self) -> str:
        return str(self.contact_id)


def _emails_not_said(payload: Payload) -> Payload:
    return {**payload, "email_hashes": None}


class ContactUpdated(Event):
    """Fields of a contact were changed; emitted only when at least one value changed.

    `changed_fields` names every field that changed (custom properties as `properties.<key>`). `changes`
    carries old and new values only for fields that are not personal data: `lifecycle_stage`, `source`,
    `owner`, `region`, `country`, `tags`, and custom properties defined with `personal_data: false`.
    Names, emails and phone numbers are PII, and the log keeps every event for ever, where an erasure
    could not reach them. A consumer that needs a person's current details asks the contacts service.

    v3: `email_hashes` when the emails changed. v2: values are any JSON (v1: strings only).
    """

    topic = topics.CONTACTS.name
    type: Literal["crm.contact.updated"] = "crm.contact.updated"
    schema_version: Literal[3] = 3
    upcasters: ClassVar[Mapping[int, Upcaster]] = {1: string_changes_are_json, 2: _emails_not_said}

    contact_id: uuid.UUID
    changed_fields: list[str] = Field(description="Every field that changed, personal ones included, sorted.")
    changes: dict[str, ValueChange] = Field(
        description="Old and new values of the changed fields that are not personal data."
    )
    email_hashes: list[str] | None = Field(
        None, description=EMAIL_HASHES + " Every email after the change; null when the emails did not change."
    )
    updated_at: datetime

    @property
    def key(self) -> str:
        return str(self.contact_id)


class ContactLifecycleChanged(Event):
    """A contact moved to another lifecycle stage (also on creation, from none). The reason given stays
    in the contacts service, since free text may name people."""

    topic = topics.CONTACTS.name
    type: Literal["crm.contact.lifecycle_changed"] = "crm.contact.lifecycle_changed"
    schema_version: Literal[1] = 1

    contact_id: uuid.UUID
    from_stage: str | None = Field(description="Null when the contact was just created.")
    to_stage: str
    actor: str = Field(description="The API key id, or the consumer, that made the change.")
    changed_at: datetime

    @property
    def key(self) -> str:
        return str(self.contact_id)


class ContactConsentChanged(Event):
    """A contact's consent to a purpose, or subscription to a mailing list, changed status. The proof
    stays in the contacts service (it may hold an address or a signature)."""

    topic = topics.CONTACTS.name
    type: Literal["crm.contact.consent_changed"] = "crm.contact.consent_changed"
    schema_version: Literal[1] = 1

    contact_id: uuid.UUID
    kind: Literal["consent", "subscription"]
    purpose: str | None = Field(None, description="For a consent: the purpose, e.g. `email_marketing`.")
    list_key: str | None = Field(None, description="For a subscription: the mailing list's key.")
    status: str = Field(description="`granted` or `withdrawn`; `subscribed` or `unsubscribed`.")
    source: str = Field(description="Where it was given, e.g. `signup_form`.")
    marketing_allowed: bool = Field(description="Whether marketing may reach the contact after the change.")
    changed_at: datetime

    @property
    def key(self) -> str:
        return str(self.contact_id)


class ContactMerged(Event):
    """A contact was merged into another, which keeps its ids, history and associations: a consumer moves
    what it holds under `merged_contact_id` to `contact_id`. The losing id reads as the survivor from then
    on. Keyed by the merged (losing) contact, so it comes after every earlier event of that contact."""

    topic = topics.CONTACTS.name
    type: Literal["crm.contact.merged"] = "crm.contact.merged"
    schema_version: Literal[1] = 1

    contact_id: uuid.UUID = Field(description="The surviving contact.")
    merged_contact_id: uuid.UUID = Field(description="The contact merged into it; it exists no more.")
    merge_id: uuid.UUID = Field(description="The merge's record: `GET /v1/contacts/{contact_id}/merges`.")
    actor: str = Field(description="The API key id that asked for the merge.")
    merged_at: datetime

    @property
    def key(self) -> str:
        return str(self.merged_contact_id)


def _nothing_merged_into_it(payload: Payload) -> Payload:
    return {**payload, "merged_contact_ids": []}


class ContactErased(Event):
    """A person's data was erased in the contacts service; every service erases what it holds of them
    and confirms with `crm.erasure.confirmed` naming the receipt.

    v2: `merged_contact_ids`, the contacts once merged into this one. A consumer may see this event
    before a `crm.contact.merged` (another key, so another partition): it erases those ids too.
    """

    topic = topics.CONTACTS.name
    type: Literal["crm.contact.erased"] = "crm.contact.erased"
    schema_version: Literal[2] = 2
    upcasters: ClassVar[Mapping[int, Upcaster]] = {1: _nothing_merged_into_it}

    contact_id: uuid.UUID
    merged_contact_ids: list[uuid.UUID] = Field(
        default_factory=list, description="Contacts merged into this one earlier; erased with it."
    )
    receipt_id: uuid.UUID
    erased_at: datetime

    @property
    def key(self) -> str:
        return str(self.contact_id)


class ErasureConfirmed(Event):
    """A service erased what it held of a person, for the receipt named."""

    topic = topics.PRIVACY.name
    type: Literal["crm.erasure.confirmed"] = "crm.erasure.confirmed"
    schema_version: Literal[1] = 1

    receipt_id: uuid.UUID
    contact_id: uuid.UUID
    service: str
    confirmed_at: datetime

    @property
    def key(self) -> str:
        return str(self.receipt_id)


REGISTRY = EventRegistry(
    [
        ApiKeyCreated,
        ApiKeyRevoked,
        ContactCreated,
        ContactUpdated,
        ContactLifecycleChanged,
        ContactConsentChanged,
        ContactMerged,
        ContactErased,
        ContactFeedbackRecorded,
        ContactFeedbackRemoved,
        ErasureConfirmed,
        CompanyCreated,
        CompanyUpdated,
        CompanyContactAdded,
        CompanyContactRemoved,
        CompanyDeleted,
        DealCreated,
        DealUpdated,
        DealStageChanged,
        DealWon,
        DealLost,
        DealDeleted,
        DealContactAdded,
        DealContactRemoved,
        TouchpointRecorded,
        TouchpointResolved,
        JourneyStageEntered,
        ClickRecorded,
        ConversionRecorded,
        ConversionDuplicate,
        ConversionStatusChanged,
        CommissionCreated,
        CommissionApproved,
        CommissionPaid,
        CommissionReversed,
        ReferralRewardGranted,
    ]
)
