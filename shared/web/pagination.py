"""Cursor pagination over HTTP: `limit` and `cursor` query parameters, a `Page` body, a `Link` header.

Every list endpoint takes the same two parameters and answers the same way:

    @router.get("")
    async def list_things(request: Request, response: Response, page: Annotated[
        PageRequest, Depends(page_request(NEWEST_FIRST))], ...) -> Page[ThingRead]:
        found = await service.list_things(session, page)
        return paginated(request, response, found, ThingRead.model_validate)

The keyset itself (sort, cursor format, the SQL) is in `shared.pagination`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Generic, TypeVar

from fastapi import Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from shared.pagination import CURSOR_FIELD, InvalidCursor, Keyset, PageRequest, Slice

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

Item = TypeVar("Item")
Row = TypeVar("Row")


class Page(BaseModel, Generic[Item]):
    """One page of a list, oldest-to-newest or as the endpoint says, and how to ask for the next."""

    items: list[Item]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page. Opaque: do not build "
        'or change it. The same URL is in the `Link` header with `rel="next"`.'
    )


PageLimit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page, 1 to {MAX_LIMIT}.")]
PageCursor = Annotated[
    str | None, Query(description="`next_cursor` of the previous page; leave out for the first page.")
]


def page_from(keyset: Keyset, limit: int, cursor: str | None) -> PageRequest:
    """The page `limit` and `cursor` ask for, in `keyset`'s order; a bad cursor is a 422 on `cursor`."""
    if cursor is None:
        return PageRequest(limit=limit)
    try:
        return PageRequest(limit=limit, after=keyset.decode(cursor))
    except InvalidCursor as exc:
        # Answered like any other invalid query parameter: a 422 naming `cursor` in `query`.
        raise RequestValidationError(
            [{"type": "cursor_invalid", "loc": ("query", CURSOR_FIELD), "msg": exc.detail, "input": cursor}]
        ) from exc


def page_request(keyset: Keyset) -> Callable[[int, str | None], PageRequest]:
    """A dependency reading `limit` and `cursor` for a list sorted by `keyset`."""

    def dependency(limit: PageLimit = DEFAULT_LIMIT, cursor: PageCursor = None) -> PageRequest:
        return page_from(keyset, limit, cursor)

    return dependency


def next_link(request: Request, next_cursor: str) -> str:
    """The request's own absolute URL with `cursor` set, so the link holds the other parameters and the
    prefix the app is mounted under (`/contacts/...` in embedded mode)."""
    return str(request.url.include_query_params(**{CURSOR_FIELD: next_cursor}))


def link_next(request: Request, response: Response, next_cursor: str | None) -> None:
    """Set `Link: <...>; rel="next"` (RFC 8288) when there is a next page."""
    if next_cursor is not None:
        response.headers["Link"] = f'<{next_link(request, next_cursor)}>; rel="next"'


def paginated(
    request: Request, response: Response, found: Slice[Row], convert: Callable[[Row], Item]
) -> Page[Item]:
    """The `Page` body for `found`, and its `Link` header. A page with more fields than `items` and
    `next_cursor` subclasses `Page` and calls `link_next` itself."""
    link_next(request, response, found.next_cursor)
    return Page[Item](items=[convert(row) for row in found.items], next_cursor=found.next_cursor)
