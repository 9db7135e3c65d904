"""The redirect's in-process cache of links by code, so a click waits on no database round trip.

Links rarely change. An entry lives `ttl_s` (default 10 s); a change made through this process forgets
its code at once, other replicas see it within the TTL. An unknown code is remembered for a shorter time
(`missing_ttl_s`), so a scan of made-up codes does not reach the database per request, and a new link
is found within a second or two anywhere. The cache is bounded; the oldest entries go first.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote_plus, urlencode, urlsplit

from services.referrals.links.models import Link
from services.referrals.links.schemas import UTM_FIELDS

CLICK_PARAMETER: Final = "crm_click_id"


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """What the redirect needs of a link, with its landing URL prepared up to the click id."""

    link_id: uuid.UUID
    code: str
    program_id: uuid.UUID
    affiliate_id: uuid.UUID
    # The program's attribution window: how long the click id cookie is worth keeping.
    window_days: int
    # `https://shop.example/p?own=1&utm_source=x&crm_click_id=`: the click id goes after it.
    landing_head: str
    # The destination's `#fragment`, if any: after the query.
    landing_tail: str

    def landing_url(self, click_id: str) -> str:
        return f"{self.landing_head}{click_id}{self.landing_tail}"

    @classmethod
    def of(cls, link: Link, window_days: int) -> LinkTarget:
        head, tail = landing_parts(link.destination_url, {name: getattr(link, name) for name in UTM_FIELDS})
        return cls(
            link_id=link.id,
            code=link.code,
            program_id=link.program_id,
            affiliate_id=link.affiliate_id,
            window_days=window_days,
            landing_head=head,
            landing_tail=tail,
        )


def landing_parts(destination: str, utm: dict[str, str | None]) -> tuple[str, str]:
    """The destination with the link's UTM tags, up to `crm_click_id=`, and its fragment.

    The destination's own query is kept as written, parameter by parameter; a parameter the link sets
    (a UTM tag given on the link, and `crm_click_id`) replaces the destination's own of that name,
    since the link's fields are where the campaign is configured."""
    parts = urlsplit(destination)
    tags = {name: value for name, value in utm.items() if value is not None}
    replaced = {*tags, CLICK_PARAMETER}
    kept = [
        piece
        for piece in parts.query.split("&")
        if piece and unquote_plus(piece.partition("=")[0]) not in replaced
    ]
    if tags:
        kept.append(urlencode(tags))
    kept.append(f"{CLICK_PARAMETER}=")
    base = destination.split("#", 1)[0].split("?", 1)[0]
    return f"{base}?{'&'.join(kept)}", (f"#{parts.fragment}" if parts.fragment else "")


class UnknownCode:
    """A cached answer: no link has this code."""


UNKNOWN: Final = UnknownCode()


class LinkCache:
    def __init__(self, *, ttl_s: float = 10.0, missing_ttl_s: float = 2.0, max_entries: int = 50_000) -> None:
        self.ttl_s = ttl_s
        self.missing_ttl_s = missing_ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, LinkTarget | UnknownCode]] = {}

    def get(self, code: str) -> LinkTarget | UnknownCode | None:
        """The target, `UNKNOWN` for a code known not to exist, or None when the database must say."""
        entry = self._entries.get(code)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, code: str, target: LinkTarget | UnknownCode) -> None:
        if len(self._entries) >= self.max_entries:
            # Dicts keep insertion order: drop the oldest tenth at once rather than one per insert.
            for stale in list(self._entries)[: max(1, self.max_entries // 10)]:
                del self._entries[stale]
        ttl = self.missing_ttl_s if isinstance(target, UnknownCode) else self.ttl_s
        self._entries.pop(code, None)
        self._entries[code] = (time.monotonic() + ttl, target)

    def forget(self, code: str) -> None:
        self._entries.pop(code, None)
