"""Where answers to requests with an `Idempotency-Key` are kept (see `shared.web.idempotency`).

The record is written in its own transaction around the request's: if the process dies between the two,
the key stays "running" until `ABANDONED_AFTER` has passed, and a retry then runs the request again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import Table, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from shared.db import Database, session_scope, utc_now

# Longer than any request takes, even one queued behind SQLite's writer; shorter than a client's patience.
ABANDONED_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class Claim:
    kind: Literal["claimed", "replay", "running", "mismatch"]
    status: int | None = None
    headers: dict[str, str] | None = None
    body: bytes | None = None


class IdempotencyStore:
    def __init__(self, database: Database, table: Table, *, ttl: timedelta) -> None:
        self.database = database
        self.table = table
        self.ttl = ttl

    def _where(self, principal: str, key: str) -> Any:
        return (self.table.c.principal == principal) & (self.table.c.idempotency_key == key)

    async def claim(self, principal: str, key: str, fingerprint: str) -> Claim:
        for _attempt in range(3):
            claim = await self._claim_once(principal, key, fingerprint)
            if claim is not None:
                return claim
        # Claimed and released by others three times over while this one looked: call it running.
        return Claim("running")

    async def _claim_once(self, principal: str, key: str, fingerprint: str) -> Claim | None:
        now = utc_now()
        async with session_scope(self.database) as session:
            # Forget an expired record, or one whose request was abandoned mid-way.
            await session.execute(
                delete(self.table).where(
                    self._where(principal, key),
                    (self.table.c.expires_at < now)
                    | (
                        self.table.c.completed_at.is_(None)
                        & (self.table.c.started_at < now - ABANDONED_AFTER)
                    ),
                )
            )
            dialect_insert = sqlite.insert if self.database.is_sqlite else postgresql.insert
            inserted = await session.execute(
                dialect_insert(self.table)
                .values(
                    principal=principal,
                    idempotency_key=key,
                    fingerprint=fingerprint,
                    started_at=now,
                    expires_at=now + self.ttl,
                )
                .on_conflict_do_nothing()
            )
            if inserted.rowcount == 1:  # type: ignore[attr-defined]
                return Claim("claimed")
            row = (await session.execute(select(self.table).where(self._where(principal, key)))).one_or_none()
        if row is None:
            return None  # the holder released it between the insert and the read: try again
        if row.fingerprint != fingerprint:
            return Claim("mismatch")
        if row.completed_at is None:
            return Claim("running")
        return Claim("replay", status=row.status, headers=dict(row.headers or {}), body=row.body)

    async def complete(
        self, principal: str, key: str, *, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        now = utc_now()
        async with session_scope(self.database) as session:
            await session.execute(
                update(self.table)
                .where(self._where(principal, key))
                .values(
                    status=status,
                    headers=headers,
                    body=body,
                    completed_at=now,
                    expires_at=now + self.ttl,
                )
            )

    async def release(self, principal: str, key: str) -> None:
        async with session_scope(self.database) as session:
            await session.execute(delete(self.table).where(self._where(principal, key)))

    async def prune(self) -> int:
        """Delete expired records; run now and then by the service's housekeeping."""
        async with session_scope(self.database) as session:
            result = await session.execute(delete(self.table).where(self.table.c.expires_at < utc_now()))
        return int(result.rowcount)  # type: ignore[attr-defined]
