"""Entity tags: `ETag` on reads, `If-None-Match` (304) and `If-Match` (412) preconditions (RFC 9110).

A resource's tag is a strong tag made from its version column, `"<version>"`, not a hash of its body.
The version goes up by one with every write, and the UPDATE itself checks it (`WHERE version = :read`),
so a write made against a stale tag fails atomically in the database, with no window between a check
and the write; a hash could not be compared there without computing and storing it on every write.
Reads need no serialising and hashing of the body either, and the tag stays the same across
representations that show the same version (a page of a list and the item itself).

Resources make their own tags (`Contact.etag`); this module only reads and compares them as opaque
strings. The domain checks `If-Match` and raises `shared.errors.StaleVersion` (412 with the current
`ETag`, see `shared.web.problems`), since only the write knows whether the version still holds.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header, Response, status

ETAG = "ETag"

# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, in a comma-separated list (RFC 9110, 8.8.3).
_ENTITY_TAG = re.compile(r'\s*((?:W/)?"[^"]*")\s*(?:,|$)')


def _tags(header: str) -> list[str] | None:
    """The entity tags of an `If-Match` / `If-None-Match` value; None when it is not a valid list."""
    tags, position = [], 0
    while position < len(header.rstrip()):
        match = _ENTITY_TAG.match(header, position)
        if match is None or match.end() == position:
            return None
        tags.append(match.group(1))
        position = match.end()
    return tags


def _weak_match(one: str, other: str) -> bool:
    return one.removeprefix("W/") == other.removeprefix("W/")


def not_modified(header: str | None, etag: str) -> Response | None:
    """A 304 (with the `ETag`, no body) when `If-None-Match` names the current tag or is `*`; else None.

    `If-None-Match` compares weakly: a client may send back the tag it got as a weak one.
    """
    if header is None:
        return None
    tags = ["*"] if header.strip() == "*" else _tags(header)
    if tags is None or not any(tag == "*" or _weak_match(tag, etag) for tag in tags):
        return None
    return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={ETAG: etag})


def if_match(
    if_match: Annotated[
        str | None,
        Header(description="Apply the change only if the resource's `ETag` is still one of these; else 412."),
    ] = None,
) -> frozenset[str] | None:
    """The tags `If-Match` accepts, for the domain to compare with the current one; None for no condition.

    `*` matches any current version of a resource that exists, which is no condition on the version:
    None too (a missing resource is a 404 anyway). The comparison is strong (the domain compares the
    strings as they are): a weak tag, or a header that does not parse, never matches, so it is a 412.
    """
    if if_match is None or if_match.strip() == "*":
        return None
    return frozenset(_tags(if_match) or ())


IfMatchDep = Annotated[frozenset[str] | None, Depends(if_match)]
# Declare as `if_none_match: IfNoneMatchHeader = None`: the header is `If-None-Match`.
IfNoneMatchHeader = Annotated[
    str | None,
    Header(description="An `ETag` read earlier: 304 with no body while it is current."),
]
