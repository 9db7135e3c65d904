"""Business rules for contacts. Flushes, never commits: the caller's session scope commits.

Three ways write contacts, and all go through `_create_many` and `update_many`, so a field is checked,
recorded in the history and announced the same way whichever way it came:
- `create_contacts`: POST, through group commit (many requests, one transaction; see `shared.batching`);
- `update_contact`: PATCH, a merge patch of one contact, optionally under `If-Match`;
- `upsert_contacts`: a batch upsert or an import, each record matched by any of its identities.

Identities (emails, external ids, anonymous ids) are rows of `contact_identity`, unique across all
contacts. A write claims the ones it adds with one `INSERT … ON CONFLICT DO NOTHING`; an identity that
someone else holds makes that record an `AlreadyExists` naming the holder, and the record writes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.contacts.fields import CONTACT_FIELDS
from services.contacts.contacts.models import Contact, LifecycleTransition, PropertyChange
from services.contacts.contacts.repository import NEWEST_FIRST, ContactRepository, Identity
from services.contacts.contacts.schemas import (
    ANONYMOUS,
    EMAIL,
    EXTERNAL_PREFIX,
    ContactFields,
    LifecycleStage,
)
from services.contacts.db import outbox
from services.contacts.merges.repository import survivor_of
from services.contacts.properties.models import PropertyDefinition
from services.contacts.properties.repository import PropertyRepository
from services.contacts.properties.schemas import ObjectType
from services.contacts.properties.service import CheckedValue, check_values
from services.contacts.search.compiler import FilterCompiler
from services.contacts.search.schemas import Filter, SearchRequest
from shared.batch import Outcome, RecordError, RecordResult, error_of
from shared.db import utc_now
from shared.errors import AlreadyExists, DomainError, Gone, InvalidValue, NotFound, StaleVersion
from shared.events.base import Event
from shared.events.catalog import ContactCreated, ContactLifecycleChanged, ContactUpdated, ValueChange
from shared.identity import hasher_of
from shared.pagination import PageRequest, Slice

# Plain columns a write may set. `email` is also the primary email identity.
SCALARS = (
    "email",
    "first_name",
    "last_name",
    "phone",
    "mobile_phone",
    "street",
    "city",
    "postal_code",
    "state",
    "country",
    "birthday",
    "job_title",
    "company_name",
    "owner",
    "region",
    "lifecycle_stage",
    "source",
)
# Fields whose values may go on the stream; the others are personal data (see `ContactUpdated`).
PUBLISHED_VALUES = frozenset({"lifecycle_stage", "source", "owner", "region", "country", "tags"})


class ContactNotFound(NotFound):
    def __init__(self, contact_id: uuid.UUID) -> None:
        super().__init__("Contact", contact_id)


class ContactErased(Gone):
    def __init__(self, contact_id: uuid.UUID) -> None:
        super().__init__(
            "Contact", contact_id, f"Contact {contact_id} was erased; its data is gone for good."
        )


def alive(contact: Contact | None, contact_id: uuid.UUID) -> Contact:
    """The contact, or why there is none to work with: never there (404), or erased (410)."""
    if contact is None:
        raise ContactNotFound(contact_id)
    if contact.erased_at is not None:
        raise ContactErased(contact_id)
    return contact


@dataclass(frozen=True)
class Author:
    """Who writes, for the history: an API key id (or a consumer), and the way in."""

    actor: str
    source: str = "api"


@dataclass
class ContactDetails:
    """A contact with its identities and tags as they are after the write (or as read)."""

    contact: Contact
    identities: list[Identity]
    tags: list[str]

    @classmethod
    def loaded(cls, contact: Contact) -> ContactDetails:
        """From a contact read with `repository.WITH_DETAILS`."""
        return cls(
            contact,
            [(identity.namespace, identity.value) for identity in contact.identities],
            [tag.tag for tag in contact.tags],
        )

    @property
    def emails(self) -> list[str]:
        """Every email, the primary one first."""
        others = [value for namespace, value in self.identities if namespace == EMAIL]
        primary = self.contact.email
        return [primary, *(email for email in others if email != primary)] if primary else others

    @property
    def external_ids(self) -> list[dict[str, str]]:
        return [
            {"system": namespace.removeprefix(EXTERNAL_PREFIX), "id": value}
            for namespace, value in self.identities
            if namespace.startswith(EXTERNAL_PREFIX)
        ]

    @property
    def anonymous_ids(self) -> list[str]:
        return [value for namespace, value in self.identities if namespace == ANONYMOUS]


def identities_of(values: Mapping[str, Any]) -> list[Identity]:
    """The identities a body gives, in order, without repeats."""
    found: list[Identity] = []
    if values.get("email"):
        found.append((EMAIL, values["email"]))
    found += [(EMAIL, email) for email in values.get("emails") or []]
    found += [(EXTERNAL_PREFIX + ext["system"], ext["id"]) for ext in values.get("external_ids") or []]
    found += [(ANONYMOUS, anonymous_id) for anonymous_id in values.get("anonymous_ids") or []]
    return list(dict.fromkeys(found))


def describe(identity: Identity) -> str:
    namespace, value = identity
    if namespace == EMAIL:
        return f"email {value}"
    if namespace == ANONYMOUS:
        return f"anonymous id {value}"
    return f"{namespace.removeprefix(EXTERNAL_PREFIX)} id {value}"


def as_json(value: Any) -> Any:
    """A value as the history and the stream hold it."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


@dataclass
class WriteBatch:
    """What one write collects, to insert in one statement per table at the end. Another feature that
    changes contacts (a merge) plans and applies its updates through one, so its changes are checked,
    kept in the history and announced like any other write."""

    session: AsyncSession
    repository: ContactRepository
    definitions: dict[str, PropertyDefinition] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    transitions: list[dict[str, Any]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    custom_values: dict[uuid.UUID, dict[str, list[Any]]] = field(default_factory=dict)

    @classmethod
    def of(cls, session: AsyncSession) -> WriteBatch:
        return cls(session, ContactRepository(session))

    async def check_properties(self, given: Mapping[str, Any] | None) -> dict[str, CheckedValue]:
        if not given:
            return {}
        if self.definitions is None:
            self.definitions = await PropertyRepository(self.session).of_type(ObjectType.CONTACT)
        return check_values(self.definitions, given)

    def published_property(self, key: str) -> bool:
        definition = (self.definitions or {}).get(key)
        return definition is not None and not definition.personal_data

    def record(
        self, contact_id: uuid.UUID, author: Author, at: datetime, changes: Mapping[str, tuple[Any, Any]]
    ) -> None:
        self.history += [
            {
                "id": uuid.uuid4(),
                "contact_id": contact_id,
                "property": name,
                "old_value": as_json(old),
                "new_value": as_json(new),
                "changed_at": at,
                "actor": author.actor,
                "source": author.source,
            }
            for name, (old, new) in changes.items()
        ]

    def transition(
        self,
        contact_id: uuid.UUID,
        author: Author,
        at: datetime,
        from_stage: str | None,
        to_stage: str,
        reason: str | None = None,
    ) -> None:
        self.transitions.append(
            {
                "id": uuid.uuid4(),
                "contact_id": contact_id,
                "from_stage": from_stage,
                "to_stage": to_stage,
                "changed_at": at,
                "actor": author.actor,
                "reason": reason,
            }
        )

    async def finish(self) -> None:
        """Write what the batch collected. Events last: after the rows they announce (see outbox)."""
        await PropertyRepository(self.session).replace_values(ObjectType.CONTACT, self.custom_values)
        await self.repository.add_transitions(self.transitions)
        await self.repository.add_history(self.history)
        await outbox.add_many(self.session, self.events)


async def _create_many(
    batch: WriteBatch, items: Sequence[tuple[Mapping[str, Any], Author]]
) -> list[ContactDetails | DomainError]:
    """Create a contact per item (all fields as given, None for the rest) in one statement per table."""
    outcomes: list[ContactDetails | DomainError | None] = [None] * len(items)
    checked: dict[int, dict[str, CheckedValue]] = {}
    planned = [uuid.uuid4() for _ in items]
    wanted: dict[int, list[Identity]] = {}
    first_holder: dict[Identity, int] = {}
    repeats: dict[int, tuple[Identity, int]] = {}
    """Items naming an identity an earlier item of the batch named: (that identity, that item)."""
    for index, (values, _author) in enumerate(items):
        try:
            checked[index] = await batch.check_properties(values.get("properties"))
        except InvalidValue as exc:
            outcomes[index] = exc
            continue
        identities = identities_of(values)
        repeated = next((identity for identity in identities if identity in first_holder), None)
        if repeated is not None:
            # Answered below, once it is known whether that earlier item got the identity.
            repeats[index] = (repeated, first_holder[repeated])
            continue
        first_holder.update(dict.fromkeys(identities, index))
        wanted[index] = identities

    now = utc_now()
    claimed = await batch.repository.claim_identities(
        [
            {"namespace": namespace, "value": value, "contact_id": planned[index], "created_at": now}
            for index, identities in wanted.items()
            for namespace, value in identities
        ]
    )
    refused = {
        index: missing
        for index, identities in wanted.items()
        if (missing := [identity for identity in identities if identity not in claimed])
    }
    holders: dict[Identity, uuid.UUID] = {}
    if refused:
        # The holders of what was refused, and of what a repeat of a refused item named: another
        # contact holds it, not the one this batch planned and will not create.
        asked = [missing[0] for missing in refused.values()]
        asked += [identity for identity, first in repeats.values() if first in refused]
        holders = await batch.repository.holders(asked)
        await batch.repository.release_identities(
            [identity for index in refused for identity in wanted[index] if identity in claimed]
        )
        for index, missing in refused.items():
            outcomes[index] = AlreadyExists(
                f"A contact with {describe(missing[0])} already exists.",
                existing_id=holders.get(missing[0], "unknown"),
            )
            del wanted[index]
    for index, (identity, first) in repeats.items():
        outcomes[index] = AlreadyExists(
            f"A contact with {describe(identity)} already exists.",
            existing_id=planned[first] if first in wanted else holders.get(identity, "unknown"),
        )

    hasher = hasher_of(batch.session)
    rows = []
    for index in wanted:
        values = items[index][0]
        row = {name: values.get(name) for name in SCALARS}
        row["lifecycle_stage"] = row["lifecycle_stage"] or LifecycleStage.SUBSCRIBER.value
        properties = {key: value.stored for key, value in checked[index].items() if value.stored is not None}
        rows.append(
            {**row, "id": planned[index], "properties": properties, "created_at": now, "updated_at": now}
        )
    created = {contact.id: contact for contact in await batch.repository.insert_contacts(rows)}

    tag_rows = []
    for index in wanted:
        values, author = items[index]
        contact = created[planned[index]]
        tags = list(values.get("tags") or [])
        tag_rows += [{"contact_id": contact.id, "tag": tag} for tag in tags]
        batch.custom_values.setdefault(contact.id, {}).update(
            {key: value.searchable for key, value in checked[index].items()}
        )
        initial: dict[str, tuple[Any, Any]] = {
            name: (None, getattr(contact, name)) for name in SCALARS if getattr(contact, name) is not None
        }
        for name in ("emails", "external_ids", "anonymous_ids"):
            if values.get(name):
                initial[name] = (None, list(values[name]))
        if tags:
            initial["tags"] = (None, tags)
        initial |= {f"properties.{key}": (None, stored) for key, stored in contact.properties.items()}
        batch.record(contact.id, author, now, initial)
        batch.transition(contact.id, author, now, None, contact.lifecycle_stage)
        batch.events.append(
            ContactCreated(
                contact_id=contact.id,
                lifecycle_stage=contact.lifecycle_stage,
                source=contact.source,
                owner=contact.owner,
                region=contact.region,
                country=contact.country,
                email_hashes=[
                    hasher.email(email) for email in ContactDetails(contact, wanted[index], []).emails
                ],
                created_at=contact.created_at,
            )
        )
        outcomes[index] = ContactDetails(contact, wanted[index], tags)
    await batch.repository.add_tags(tag_rows)
    assert all(outcome is not None for outcome in outcomes)
    return [outcome for outcome in outcomes if outcome is not None]


@dataclass
class _Update:
    """One contact's planned change, worked out before anything is written."""

    details: ContactDetails
    author: Author
    scalars: dict[str, tuple[Any, Any]]
    properties: dict[str, CheckedValue]
    added: list[Identity]
    removed: list[Identity]
    tags: list[str] | None
    reason: str | None = None

    @property
    def changes_anything(self) -> bool:
        return bool(
            self.scalars
            or self.properties
            or self.added
            or self.removed
            or (self.tags is not None and self.tags != self.details.tags)
        )


def _desired_identities(
    details: ContactDetails, values: Mapping[str, Any], *, add_only: bool
) -> list[Identity]:
    """The identities the contact has after the write. A merge patch replaces each kind it gives; a
    batch upsert only adds (it matched the contact by some of them, and must not drop the others)."""
    current = details.identities
    given = identities_of(values)
    if add_only:
        return list(dict.fromkeys([*current, *given]))
    kept: list[Identity] = []
    primary = values.get("email", details.contact.email)
    emails = (
        values["emails"] if "emails" in values else [e for e in details.emails if e != details.contact.email]
    )
    kept += [(EMAIL, email) for email in [primary, *(emails or [])] if email]
    if "external_ids" in values:
        kept += [identity for identity in given if identity[0].startswith(EXTERNAL_PREFIX)]
    else:
        kept += [identity for identity in current if identity[0].startswith(EXTERNAL_PREFIX)]
    if "anonymous_ids" in values:
        kept += [identity for identity in given if identity[0] == ANONYMOUS]
    else:
        kept += [identity for identity in current if identity[0] == ANONYMOUS]
    return list(dict.fromkeys(kept))


async def plan_update(
    batch: WriteBatch,
    details: ContactDetails,
    values: Mapping[str, Any],
    author: Author,
    *,
    add_only: bool,
    reason: str | None = None,
) -> _Update:
    contact = details.contact
    scalars = {
        name: (getattr(contact, name), values[name])
        for name in SCALARS
        if name in values and getattr(contact, name) != values[name]
    }
    if scalars.get("lifecycle_stage", (None, "kept"))[1] is None:
        del scalars["lifecycle_stage"]  # an upsert record without a stage keeps the contact's
    if add_only and contact.email is not None:
        # An upsert's email is how it matched, not a wish to change the primary: it is only added.
        scalars.pop("email", None)
    checked = await batch.check_properties(values.get("properties"))
    properties = {key: value for key, value in checked.items() if contact.properties.get(key) != value.stored}
    desired = _desired_identities(details, values, add_only=add_only)
    return _Update(
        details=details,
        author=author,
        scalars=scalars,
        properties=properties,
        added=[identity for identity in desired if identity not in details.identities],
        removed=[identity for identity in details.identities if identity not in desired],
        tags=list(values["tags"]) if values.get("tags") is not None else ([] if "tags" in values else None),
        reason=reason,
    )


async def update_many(
    batch: WriteBatch, updates: Sequence[_Update]
) -> list[tuple[ContactDetails, bool] | DomainError]:
    """Apply planned updates; each gives the contact and whether it changed, or its own error."""
    outcomes: list[tuple[ContactDetails, bool] | DomainError | None] = [None] * len(updates)
    now = utc_now()
    claimed = await batch.repository.claim_identities(
        [
            {
                "namespace": namespace,
                "value": value,
                "contact_id": update.details.contact.id,
                "created_at": now,
            }
            for update in updates
            for namespace, value in update.added
        ]
    )
    refused = [
        (index, missing)
        for index, update in enumerate(updates)
        if (missing := [identity for identity in update.added if identity not in claimed])
    ]
    if refused:
        holders = await batch.repository.holders([missing[0] for _, missing in refused])
        await batch.repository.release_identities(
            [identity for index, _ in refused for identity in updates[index].added if identity in claimed]
        )
        for index, missing in refused:
            outcomes[index] = AlreadyExists(
                f"A contact with {describe(missing[0])} already exists.",
                existing_id=holders.get(missing[0], "unknown"),
            )

    hasher = hasher_of(batch.session)
    released: list[Identity] = []
    removed_tags: list[tuple[uuid.UUID, str]] = []
    added_tags: list[dict[str, Any]] = []
    for index, update in enumerate(updates):
        if outcomes[index] is not None:
            continue
        details, contact = update.details, update.details.contact
        if not update.changes_anything:
            outcomes[index] = (details, False)
            continue
        changes: dict[str, tuple[Any, Any]] = dict(update.scalars)
        for name, (_old, new) in update.scalars.items():
            setattr(contact, name, new)
        if update.properties:
            merged = dict(contact.properties)
            for key, value in update.properties.items():
                changes[f"properties.{key}"] = (merged.get(key), value.stored)
                if value.stored is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value.stored
            contact.properties = merged
            batch.custom_values.setdefault(contact.id, {}).update(
                {key: value.searchable for key, value in update.properties.items()}
            )
        for kind, label in ((EMAIL, "emails"), (ANONYMOUS, "anonymous_ids")):
            before = [value for namespace, value in details.identities if namespace == kind]
            after = [
                value
                for namespace, value in [*details.identities, *update.added]
                if namespace == kind and (namespace, value) not in update.removed
            ]
            if set(before) != set(after):
                changes[label] = (before, after)
        before_ext = details.external_ids
        released += update.removed
        details.identities = [
            identity for identity in [*details.identities, *update.added] if identity not in update.removed
        ]
        if before_ext != details.external_ids:
            changes["external_ids"] = (before_ext, details.external_ids)
        if update.tags is not None and update.tags != details.tags:
            changes["tags"] = (details.tags, update.tags)
            removed_tags += [(contact.id, tag) for tag in details.tags if tag not in update.tags]
            added_tags += [
                {"contact_id": contact.id, "tag": tag} for tag in update.tags if tag not in details.tags
            ]
            details.tags = list(update.tags)
        contact.updated_at = now
        batch.record(contact.id, update.author, now, changes)
        outcomes[index] = (details, True)
        published = {
            name: ValueChange(old=as_json(old), new=as_json(new))
            for name, (old, new) in changes.items()
            if name in PUBLISHED_VALUES
            or (name.startswith("properties.") and batch.published_property(name.removeprefix("properties.")))
        }
        emails_changed = "email" in changes or "emails" in changes
        batch.events.append(
            ContactUpdated(
                contact_id=contact.id,
                changed_fields=sorted(changes),
                changes=published,
                email_hashes=[hasher.email(email) for email in details.emails] if emails_changed else None,
                updated_at=now,
            )
        )
        if "lifecycle_stage" in update.scalars:
            old_stage, new_stage = update.scalars["lifecycle_stage"]
            batch.transition(contact.id, update.author, now, old_stage, new_stage, update.reason)
            batch.events.append(
                ContactLifecycleChanged(
                    contact_id=contact.id,
                    from_stage=old_stage,
                    to_stage=new_stage,
                    actor=update.author.actor,
                    changed_at=now,
                )
            )
    await batch.repository.release_identities(released)
    await batch.repository.remove_tags(removed_tags)
    await batch.repository.add_tags(added_tags)
    # The UPDATEs, each `WHERE version = <read>` (see `Contact.version`).
    await batch.session.flush()
    assert all(outcome is not None for outcome in outcomes)
    return [outcome for outcome in outcomes if outcome is not None]


@dataclass(frozen=True)
class NewContact:
    """One POST: the body and who sent it."""

    data: ContactFields
    author: Author


async def create_contacts(
    session: AsyncSession, items: Sequence[NewContact]
) -> list[ContactDetails | DomainError]:
    """Create a batch of contacts (see `shared.batching`). An identity that is taken, or that an earlier
    item of the batch takes, makes that item an `AlreadyExists` naming the holder; it writes nothing."""
    batch = WriteBatch.of(session)
    outcomes = await _create_many(batch, [(item.data.model_dump(), item.author) for item in items])
    await batch.finish()
    return outcomes


async def get_contact(session: AsyncSession, contact_id: uuid.UUID) -> ContactDetails:
    """The contact; for the id of a contact merged into another, the survivor (its id tells them apart)."""
    repository = ContactRepository(session)
    contact = await repository.get(contact_id)
    if contact is None:
        survivor_id = await survivor_of(session, contact_id)
        if survivor_id is not None:
            contact = await repository.get(survivor_id)
    return ContactDetails.loaded(alive(contact, contact_id))


async def list_contacts(session: AsyncSession, page: PageRequest) -> Slice[ContactDetails]:
    """Newest first (`repository.NEWEST_FIRST`)."""
    found = await ContactRepository(session).page(page)
    return Slice([ContactDetails.loaded(contact) for contact in found.items], found.next_cursor)


async def _existing(repository: ContactRepository, contact_id: uuid.UUID) -> None:
    alive(await repository.get(contact_id), contact_id)


async def list_transitions(
    session: AsyncSession, contact_id: uuid.UUID, page: PageRequest
) -> Slice[LifecycleTransition]:
    repository = ContactRepository(session)
    await _existing(repository, contact_id)
    return await repository.transitions(contact_id, page)


async def list_history(
    session: AsyncSession, contact_id: uuid.UUID, page: PageRequest, prop: str | None
) -> Slice[PropertyChange]:
    repository = ContactRepository(session)
    await _existing(repository, contact_id)
    return await repository.history(contact_id, page, prop)


async def update_contact(
    session: AsyncSession,
    contact_id: uuid.UUID,
    patch: ContactFields,
    author: Author,
    *,
    if_match: Collection[str] | None = None,
    reason: str | None = None,
) -> ContactDetails:
    """Apply a merge patch and announce what changed as `crm.contact.updated` (and a stage change as
    `crm.contact.lifecycle_changed`); nothing changed, no event and no new version.

    `if_match` holds the entity tags the caller based the patch on (None: whatever is current). The
    contact is read locked (PostgreSQL; SQLite has one writer at a time), so the tag compared is the
    one the UPDATE replaces; the UPDATE's version check (`Contact.version`) guards the rest.
    """
    batch = WriteBatch.of(session)
    contact = alive(await batch.repository.get(contact_id, fresh=True, for_update=True), contact_id)
    if if_match is not None and contact.etag not in if_match:
        raise StaleVersion("Contact", contact_id, current=contact.etag)
    update = await plan_update(
        batch, ContactDetails.loaded(contact), patch.given(), author, add_only=False, reason=reason
    )
    [outcome] = await update_many(batch, [update])
    if isinstance(outcome, DomainError):
        raise outcome
    await batch.finish()
    return outcome[0]


async def upsert_contacts(
    session: AsyncSession, records: Sequence[ContactFields | RecordError], author: Author
) -> list[RecordResult]:
    """Create or update each record, matched by any identity it gives (email, emails, external or
    anonymous ids). One record's error is that record's result; the others are written.

    Records are written in rounds: a record that shares an identity, or its matched contact, with an
    earlier record of the same round waits for the next, so the batch reads as if written in order.
    """
    results: list[RecordResult | None] = [None] * len(records)
    pending: list[tuple[int, dict[str, Any]]] = []
    for index, record in enumerate(records):
        if isinstance(record, RecordError):
            results[index] = RecordResult(index=index, status=Outcome.ERROR, error=record)
        elif not identities_of(values := record.given()):
            results[index] = RecordResult(
                index=index,
                status=Outcome.ERROR,
                error=RecordError(
                    field="email",
                    message="A record needs an email or an external id to match.",
                    code="missing",
                ),
            )
        else:
            pending.append((index, values))

    batch = WriteBatch.of(session)
    while pending:
        holders = await batch.repository.holders({i for _, values in pending for i in identities_of(values)})
        this_round: list[tuple[int, dict[str, Any], uuid.UUID | None]] = []
        later: list[tuple[int, dict[str, Any]]] = []
        taken: set[Identity] = set()
        targeted: set[uuid.UUID] = set()
        for index, values in pending:
            identities = set(identities_of(values))
            matched = {holders[i] for i in identities if i in holders}
            if len(matched) > 1:
                results[index] = RecordResult(
                    index=index,
                    status=Outcome.ERROR,
                    error=RecordError(
                        field=None,
                        message="The record's identities belong to different contacts: "
                        + ", ".join(sorted(str(contact_id) for contact_id in matched))
                        + ". Merge them first.",
                        code="conflict",
                        existing_id=str(min(matched)),
                    ),
                )
                continue
            target = next(iter(matched), None)
            waits = bool(identities & taken) or (target is not None and target in targeted)
            # A record that waits still holds its identities and contact for this round: a later
            # record sharing one must not overtake it.
            taken |= identities
            if target is not None:
                targeted.add(target)
            if waits:
                later.append((index, values))
            else:
                this_round.append((index, values, target))
        pending = later

        creations = [(index, values) for index, values, target in this_round if target is None]
        created = await _create_many(batch, [(values, author) for _, values in creations])
        for (index, _), outcome in zip(creations, created, strict=True):
            results[index] = (
                RecordResult(index=index, status=Outcome.ERROR, error=error_of(outcome))
                if isinstance(outcome, DomainError)
                else RecordResult(index=index, status=Outcome.CREATED, id=outcome.contact.id)
            )

        targets = [(index, values, target) for index, values, target in this_round if target is not None]
        loaded = await batch.repository.many([target for _, _, target in targets], for_update=True)
        contacts = {contact.id: contact for contact in loaded}
        updates: list[tuple[int, _Update]] = []
        for index, values, target in targets:
            try:
                plan = await plan_update(
                    batch, ContactDetails.loaded(contacts[target]), values, author, add_only=True
                )
            except DomainError as exc:
                results[index] = RecordResult(index=index, status=Outcome.ERROR, error=error_of(exc))
                continue
            updates.append((index, plan))
        applied = await update_many(batch, [plan for _, plan in updates])
        for (index, plan), result in zip(updates, applied, strict=True):
            if isinstance(result, DomainError):
                results[index] = RecordResult(index=index, status=Outcome.ERROR, error=error_of(result))
            else:
                status = Outcome.UPDATED if result[1] else Outcome.UNCHANGED
                results[index] = RecordResult(index=index, status=status, id=plan.details.contact.id)
    await batch.finish()
    assert all(result is not None for result in results)
    return [result for result in results if result is not None]


@dataclass(frozen=True)
class SearchResult:
    page: Slice[ContactDetails]
    total: int | None


async def search_contacts(session: AsyncSession, request: SearchRequest) -> SearchResult:
    """The contacts `request.filter` matches, sorted and paged as it asks (see `services.contacts.search`)."""
    definitions = await PropertyRepository(session).of_type(ObjectType.CONTACT)
    compiler = FilterCompiler(CONTACT_FIELDS, definitions)
    condition = and_(Contact.erased_at.is_(None), compiler.where(request.filter))
    statement, keyset = compiler.sorted(
        select(Contact).where(condition), request.sort, NEWEST_FIRST, within=request.filter
    )
    page = PageRequest(limit=request.limit, after=keyset.decode(request.cursor) if request.cursor else None)
    repository = ContactRepository(session)
    found = await repository.search_page(statement, keyset, page)
    total = await repository.count(condition) if request.with_total else None
    return SearchResult(Slice([ContactDetails.loaded(c) for c in found.items], found.next_cursor), total)


async def count_contacts(session: AsyncSession, node: Filter | None) -> int:
    """How many contacts `node` matches; checks the filter like a search does."""
    definitions = await PropertyRepository(session).of_type(ObjectType.CONTACT)
    condition = and_(Contact.erased_at.is_(None), FilterCompiler(CONTACT_FIELDS, definitions).where(node))
    return await ContactRepository(session).count(condition)
