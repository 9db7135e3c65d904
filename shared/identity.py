"""Keyed hashes of identifiers, so that events can name a person without carrying their address.

A service that needs to match people across the stream (journeys stitching a touchpoint's email to a
contact) hashes the address it holds with the same key and compares. HMAC-SHA256 with a secret key, not
a plain hash: a plain hash of an email is reversed by hashing a list of addresses, a keyed one is not
without the key. Every service of one deployment must use the same key (`CRM_IDENTITY_HASH_KEY`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from shared.settings import PlatformSettings

# Where a service's sessions find the hasher (`Database(session_info=…)`), so the write paths reach it
# without threading it through every call.
SESSION_KEY = "crm_identity_hasher"
KEY_FILE = "identity-hash-key"


class IdentityHasher:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the identity hash key must have at least 16 bytes")
        self._key = key

    def email(self, address: str) -> str:
        """The hex HMAC-SHA256 of the address, trimmed and lower-cased as contacts store it."""
        return hmac.new(self._key, address.strip().lower().encode(), hashlib.sha256).hexdigest()

    def ip(self, address: str) -> str:
        """The hex HMAC-SHA256 of a client address, as given: enough to see a burst from one address."""
        return hmac.new(self._key, b"ip:" + address.encode(), hashlib.sha256).hexdigest()

    def secret(self, purpose: str, salt: str) -> str:
        """A secret derived from the deployment's key, e.g. a postback source's signing secret: only a
        random salt is stored, so the database alone does not hold it. `purpose` keeps it apart from
        the email hashes and from other secrets derived from the same salt."""
        return hmac.new(self._key, f"secret:{purpose}:{salt}".encode(), hashlib.sha256).hexdigest()


def identity_key(platform: PlatformSettings) -> bytes:
    """The configured key; without one (embedded mode, tests), a random key made once and kept in the
    data folder, so one deployment's services agree and restarts keep the hashes stable."""
    if platform.identity_hash_key is not None:
        return platform.identity_hash_key.get_secret_value().encode()
    path: Path = platform.data_dir / KEY_FILE
    if not path.exists():
        platform.data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32) + "\n")
    return path.read_text().strip().encode()


def hasher_of(session: AsyncSession) -> IdentityHasher:
    hasher = session.info.get(SESSION_KEY)
    if not isinstance(hasher, IdentityHasher):
        raise RuntimeError("this session's database was opened without an identity hasher")
    return hasher
