"""Resolve who a touchpoint was, from what the stream told journeys. Flushes, never commits.

The links are learnt from the contacts events: `crm.contact.created` and `crm.contact.updated` carry
the keyed hashes of a contact's emails (`email_hashes`), `crm.contact.merged` sends one contact's links
to the survivor and leaves a link from the merged id to it, `crm.contact.erased` removes the person's
links. Resolving therefore needs no call to the contacts service, and works while it is down.

Anonymous ids and external ids (a tracking library's user id) are linked by stitching
(`stitching.py`), from the touchpoints that carry them beside a known person. Until one of them is
known, a touchpoint named only by those stays unresolved (and kept).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from services.journeys.identities.repository import Identifier, IdentityRepository


class Kind(StrEnum):
    EMAIL_HASH = "email_hash"
    EXTERNAL_ID = "external_id"
    ANONYMOUS_ID = "anonymous_id"
    # The id of a contact merged into another; its link names the survivor.
    MERGED_CONTACT = "merged_contact"


def external_value(system: str, external_id: str) -> str:
    # A system is a slug without colons (`schemas.ExternalId`), so the first colon splits them again.
    return f"{system}:{external_id}"


def _external_pair(value: str) -> tuple[str, str]:
    system, _, external_id = value.partition(":")
    return system, external_id


@dataclass(frozen=True)
class Who:
    """What a touchpoint says of the person, as stored (an email only as its hash)."""

    contact_id: uuid.UUID | None = None
    email_hash: str | None = None
    external: str | None = None
    anonymous_id: str | None = None

    def identifiers(self) -> list[Identifier]:
        """Most specific first: an email or an id in another system names one person, a cookie a browser."""
        if self.contact_id is not None:
            return [(Kind.MERGED_CONTACT, str(self.contact_id))]
        found = [
            (Kind.EMAIL_HASH, self.email_hash),
            (Kind.EXTERNAL_ID, self.external),
            (Kind.ANONYMOUS_ID, self.anonymous_id),
        ]
        return [(kind.value, value) for kind, value in found if value is not None]


async def resolve(session: AsyncSession, people: Sequence[Who]) -> list[uuid.UUID | None]:
    """The contact each names, with one lookup for all: a given contact id as it is (or its survivor,
    if it was merged away), else the first identifier journeys has linked, else None."""
    holders = await IdentityRepository(session).holders(
        {identifier for who in people for identifier in who.identifiers()}
    )
    resolved: list[uuid.UUID | None] = []
    for who in people:
        linked = (holders[key] for key in who.identifiers() if key in holders)
        resolved.append(next(linked, who.contact_id))
    return resolved


async def learn_emails(
    session: AsyncSession,
    contact_id: uuid.UUID,
    email_hashes: Sequence[str],
    at: datetime,
    *,
    new_contact: bool = False,
) -> None:
    """The contact's emails are these now (by hash): link them, drop its other email links.
    `new_contact`: it was just created, so it has no other email links to drop (a statement saved for
    every contact created, which is most of what the consumer reads)."""
    repository = IdentityRepository(session)
    if not new_contact:
        await repository.unlink_others(Kind.EMAIL_HASH, contact_id, email_hashes)
    await repository.link(Kind.EMAIL_HASH, list(dict.fromkeys(email_hashes)), contact_id, at)


async def merge(session: AsyncSession, merged_id: uuid.UUID, survivor_id: uuid.UUID, at: datetime) -> None:
    """The merged contact's identifiers name the survivor, and so does its id from now on."""
    repository = IdentityRepository(session)
    await repository.move(merged_id, survivor_id)
    await repository.link(Kind.MERGED_CONTACT, [str(merged_id)], survivor_id, at)


@dataclass(frozen=True)
class Identifiers:
    """Everything journeys links to some contacts, by kind."""

    email_hashes: set[str]
    externals: set[tuple[str, str]]
    """(system, id)"""
    anonymous_ids: set[str]


async def identifiers_of(session: AsyncSession, contact_ids: Collection[uuid.UUID]) -> Identifiers:
    by_kind: dict[str, set[str]] = {kind.value: set() for kind in Kind}
    for kind, value in await IdentityRepository(session).of_contacts(contact_ids):
        by_kind.setdefault(kind, set()).add(value)
    return Identifiers(
        email_hashes=by_kind[Kind.EMAIL_HASH],
        externals={_external_pair(value) for value in by_kind[Kind.EXTERNAL_ID]},
        anonymous_ids=by_kind[Kind.ANONYMOUS_ID],
    )


async def forget(session: AsyncSession, contact_ids: Collection[uuid.UUID]) -> None:
    """Erasure: nothing links to these contacts any more (their merged ids' links name them too)."""
    await IdentityRepository(session).delete_for(contact_ids)
