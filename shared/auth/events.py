"""Keys and revocations travel on `crm.access` so that every service keeps its own copy of the keys.

Only hashes travel: a key is shown once to whoever created it and is never written anywhere else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from shared.events import topics
from shared.events.base import Event


class ApiKeyCreated(Event):
    """An API key was created; `secret_hash` is the sha256 of the key, never the key."""

    topic = topics.ACCESS.name
    type: Literal["crm.api_key.created"] = "crm.api_key.created"
    schema_version: Literal[1] = 1

    key_id: str
    secret_hash: str
    name: str | None = None
    scopes: list[str]
    affiliate_id: str | None = None
    created_at: datetime
    expires_at: datetime | None = None

    @property
    def key(self) -> str:
        return self.key_id


class ApiKeyRevoked(Event):
    """An API key was revoked; every service refuses it from the moment it reads this."""

    topic = topics.ACCESS.name
    type: Literal["crm.api_key.revoked"] = "crm.api_key.revoked"
    schema_version: Literal[1] = 1

    key_id: str
    revoked_at: datetime

    @property
    def key(self) -> str:
        return self.key_id
