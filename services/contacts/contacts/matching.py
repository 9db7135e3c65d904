"""Forms of an identifier that tell two records of one person apart from two people: used to find
duplicate candidates, never to match a write (a write matches an identity exactly)."""

from __future__ import annotations

import unicodedata
from difflib import SequenceMatcher

# Providers that ignore dots in the local part: j.doe@gmail.com and jdoe@gmail.com reach one inbox.
DOTLESS_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
GMAIL_ALIASES = {"googlemail.com": "gmail.com"}


def canonical_email(email: str) -> str:
    """The mailbox an address reaches: lower case, no `+tag`, no dots where the provider ignores them."""
    local, _, domain = email.strip().lower().rpartition("@")
    if not local:
        return email.strip().lower()
    local = local.split("+", 1)[0] or local
    if domain in DOTLESS_DOMAINS:
        local = local.replace(".", "")
    return f"{local}@{GMAIL_ALIASES.get(domain, domain)}"


def plain(text: str | None) -> str:
    """Lower case, accents and punctuation off, single spaces: `Zoë  O'Brien` → `zoe obrien`."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text)
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    kept = "".join(c if c.isalnum() or c.isspace() else "" for c in letters.lower())
    return " ".join(kept.split())


def name_similarity(a: tuple[str | None, str | None], b: tuple[str | None, str | None]) -> float:
    """How alike two (first, last) names are, 0..1; first and last swapped counts as the same."""
    left = plain(" ".join(part for part in a if part))
    right = plain(" ".join(part for part in b if part))
    if not left or not right:
        return 0.0
    swapped = plain(" ".join(part for part in reversed(b) if part))
    return max(SequenceMatcher(None, left, right).ratio(), SequenceMatcher(None, left, swapped).ratio())
