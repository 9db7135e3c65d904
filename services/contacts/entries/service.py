"""A contact's qualitative entries: notes, reviews, ratings, feedback, suggestions. Flushes, never commits.

The kind decides what an entry needs (`schemas.BODY_REQUIRED`, `SCORE_REQUIRED`, `SCORE_REFUSED`), and a
score must lie on its scale; `_check` holds these rules once, for a new entry and for a patched one.
An entry with a score is announced as `crm.contact.feedback_recorded` (numbers and codes, never the
text), again whenever what the event says of it changes, and `crm.contact.feedback_removed` once it no
longer counts (deleted, or its score cleared).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.contacts.models import Contact
from services.contacts.contacts.service import Author, alive
from services.contacts.db import outbox
from services.contacts.entries.models import ContactEntry
from services.contacts.entries.repository import EntryRepository
from services.contacts.entries.schemas import (
    BODY_REQUIRED,
    SCALES,
    SCORE_REFUSED,
    SCORE_REQUIRED,
    EntryCreate,
    EntryKind,
    EntryPatch,
    EntrySummary,
    LatestScore,
    Scale,
    ScoreSummary,
)
from shared.db import utc_now
from shared.errors import InvalidValue, NotFound, StaleVersion
from shared.events.entries import ContactFeedbackRecorded, ContactFeedbackRemoved
from shared.pagination import PageRequest, Slice

# A change to any of these re-announces a scored entry: they are what its event says.
_ANNOUNCED = frozenset({"score", "scale", "channel", "occurred_at"})


class EntryNotFound(NotFound):
    def __init__(self, entry_id: uuid.UUID) -> None:
        super().__init__("Entry", entry_id)


async def _contact(repository: EntryRepository, contact_id: uuid.UUID, *, writing: bool) -> Contact:
    """The contact the entries belong to: 404 if it never was, 410 once erased."""
    return alive(await repository.contact(contact_id, shared_lock=writing), contact_id)


def _check(kind: EntryKind, values: Mapping[str, Any]) -> None:
    """The kind's rules and the score's range, on the entry as it will be stored."""
    body, score, scale = values.get("body"), values.get("score"), values.get("scale")
    if kind in BODY_REQUIRED and body is None:
        raise InvalidValue("body", f"A {kind.value} needs a body.")
    if kind in SCORE_REFUSED and score is not None:
        raise InvalidValue("score", f"A {kind.value} takes no score; record a rating or feedback.")
    if kind in SCORE_REQUIRED and score is None:
        raise InvalidValue("score", f"A {kind.value} needs a score (and its scale).")
    if score is None and scale is not None:
        raise InvalidValue("scale", "A scale goes with a score only.")
    if score is None:
        return
    if scale is None:
        raise InvalidValue("scale", "A score needs its scale: " + ", ".join(s.value for s in Scale) + ".")
    rule = SCALES[Scale(scale)]
    if not rule.low <= score <= rule.high:
        raise InvalidValue("score", f"On the {scale} scale a score is {rule.low} to {rule.high}.")


async def _check_reference(repository: EntryRepository, values: Mapping[str, Any]) -> None:
    """A reference to a deal must name one of this CRM's deals; other references are ids elsewhere."""
    if values.get("reference_type") != "deal":
        return
    try:
        deal_id = uuid.UUID(values["reference_id"])
    except ValueError:
        raise InvalidValue("reference.id", "A deal reference needs the deal's id (a UUID).") from None
    if not await repository.deal_exists(deal_id):
        raise InvalidValue("reference.id", f"No deal with id {deal_id}.")


async def _announce(session: AsyncSession, entry: ContactEntry) -> None:
    assert entry.score is not None
    assert entry.scale is not None
    rule = SCALES[Scale(entry.scale)]
    await outbox.add(
        session,
        ContactFeedbackRecorded(
            contact_id=entry.contact_id,
            entry_id=entry.id,
            kind=entry.kind,
            score=entry.score,
            scale=entry.scale,
            scale_min=rule.low,
            scale_max=rule.high,
            sentiment=rule.sentiment(entry.score),
            channel=entry.channel,
            occurred_at=entry.occurred_at,
            recorded_at=entry.updated_at,
        ),
    )


async def _withdraw(session: AsyncSession, entry: ContactEntry) -> None:
    await outbox.add(
        session,
        ContactFeedbackRemoved(contact_id=entry.contact_id, entry_id=entry.id, removed_at=utc_now()),
    )


async def record_entry(
    session: AsyncSession, contact_id: uuid.UUID, data: EntryCreate, author: Author
) -> ContactEntry:
    """Record an entry; one with a score is announced as `crm.contact.feedback_recorded`."""
    repository = EntryRepository(session)
    await _contact(repository, contact_id, writing=True)
    values = data.stored()
    _check(data.kind, values)
    await _check_reference(repository, values)
    now = utc_now()
    values["occurred_at"] = values.get("occurred_at") or now
    entry = ContactEntry(
        id=uuid.uuid4(),
        contact_id=contact_id,
        kind=data.kind.value,
        actor=author.actor,
        created_at=now,
        updated_at=now,
        **values,
    )
    session.add(entry)
    await session.flush()
    if entry.score is not None:
        await _announce(session, entry)
    return entry


async def get_entry(session: AsyncSession, contact_id: uuid.UUID, entry_id: uuid.UUID) -> ContactEntry:
    repository = EntryRepository(session)
    await _contact(repository, contact_id, writing=False)
    entry = await repository.get(contact_id, entry_id)
    if entry is None:
        raise EntryNotFound(entry_id)
    return entry


async def list_entries(
    session: AsyncSession, contact_id: uuid.UUID, kinds: Collection[EntryKind], page: PageRequest
) -> Slice[ContactEntry]:
    """Newest first (by when they occurred), optionally only some kinds."""
    repository = EntryRepository(session)
    await _contact(repository, contact_id, writing=False)
    return await repository.page(contact_id, {kind.value for kind in kinds}, page)


async def _locked_entry(
    session: AsyncSession,
    contact_id: uuid.UUID,
    entry_id: uuid.UUID,
    if_match: Collection[str] | None,
) -> tuple[EntryRepository, ContactEntry]:
    repository = EntryRepository(session)
    await _contact(repository, contact_id, writing=True)
    entry = await repository.get(contact_id, entry_id, for_update=True)
    if entry is None:
        raise EntryNotFound(entry_id)
    if if_match is not None and entry.etag not in if_match:
        raise StaleVersion("Entry", entry_id, current=entry.etag)
    return repository, entry


async def update_entry(
    session: AsyncSession,
    contact_id: uuid.UUID,
    entry_id: uuid.UUID,
    patch: EntryPatch,
    *,
    if_match: Collection[str] | None = None,
) -> ContactEntry:
    """Apply a merge patch under the kind's rules; a patch that changes nothing writes nothing.

    The entry is read locked, so the tag compared with `if_match` is the one the UPDATE replaces (and
    the UPDATE's version check guards the rest, as for contacts)."""
    repository, entry = await _locked_entry(session, contact_id, entry_id, if_match)
    kind = EntryKind(entry.kind)
    if patch.kind is not None and patch.kind != kind:
        raise InvalidValue("kind", "The kind of an entry cannot change; delete it and record it anew.")
    changes = {name: value for name, value in patch.stored().items() if getattr(entry, name) != value}
    if not changes:
        return entry
    merged = {name: changes.get(name, getattr(entry, name)) for name in ("body", "score", "scale")}
    _check(kind, merged)
    if "reference_id" in changes or "reference_type" in changes:
        await _check_reference(repository, patch.stored())
    was_scored = entry.score is not None
    for name, value in changes.items():
        setattr(entry, name, value)
    entry.updated_at = utc_now()
    await session.flush()
    if entry.score is not None and (not was_scored or _ANNOUNCED & changes.keys()):
        await _announce(session, entry)
    elif was_scored and entry.score is None:
        await _withdraw(session, entry)
    return entry


async def delete_entry(
    session: AsyncSession,
    contact_id: uuid.UUID,
    entry_id: uuid.UUID,
    *,
    if_match: Collection[str] | None = None,
) -> None:
    """Delete the entry; one with a score is withdrawn with `crm.contact.feedback_removed`."""
    _repository, entry = await _locked_entry(session, contact_id, entry_id, if_match)
    await session.delete(entry)
    await session.flush()
    if entry.score is not None:
        await _withdraw(session, entry)


async def summary(session: AsyncSession, contact_id: uuid.UUID) -> EntrySummary:
    """Counts per kind, and per scale what the scores say (see `schemas.ScoreSummary`)."""
    repository = EntryRepository(session)
    await _contact(repository, contact_id, writing=False)
    by_kind, newest = await repository.kind_counts(contact_id)
    latest = await repository.latest_scores(contact_id)
    counted: dict[Scale, list[tuple[int, int]]] = {}
    for row in await repository.score_counts(contact_id):
        counted.setdefault(Scale(row.scale), []).append((row.score, row.count))
    scores = {}
    for scale, pairs in counted.items():
        rule = SCALES[scale]
        count = sum(times for _score, times in pairs)
        last = latest[scale.value]
        scores[scale] = ScoreSummary(
            low=rule.low,
            high=rule.high,
            count=count,
            average=round(sum(score * times for score, times in pairs) / count, 2),
            lowest=min(score for score, _times in pairs),
            highest=max(score for score, _times in pairs),
            positive=sum(times for score, times in pairs if rule.sentiment(score) == "positive"),
            neutral=sum(times for score, times in pairs if rule.sentiment(score) == "neutral"),
            negative=sum(times for score, times in pairs if rule.sentiment(score) == "negative"),
            latest=LatestScore(entry_id=last.entry_id, score=last.score, occurred_at=last.occurred_at),
        )
    return EntrySummary(
        total=sum(by_kind.values()),
        by_kind={kind: by_kind.get(kind.value, 0) for kind in EntryKind},
        scores=dict(sorted(scores.items())),
        last_entry_at=newest,
    )
