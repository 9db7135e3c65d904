"""One search run for a record type: the request's filter compiled over the type's `FieldCatalog`, the
page its sort and cursor ask for, and, when asked, the number of every match.

Companies and deals search through here; contacts have the same steps in `contacts.service`, with
their own repository (which loads identities and tags with each page).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Label, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.interfaces import ORMOption

from services.contacts.properties.repository import PropertyRepository
from services.contacts.search.compiler import FieldCatalog, FilterCompiler
from services.contacts.search.schemas import SearchRequest
from shared.pagination import Keyset, PageRequest, Slice, fetch_row_page

T = TypeVar("T")


@dataclass(frozen=True)
class Found(Generic[T]):
    page: Slice[T]
    total: int | None


async def search(
    session: AsyncSession,
    entity: type[T],
    catalog: FieldCatalog,
    request: SearchRequest,
    *,
    default: Keyset,
    options: Sequence[ORMOption] = (),
) -> Found[T]:
    """The `entity` records `request` matches, as it sorts and pages them (`default` without a sort).

    A field, value or cursor the language does not take is an `InvalidValue` naming its place."""
    definitions = await PropertyRepository(session).of_type(catalog.object_type)
    compiler = FilterCompiler(catalog, definitions)
    condition = compiler.where(request.filter)
    statement, keyset = compiler.sorted(select(entity).where(condition), request.sort, default)
    page = PageRequest(limit=request.limit, after=keyset.decode(request.cursor) if request.cursor else None)
    # The sort keys are selected beside each record, labelled as the keyset reads them back (a custom
    # property's value comes from a join, not from the record).
    sort_columns = [
        key.column if isinstance(key.column, Label) else key.column.label(key.column.key)
        for key in keyset.keys
    ]
    rows = await fetch_row_page(session, statement.add_columns(*sort_columns).options(*options), keyset, page)
    total = await _count(session, entity, condition) if request.with_total else None
    return Found(Slice([row[0] for row in rows.items], rows.next_cursor), total)


async def _count(session: AsyncSession, entity: type[Any], condition: ColumnElement[bool]) -> int:
    return int(await session.scalar(select(func.count()).select_from(entity).where(condition)) or 0)
