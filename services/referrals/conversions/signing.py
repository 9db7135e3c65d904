"""Signed postbacks: `X-CRM-Signature: t=<unix seconds>,v1=<hex>`, as Stripe signs its webhooks.

`v1` is the hex HMAC-SHA256, keyed with the source's secret, of `<t>.<the raw body>`. A signature is
accepted when one of its `v1` values matches (several may come while a secret is being replaced) and `t`
is within the tolerance of the server's clock either way, so a captured request cannot be replayed after
it; a copy replayed within the window is a retry, and the postback's idempotency answers it as one.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

HEADER = "X-CRM-Signature"


class BadSignature(Exception):
    """Why a signature was refused; answered as a 401 without telling a guesser which part was wrong
    beyond what a honest sender needs to fix their clock or their code."""


@dataclass(frozen=True)
class Signature:
    timestamp: int
    digests: tuple[str, ...]


def parse(header: str | None) -> Signature:
    if not header:
        raise BadSignature(f"Sign the postback: {HEADER}: t=<unix seconds>,v1=<hex HMAC-SHA256>.")
    timestamp: int | None = None
    digests: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            digests.append(value.lower())
    if timestamp is None or not digests:
        raise BadSignature(f"{HEADER} must hold t=<unix seconds> and at least one v1=<hex>.")
    return Signature(timestamp, tuple(digests))


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `v1` digest of `body` at `timestamp`: what a sender computes."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(signature: Signature, secret: str, body: bytes, *, now: float, tolerance_s: int) -> None:
    if abs(now - signature.timestamp) > tolerance_s:
        raise BadSignature(
            f"The signature's timestamp is more than {tolerance_s} s from the server's clock; sign with "
            "the current time."
        )
    expected = sign(secret, signature.timestamp, body)
    if not any(hmac.compare_digest(expected, digest) for digest in signature.digests):
        raise BadSignature("The signature does not match the body, the timestamp or the source.")
