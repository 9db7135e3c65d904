"""Merging two records of one person into one.

The survivor keeps its id and gains everything of the merged contact: emails, external and anonymous
ids, tags, history, lifecycle transitions, consent records, company and deal associations, counters.
Where both have a value for one field, a winner rule decides (see `_decide`); a caller may name the
side that wins per field. The survivor's field changes go through the contact write path, so they are
checked, kept in its history and announced as `crm.contact.updated` like any other write. Then the
merged contact's row is deleted, `crm.contact.merged` tells the other services to repoint, and a
`ContactMerge` keeps the explanation.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import CursorResult, Result, Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.companies.models import CompanyContact
from services.contacts.consents.models import ConsentRecord
from services.contacts.contacts.models import Contact, LifecycleTransition, PropertyChange
from services.contacts.contacts.repository import ContactRepository
from services.contacts.contacts.schemas import LifecycleStage
from services.contacts.contacts.service import (
    SCALARS,
    Author,
    ContactDetails,
    ContactNotFound,
    WriteBatch,
    alive,
    as_json,
    plan_update,
    update_many,
)
from services.contacts.deals.models import DealContact
from services.contacts.duplicates.service import candidates_for
from services.contacts.entries.models import ContactEntry
from services.contacts.merges.models import ContactMerge
from services.contacts.properties.models import CustomValue
from services.contacts.properties.schemas import ObjectType
from shared.db import utc_now
from shared.errors import DomainError, InvalidValue, StaleVersion
from shared.events.catalog import ContactMerged
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_page

Side = Literal["survivor", "merged"]
# Further along the funnel wins; `other` says nothing, so it never wins over a real stage.
STAGE_RANK = {stage.value: rank for rank, stage in enumerate(LifecycleStage)} | {
    LifecycleStage.OTHER.value: -1
}
MERGES_NEWEST_FIRST = Keyset(
    SortKey(ContactMerge.merged_at, descending=True), SortKey(ContactMerge.id, descending=True)
)
# Fields a caller may name in `prefer`: the scalars and every custom property.
PREFERABLE = frozenset(SCALARS)


class MergeIntoItself(InvalidValue):
    def __init__(self) -> None:
        super().__init__("merge_id", "A contact cannot be merged into itself.")


@dataclass(frozen=True)
class MergeResult:
    merge: ContactMerge
    survivor: ContactDetails


def _snapshot(details: ContactDetails) -> dict[str, Any]:
    contact = details.contact
    return {
        "id": str(contact.id),
        **{name: as_json(getattr(contact, name)) for name in SCALARS},
        "emails": details.emails,
        "external_ids": details.external_ids,
        "anonymous_ids": details.anonymous_ids,
        "tags": details.tags,
        "properties": contact.properties,
        "consents": contact.consents,
        "subscriptions": contact.subscriptions,
        "visits": contact.visits,
        "purchases": contact.purchases,
        "revenue_minor": contact.revenue_minor,
        "revenue_by_currency": contact.revenue_by_currency,
        "last_activity_at": as_json(contact.last_activity_at),
        "created_at": as_json(contact.created_at),
    }


def _pick(name: str, mine: Any, theirs: Any, prefer: Mapping[str, Side]) -> tuple[Any, Side, str]:
    """A field's value after the merge, the side it came from and the rule that chose it."""
    if name in prefer:
        side = prefer[name]
        chosen = theirs if side == "merged" else mine
        # A preferred side without a value does not blank the field: the other side's value stays.
        if chosen is None:
            return (mine, "survivor", "only value") if side == "merged" else (theirs, "merged", "only value")
        return chosen, side, "requested"
    if name == "lifecycle_stage" and STAGE_RANK.get(theirs, -1) > STAGE_RANK.get(mine, -1):
        return theirs, "merged", "further along the funnel"
    if mine is None and theirs is not None:
        return theirs, "merged", "only value"
    return mine, "survivor", "survivor's value" if theirs is not None else "only value"


def _latest(mine: Mapping[str, Any], theirs: Mapping[str, Any]) -> dict[str, Any]:
    """Per purpose or list, the statement made last wins: a later withdrawal beats an earlier grant."""
    merged = dict(mine)
    for key, statement in theirs.items():
        current = merged.get(key)
        if current is None or datetime.fromisoformat(statement["changed_at"]) > datetime.fromisoformat(
            current["changed_at"]
        ):
            merged[key] = statement
    return merged


def _decide(
    survivor: ContactDetails, merged: ContactDetails, prefer: Mapping[str, Side]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The survivor's values after the merge, as a patch for the write path, and each decision."""
    values: dict[str, Any] = {}
    decisions: list[dict[str, Any]] = []
    for name in SCALARS:
        mine, theirs = getattr(survivor.contact, name), getattr(merged.contact, name)
        if mine is None and theirs is None:
            continue
        value, side, rule = _pick(name, mine, theirs, prefer)
        decisions.append({"field": name, "chosen": side, "rule": rule})
        if value != mine:
            values[name] = value
    # Every address is kept; the primary one is the chosen side's, the rest become additional emails.
    primary = values.get("email", survivor.contact.email)
    values["emails"] = [email for email in [*survivor.emails, *merged.emails] if email != primary]
    values["external_ids"] = [*survivor.external_ids, *merged.external_ids]
    values["anonymous_ids"] = [*survivor.anonymous_ids, *merged.anonymous_ids]
    values["tags"] = list(dict.fromkeys([*survivor.tags, *merged.tags]))
    decisions += [
        {"field": name, "chosen": "both", "rule": "union"}
        for name in ("emails", "external_ids", "anonymous_ids", "tags")
    ]
    properties: dict[str, Any] = {}
    for key in sorted({*survivor.contact.properties, *merged.contact.properties}):
        mine, theirs = survivor.contact.properties.get(key), merged.contact.properties.get(key)
        value, side, rule = _pick(f"properties.{key}", mine, theirs, prefer)
        decisions.append({"field": f"properties.{key}", "chosen": side, "rule": rule})
        if value != mine:
            properties[key] = value
    if properties:
        values["properties"] = properties
    decisions += [
        {"field": name, "chosen": "both", "rule": "summed"}
        for name in ("visits", "purchases", "revenue_minor", "revenue_by_currency")
    ]
    decisions += [
        {"field": "last_activity_at", "chosen": "both", "rule": "latest"},
        {"field": "consents", "chosen": "both", "rule": "latest statement per purpose"},
        {"field": "subscriptions", "chosen": "both", "rule": "latest statement per list"},
    ]
    return values, decisions


def _summed(mine: Mapping[str, int], theirs: Mapping[str, int]) -> dict[str, int]:
    return {code: mine.get(code, 0) + theirs.get(code, 0) for code in sorted({*mine, *theirs})}


def _latest_time(mine: datetime | None, theirs: datetime | None) -> datetime | None:
    return max((at for at in (mine, theirs) if at is not None), default=None)


def _check_prefer(prefer: Mapping[str, Side], properties: set[str]) -> None:
    for name in prefer:
        if name not in PREFERABLE and name.removeprefix("properties.") not in properties:
            raise InvalidValue(f"prefer.{name}", f"{name} is not a field of these contacts.")


def _count(result: Result[Any]) -> int:
    """Rows an UPDATE matched (DML results are cursor results)."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


async def _repoint(session: AsyncSession, survivor_id: uuid.UUID, merged_id: uuid.UUID) -> dict[str, int]:
    """Move the merged contact's rows to the survivor; an association both had is kept once."""
    moved: dict[str, int] = {}
    for label, table in (
        ("property_changes", PropertyChange),
        ("lifecycle_transitions", LifecycleTransition),
        ("consent_records", ConsentRecord),
        ("entries", ContactEntry),
    ):
        result = await session.execute(
            update(table).where(table.contact_id == merged_id).values(contact_id=survivor_id)
        )
        moved[label] = _count(result)
    for label, association, other in (
        ("companies", CompanyContact.__table__, "company_id"),
        ("deals", DealContact.__table__, "deal_id"),
    ):
        assert isinstance(association, Table)
        column = association.c[other]
        shared = select(column).where(association.c.contact_id == survivor_id)
        result = await session.execute(
            update(association)
            .where(association.c.contact_id == merged_id, column.not_in(shared))
            .values(contact_id=survivor_id)
        )
        moved[label] = _count(result)
        await session.execute(delete(association).where(association.c.contact_id == merged_id))
    await session.execute(
        delete(CustomValue).where(
            CustomValue.object_type == ObjectType.CONTACT.value, CustomValue.object_id == merged_id
        )
    )
    return moved


async def merge_contacts(
    session: AsyncSession,
    survivor_id: uuid.UUID,
    merged_id: uuid.UUID,
    author: Author,
    *,
    prefer: Mapping[str, Side],
    reason: str | None,
    if_match: set[str] | None = None,
) -> MergeResult:
    """Merge `merged_id` into `survivor_id` (see the module's doc). Both are locked first, in id order."""
    if survivor_id == merged_id:
        raise MergeIntoItself()
    batch = WriteBatch.of(session)
    locked = {
        contact.id: contact
        for contact in await batch.repository.many([survivor_id, merged_id], for_update=True)
    }
    survivor_row = alive(locked.get(survivor_id), survivor_id)
    if merged_id not in locked:
        raise ContactNotFound(merged_id)
    merged_row = alive(locked[merged_id], merged_id)
    if if_match is not None and survivor_row.etag not in if_match:
        raise StaleVersion("Contact", survivor_id, current=survivor_row.etag)
    survivor, merged = ContactDetails.loaded(survivor_row), ContactDetails.loaded(merged_row)
    _check_prefer(prefer, {*survivor_row.properties, *merged_row.properties})
    matched = [
        {"rule": reason_.rule, "detail": reason_.detail, "weight": reason_.weight}
        for candidate in await candidates_for(session, survivor_row)
        if candidate.contact.id == merged_id
        for reason_ in candidate.reasons
    ]
    snapshot = _snapshot(merged)
    values, decisions = _decide(survivor, merged, prefer)

    # The merged contact lets go of its identities so the survivor's write can claim them.
    await batch.repository.release_identities(merged.identities)
    merged.identities = []
    now = utc_now()
    survivor_row.visits += merged_row.visits
    survivor_row.purchases += merged_row.purchases
    survivor_row.revenue_minor += merged_row.revenue_minor
    survivor_row.revenue_by_currency = _summed(
        survivor_row.revenue_by_currency, merged_row.revenue_by_currency
    )
    survivor_row.last_activity_at = _latest_time(survivor_row.last_activity_at, merged_row.last_activity_at)
    survivor_row.last_web_activity_at = _latest_time(
        survivor_row.last_web_activity_at, merged_row.last_web_activity_at
    )
    survivor_row.consents = _latest(survivor_row.consents, merged_row.consents)
    survivor_row.subscriptions = _latest(survivor_row.subscriptions, merged_row.subscriptions)
    survivor_row.updated_at = now

    plan = await plan_update(
        batch,
        survivor,
        values,
        Author(author.actor, "merge"),
        add_only=False,
        reason=f"merge of contact {merged_id}",
    )
    [outcome] = await update_many(batch, [plan])
    if isinstance(outcome, DomainError):
        raise outcome
    moved = await _repoint(session, survivor_id, merged_id)
    # In SQL, not through the ORM: the database cascades to its tags (its identities moved already),
    # and the version check refuses a row someone changed since it was read.
    deleted = await session.execute(
        delete(Contact).where(Contact.id == merged_id, Contact.version == merged_row.version)
    )
    assert _count(deleted) == 1, "the row is locked since it was read"
    session.expunge(merged_row)
    record = ContactMerge(
        id=uuid.uuid4(),
        survivor_id=survivor_id,
        merged_id=merged_id,
        merged_at=now,
        actor=author.actor,
        reason=reason,
        decisions=decisions,
        matched=matched,
        moved=moved,
        merged_snapshot=snapshot,
    )
    session.add(record)
    # Ids merged into the loser earlier now lead to the survivor in one step.
    await session.execute(
        update(ContactMerge).where(ContactMerge.survivor_id == merged_id).values(survivor_id=survivor_id)
    )
    await session.flush()
    batch.events.append(
        ContactMerged(
            contact_id=survivor_id,
            merged_contact_id=merged_id,
            merge_id=record.id,
            actor=author.actor,
            merged_at=now,
        )
    )
    await batch.finish()
    return MergeResult(record, outcome[0])


async def list_merges(session: AsyncSession, contact_id: uuid.UUID, page: PageRequest) -> Slice[ContactMerge]:
    """The merges into this contact, newest first."""
    alive(await ContactRepository(session).get(contact_id), contact_id)
    statement = select(ContactMerge).where(ContactMerge.survivor_id == contact_id)
    return await fetch_page(session, statement, MERGES_NEWEST_FIRST, page)
