"""Who a presented key belongs to, answered from this service's own copy of the keys.

Answers are cached for a fraction of a second, so a busy key costs one query per interval rather than
one per request. That interval bounds how long a revocation takes to bite once this service has read it
from `crm.access` (the README promises under a second in all).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select

from shared.auth.principal import ADMIN, Principal, hash_token, key_id_of, same_hash
from shared.auth.tables import AccessTables
from shared.db import Database, read_scope, utc_now

BOOTSTRAP_KEY_ID = "bootstrap"


@dataclass(frozen=True)
class _Entry:
    secret_hash: str
    principal: Principal | None
    """None when the key is unknown, revoked or expired."""
    fetched_at: float


class KeyStore:
    def __init__(
        self,
        database: Database,
        tables: AccessTables,
        *,
        bootstrap_key: str | None,
        cache_seconds: float = 0.25,
    ) -> None:
        self._database = database
        self._table = tables.api_keys
        self._bootstrap_hash = hash_token(bootstrap_key) if bootstrap_key else None
        self._cache_seconds = cache_seconds
        self._cache: dict[str, _Entry] = {}

    def known(self, token: str) -> Principal | None:
        """The principal of a key answered without a lookup: the bootstrap key, or a valid key whose
        answer is still fresh in the cache. None says nothing: call `authenticate`."""
        presented = hash_token(token)
        return self._bootstrap(presented) or self._matching(presented, self._fresh(key_id_of(token)))

    async def authenticate(self, token: str) -> Principal | None:
        """The principal a key acts as, or None for an unknown, revoked or expired key."""
        presented = hash_token(token)
        if (bootstrap := self._bootstrap(presented)) is not None:
            return bootstrap
        key_id = key_id_of(token)
        if key_id is None:
            return None
        return self._matching(presented, self._fresh(key_id) or await self._load(key_id))

    def _bootstrap(self, presented: str) -> Principal | None:
        if self._bootstrap_hash is not None and same_hash(presented, self._bootstrap_hash):
            return Principal(key_id=BOOTSTRAP_KEY_ID, scopes=frozenset({ADMIN}))
        return None

    @staticmethod
    def _matching(presented: str, entry: _Entry | None) -> Principal | None:
        if entry is None or entry.principal is None or not same_hash(presented, entry.secret_hash):
            return None
        return entry.principal

    def _fresh(self, key_id: str | None) -> _Entry | None:
        entry = self._cache.get(key_id) if key_id is not None else None
        if entry is None or time.monotonic() - entry.fetched_at > self._cache_seconds:
            return None
        return entry

    def forget(self, key_id: str) -> None:
        """Drop a cached answer, e.g. right after this process revoked the key."""
        self._cache.pop(key_id, None)

    async def _load(self, key_id: str) -> _Entry:
        async with read_scope(self._database) as session:
            row = (await session.execute(select(self._table).where(self._table.c.key_id == key_id))).first()
        principal = None
        now = utc_now()
        if (
            row is not None
            and row.secret_hash
            and row.revoked_at is None
            and (row.expires_at is None or row.expires_at > now)
        ):
            principal = Principal(key_id=key_id, scopes=frozenset(row.scopes), affiliate_id=row.affiliate_id)
        if len(self._cache) > 10_000:
            # Made-up key ids could otherwise grow it without bound; forget those first, so a flood of
            # bad keys does not push the good ones out.
            self._cache = {
                known: entry for known, entry in self._cache.items() if entry.principal is not None
            }
            if len(self._cache) > 10_000:
                self._cache.clear()
        entry = _Entry(
            secret_hash=row.secret_hash if row is not None else "",
            principal=principal,
            fetched_at=time.monotonic(),
        )
        self._cache[key_id] = entry
        return entry
