"""Identity stitching: touchpoints recorded while their person was unknown join the contact's history
the moment an identifier they carry is known to be the contact's. Flushes, never commits.

An identifier becomes known two ways, both on the stream, so stitching needs no call to another
service:
- a contacts event names the contact's emails (by keyed hash): unresolved touchpoints that named one of
  them belong to the contact;
- a touchpoint that belongs to a contact carries an anonymous id or a user id (an identify call names
  the visitor's anonymous id beside the user's email and id; an alias names the old id beside the new;
  any touchpoint sent with a contact id and a cookie says that browser is the contact's): those are
  linked to the contact, and the unresolved touchpoints that carry them follow.

It goes on from there: a touchpoint attached by its anonymous id may carry a user id, whose other
touchpoints follow too, until nothing new turns up. Emails are linked only from contacts events, never
from touchpoints: which emails a person has is the contacts service's to say.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from services.journeys.identities.repository import IdentityRepository
from services.journeys.identities.service import Kind, external_value
from services.journeys.touchpoints.models import Touchpoint
from services.journeys.touchpoints.repository import TouchpointRepository

_Key = TypeVar("_Key", str, tuple[str, str])


async def stitch(
    session: AsyncSession,
    contact_id: uuid.UUID,
    *,
    email_hashes: Collection[str] = (),
    carriers: Sequence[Touchpoint] = (),
) -> list[Touchpoint]:
    """Link what the `carriers` (touchpoints of the contact) carry to the contact, and attach every
    unresolved touchpoint reachable from them or from `email_hashes`; returns those attached."""
    touchpoints = TouchpointRepository(session)
    links = IdentityRepository(session)
    attached: list[Touchpoint] = []
    seen_anonymous: set[str] = set()
    seen_external: set[tuple[str, str]] = set()
    hashes = set(email_hashes)
    while hashes or carriers:
        anonymous: dict[str, datetime] = {}
        external: dict[tuple[str, str], datetime] = {}
        for touchpoint in carriers:
            # As of when each was seen: a later link elsewhere (a shared browser) is not undone.
            if touchpoint.anonymous_id is not None and touchpoint.anonymous_id not in seen_anonymous:
                _latest(anonymous, touchpoint.anonymous_id, touchpoint.occurred_at)
            if touchpoint.external_system is not None and touchpoint.external_id is not None:
                pair = (touchpoint.external_system, touchpoint.external_id)
                if pair not in seen_external:
                    _latest(external, pair, touchpoint.occurred_at)
        seen_anonymous |= anonymous.keys()
        seen_external |= external.keys()
        await links.link_each(Kind.ANONYMOUS_ID, anonymous, contact_id)
        await links.link_each(
            Kind.EXTERNAL_ID, {external_value(*pair): at for pair, at in external.items()}, contact_id
        )
        carriers = await touchpoints.attach(
            contact_id, email_hashes=hashes, externals=external.keys(), anonymous_ids=anonymous.keys()
        )
        attached.extend(carriers)
        hashes = set()
    return attached


def _latest(seen: dict[_Key, datetime], key: _Key, at: datetime) -> None:
    if key not in seen or seen[key] < at:
        seen[key] = at
