"""Recording touchpoints. Flushes, never commits.

A touchpoint is resolved to a contact when it is recorded (`identities.service.resolve`): a given
contact id is taken as it is, whether or not contacts knows it yet; an email (by its keyed hash), an
external id or an anonymous id is looked up in the links journeys learnt from the stream. One that
resolves to no one is kept with `contact_id` null. Each new touchpoint is announced as
`crm.touchpoint.recorded` in the same transaction; a repeated `message_id` records and announces
nothing, and answers the touchpoint first recorded under it.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.journeys.db import outbox
from services.journeys.identities import service as identities
from services.journeys.touchpoints.models import Touchpoint
from services.journeys.touchpoints.repository import TouchpointRepository
from services.journeys.touchpoints.schemas import TouchpointCreate
from shared.db import utc_now
from shared.errors import NotFound
from shared.events.touchpoints import TouchpointRecorded, TouchpointResolved
from shared.identity import hasher_of

# Copied from the request as they are; `who` and the enums are turned into columns by `_row`.
_AS_GIVEN = (
    "message_id",
    "anonymous_id",
    "type",
    "campaign",
    "content_id",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "properties",
    "revenue",
    "currency",
    "order_id",
    "score",
    "occurred_at",
)


class TouchpointNotFound(NotFound):
    def __init__(self, touchpoint_id: uuid.UUID) -> None:
        super().__init__("Touchpoint", touchpoint_id)


@dataclass(frozen=True)
class NewTouchpoint:
    data: TouchpointCreate
    actor: str
    """The API key id that sent it."""


@dataclass(frozen=True)
class Recorded:
    touchpoint: Touchpoint
    created: bool
    """False for a repeated `message_id`: `touchpoint` is the one first recorded under it."""


def _row(session: AsyncSession, item: NewTouchpoint) -> dict[str, Any]:
    data = item.data
    external = data.external_id
    return {
        "id": uuid.uuid4(),
        "event_id": str(uuid.uuid4()),
        **{name: getattr(data, name) for name in _AS_GIVEN},
        "contact_id": data.contact_id,
        "email_hash": hasher_of(session).email(data.email) if data.email is not None else None,
        "external_system": external.system if external is not None else None,
        "external_id": external.id if external is not None else None,
        "channel": data.channel.value,
        "stage": data.stage.value if data.stage is not None else None,
        "team": data.team.value if data.team is not None else None,
        "actor": item.actor,
    }


def _who(row: dict[str, Any]) -> identities.Who:
    external = row["external_system"]
    return identities.Who(
        contact_id=row["contact_id"],
        email_hash=row["email_hash"],
        external=identities.external_value(external, row["external_id"]) if external is not None else None,
        anonymous_id=row["anonymous_id"],
    )


def _facts(touchpoint: Touchpoint) -> dict[str, Any]:
    """What the touchpoint events say of it: ids and codes; neither its free properties nor its email
    hash."""
    return {
        "touchpoint_id": touchpoint.id,
        "anonymous_id": touchpoint.anonymous_id,
        "channel": touchpoint.channel,
        "touchpoint_type": touchpoint.type,
        **{name: getattr(touchpoint, name) for name in _ANNOUNCED},
    }


_ANNOUNCED = (
    "stage",
    "team",
    "campaign",
    "content_id",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "revenue",
    "currency",
    "order_id",
    "score",
    "occurred_at",
    "received_at",
)


def announcement(touchpoint: Touchpoint) -> TouchpointRecorded:
    return TouchpointRecorded(contact_id=touchpoint.contact_id, **_facts(touchpoint))


def resolution(touchpoint: Touchpoint, contact_id: uuid.UUID) -> TouchpointResolved:
    """The event of a touchpoint stitched to its contact after it was recorded."""
    return TouchpointResolved(contact_id=contact_id, **_facts(touchpoint))


async def record_touchpoints(session: AsyncSession, items: Sequence[NewTouchpoint]) -> list[Recorded]:
    """Record the touchpoints in one transaction (a batch, or concurrent requests: `shared.batching`),
    with one lookup each for repeats and identities, one insert and one outbox write for all."""
    repository = TouchpointRepository(session)
    now = utc_now()
    rows = [_row(session, item) | {"received_at": now} for item in items]
    earlier = await repository.by_message_ids({row["message_id"] for row in rows if row["message_id"]})
    # A repeat within the request stands for the first of its message id.
    first: dict[str, dict[str, Any]] = {}
    new = []
    for row in rows:
        message_id = row["message_id"]
        if message_id is None or (message_id not in earlier and message_id not in first):
            new.append(row)
            if message_id is not None:
                first[message_id] = row
    resolved = await identities.resolve(session, [_who(row) for row in new])
    for row, contact_id in zip(new, resolved, strict=True):
        row["contact_id"] = contact_id
    inserted = await repository.insert(new)
    # Rows a concurrent request beat to their message id were not inserted: answer with its touchpoint.
    raced = {row["message_id"] for row in new if row["id"] not in inserted}
    earlier |= await repository.by_message_ids(raced)
    created = {row["id"]: Touchpoint(**row) for row in new if row["id"] in inserted}
    await outbox.add_many(
        session,
        [announcement(touchpoint) for touchpoint in created.values()],
        event_ids=[touchpoint.event_id for touchpoint in created.values()],
    )
    results = []
    for row in rows:
        message_id = row["message_id"]
        if row["id"] in created:
            results.append(Recorded(created[row["id"]], created=True))
        elif message_id in earlier:
            results.append(Recorded(earlier[message_id], created=False))
        else:
            results.append(Recorded(created[first[message_id]["id"]], created=False))
    return results


async def get_touchpoint(session: AsyncSession, touchpoint_id: uuid.UUID) -> Touchpoint:
    touchpoint = await TouchpointRepository(session).get(touchpoint_id)
    if touchpoint is None:
        raise TouchpointNotFound(touchpoint_id)
    return touchpoint


async def resolve_now(session: AsyncSession, touchpoint: Touchpoint) -> uuid.UUID | None:
    """Whom an unresolved touchpoint's identifiers name by now: a link made while it was being recorded
    (by a transaction it could not see) counts."""
    who = _who(
        {
            "contact_id": None,
            "email_hash": touchpoint.email_hash,
            "external_system": touchpoint.external_system,
            "external_id": touchpoint.external_id,
            "anonymous_id": touchpoint.anonymous_id,
        }
    )
    [contact_id] = await identities.resolve(session, [who])
    return contact_id


async def current(session: AsyncSession, touchpoint_id: uuid.UUID) -> Touchpoint | None:
    """The touchpoint as it is now (whose it is may have changed since it was recorded: a merge moved
    it, stitching resolved it), or None if it went with an erasure."""
    return await TouchpointRepository(session).get(touchpoint_id)


async def repoint(session: AsyncSession, merged_id: uuid.UUID, survivor_id: uuid.UUID) -> None:
    """A merge: the merged contact's touchpoints are the survivor's."""
    await TouchpointRepository(session).move(merged_id, survivor_id)


async def forget(session: AsyncSession, contact_ids: Collection[uuid.UUID]) -> None:
    """Erasure: the people's touchpoints go, and with them the unresolved ones that name them by an
    identifier journeys links to them (an email hash, an external id) or by a browser their resolved
    touchpoints came from (an anonymous id). Call it before the links themselves are forgotten."""
    repository = TouchpointRepository(session)
    known = await identities.identifiers_of(session, contact_ids)
    await repository.delete_matching(
        contact_ids,
        email_hashes=known.email_hashes,
        externals=known.externals,
        anonymous_ids=known.anonymous_ids | await repository.anonymous_ids_of(contact_ids),
    )
