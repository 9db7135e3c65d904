"""Creating, revoking and listing API keys, and applying the key events every service reads.

Flushes, never commits: the caller's session scope commits, with the outbox row in the same
transaction, so a key exists locally exactly when its announcement is on its way to the other services.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth.events import ApiKeyCreated, ApiKeyRevoked
from shared.auth.principal import AFFILIATE_SCOPES, SCOPES, issue_token
from shared.auth.tables import AccessTables
from shared.consumer import Handler
from shared.db import utc_now
from shared.errors import InvalidValue, NotFound
from shared.events.base import Event
from shared.events.envelope import Envelope
from shared.outbox import Outbox
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_row_page


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str | None
    scopes: list[str]
    affiliate_id: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> ApiKey:
        return cls(
            key_id=row.key_id,
            name=row.name,
            scopes=list(row.scopes),
            affiliate_id=row.affiliate_id,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
        )


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    token: str
    """The key itself: shown to the creator once, stored nowhere."""


class ApiKeyNotFound(NotFound):
    def __init__(self, key_id: str) -> None:
        super().__init__("API key", key_id)


def check_grant(scopes: Sequence[str], affiliate_id: str | None, expires_at: datetime | None) -> None:
    if not scopes:
        raise InvalidValue("scopes", "A key needs at least one scope.")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise InvalidValue("scopes", f"Unknown scope {', '.join(unknown)}; known: {', '.join(SCOPES)}.")
    if affiliate_id is not None and not set(scopes) <= AFFILIATE_SCOPES:
        beyond = ", ".join(sorted(set(scopes) - AFFILIATE_SCOPES))
        raise InvalidValue(
            "scopes",
            f"A key bound to an affiliate may hold only {', '.join(sorted(AFFILIATE_SCOPES))}, not {beyond}.",
        )
    if expires_at is not None and expires_at <= utc_now():
        raise InvalidValue("expires_at", "The expiry must be in the future.")


async def create_key(
    session: AsyncSession,
    tables: AccessTables,
    outbox: Outbox,
    *,
    scopes: Sequence[str],
    name: str | None = None,
    affiliate_id: str | None = None,
    expires_at: datetime | None = None,
) -> CreatedKey:
    check_grant(scopes, affiliate_id, expires_at)
    issued = issue_token()
    event = ApiKeyCreated(
        key_id=issued.key_id,
        secret_hash=issued.secret_hash,
        name=name,
        scopes=sorted(set(scopes)),
        affiliate_id=affiliate_id,
        created_at=utc_now(),
        expires_at=expires_at,
    )
    await _insert(session, tables, event)
    await outbox.add(session, event)
    key = await get_key(session, tables, issued.key_id)
    return CreatedKey(key=key, token=issued.token)


async def revoke_key(session: AsyncSession, tables: AccessTables, outbox: Outbox, key_id: str) -> ApiKey:
    """Revoke a key everywhere; revoking a revoked key changes nothing and announces nothing."""
    key = await get_key(session, tables, key_id)
    if key.revoked_at is not None:
        return key
    event = ApiKeyRevoked(key_id=key_id, revoked_at=utc_now())
    await _mark_revoked(session, tables, event)
    await outbox.add(session, event)
    return await get_key(session, tables, key_id)


async def get_key(session: AsyncSession, tables: AccessTables, key_id: str) -> ApiKey:
    row = (await session.execute(select(tables.api_keys).where(tables.api_keys.c.key_id == key_id))).first()
    if row is None or not row.secret_hash:
        raise ApiKeyNotFound(key_id)
    return ApiKey.from_row(row)


def oldest_first(tables: AccessTables) -> Keyset:
    return Keyset(SortKey(tables.api_keys.c.created_at), SortKey(tables.api_keys.c.key_id))


async def list_keys(session: AsyncSession, tables: AccessTables, page: PageRequest) -> Slice[ApiKey]:
    """Keys oldest first, a page at a time; the tombstones of keys this service never saw are left out."""
    table = tables.api_keys
    found = await fetch_row_page(
        session, select(table).where(table.c.secret_hash != ""), oldest_first(tables), page
    )
    return Slice([ApiKey.from_row(row) for row in found.items], found.next_cursor)


async def every_key(session: AsyncSession, tables: AccessTables) -> AsyncIterator[ApiKey]:
    """All keys, oldest first, read a page at a time."""
    keyset = oldest_first(tables)
    page = PageRequest(limit=200)
    while True:
        found = await list_keys(session, tables, page)
        for key in found.items:
            yield key
        if found.next_cursor is None:
            return
        page = PageRequest(limit=200, after=keyset.decode(found.next_cursor))


async def _insert(session: AsyncSession, tables: AccessTables, event: ApiKeyCreated) -> None:
    await session.execute(tables.api_keys.insert().values(**_values(event)))


def _values(event: ApiKeyCreated) -> dict[str, Any]:
    return {
        "key_id": event.key_id,
        "secret_hash": event.secret_hash,
        "name": event.name,
        "scopes": list(event.scopes),
        "affiliate_id": event.affiliate_id,
        "created_at": event.created_at,
        "expires_at": event.expires_at,
        "revoked_at": None,
    }


async def _mark_revoked(session: AsyncSession, tables: AccessTables, event: ApiKeyRevoked) -> None:
    table = tables.api_keys
    changed = await session.execute(
        update(table)
        .where(table.c.key_id == event.key_id, table.c.revoked_at.is_(None))
        .values(revoked_at=event.revoked_at)
    )
    if changed.rowcount == 0:  # type: ignore[attr-defined]
        exists = await session.scalar(select(table.c.key_id).where(table.c.key_id == event.key_id))
        if exists is None:
            # A compacted topic may hold only the revocation: keep a tombstone that matches no key.
            await session.execute(
                table.insert().values(
                    key_id=event.key_id,
                    secret_hash="",
                    scopes=[],
                    created_at=event.revoked_at,
                    revoked_at=event.revoked_at,
                )
            )


async def apply_created(session: AsyncSession, tables: AccessTables, event: ApiKeyCreated) -> None:
    """Another service (or this one) created a key: keep a copy, once."""
    exists = await session.scalar(
        select(tables.api_keys.c.key_id).where(tables.api_keys.c.key_id == event.key_id)
    )
    if exists is None:
        await _insert(session, tables, event)


async def apply_revoked(session: AsyncSession, tables: AccessTables, event: ApiKeyRevoked) -> None:
    await _mark_revoked(session, tables, event)


def access_handlers(tables: AccessTables) -> dict[type[Event], Handler]:
    async def on_created(session: AsyncSession, envelope: Envelope) -> None:
        assert isinstance(envelope.event, ApiKeyCreated)
        await apply_created(session, tables, envelope.event)

    async def on_revoked(session: AsyncSession, envelope: Envelope) -> None:
        assert isinstance(envelope.event, ApiKeyRevoked)
        await apply_revoked(session, tables, envelope.event)

    return {ApiKeyCreated: on_created, ApiKeyRevoked: on_revoked}
