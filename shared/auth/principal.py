"""Scopes, the key format, and the principal a request acts as."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final, Literal

ADMIN: Final = "admin"

# One scope per service and action; `admin` holds all of them and is the only one that manages keys.
SCOPES: Final[dict[str, str]] = {
    ADMIN: "Everything, including creating and revoking API keys.",
    "contacts:read": "Read contacts, companies, deals and the rest of the contacts service.",
    "contacts:write": "Create and change contacts, companies and deals.",
    "journeys:read": "Read timelines, journeys and funnels.",
    "journeys:write": "Send touchpoints and tracking calls; define journeys.",
    "referrals:read": "Read programs, affiliates, links, conversions and commissions.",
    "referrals:write": "Manage programs, affiliates, links and commissions.",
    "referrals:postback": "Post conversions server to server.",
    "kpi:read": "Query KPIs and targets.",
    "kpi:write": "Set KPI targets.",
}

AFFILIATE_SCOPES: Final = frozenset({"referrals:read", "referrals:postback"})
"""All a key bound to an affiliate may hold: it reads its own referral data and posts conversions."""

TOKEN_PREFIX: Final = "crm_"
"""Every key starts with this, so that secret scanners and people recognise one in a log or a repo."""


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: an API key, the bootstrap key, or a key bound to one affiliate."""

    key_id: str
    scopes: frozenset[str]
    affiliate_id: str | None = None

    @property
    def kind(self) -> Literal["admin", "affiliate", "key"]:
        if self.affiliate_id is not None:
            return "affiliate"
        return "admin" if ADMIN in self.scopes else "key"

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or ADMIN in self.scopes


@dataclass(frozen=True)
class IssuedToken:
    key_id: str
    token: str
    secret_hash: str


def issue_token() -> IssuedToken:
    """A new key: `crm_<key id>_<secret>`. The id is public (it names the key in lists and logs)."""
    key_id = secrets.token_hex(8)
    token = f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return IssuedToken(key_id=key_id, token=token, secret_hash=hash_token(token))


def hash_token(token: str) -> str:
    # A fast hash is enough: the secret is 256 random bits, so there is nothing to guess word by word.
    return hashlib.sha256(token.encode()).hexdigest()


def key_id_of(token: str) -> str | None:
    """The key id a token names, or None when it is not shaped like one of ours."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    key_id, _, secret = token.removeprefix(TOKEN_PREFIX).partition("_")
    return key_id if len(key_id) == 16 and secret else None


def same_hash(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())
