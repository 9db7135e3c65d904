"""Saved dynamic segments: a named filter, whose members and count are whoever matches it now.

The filter is checked when it is saved (a field or value the search language does not take is an
`InvalidValue` naming it), and run like a search when the segment is read, so the count is live.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.contacts import service as contacts
from services.contacts.search.schemas import Filter, SearchRequest
from services.contacts.segments.models import Segment
from services.contacts.segments.schemas import SegmentCreate, SegmentPatch
from shared.db import utc_now
from shared.errors import NotFound
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_page

BY_NAME = Keyset(SortKey(Segment.name), SortKey(Segment.id))


class SegmentNotFound(NotFound):
    def __init__(self, segment_id: uuid.UUID) -> None:
        super().__init__("Segment", segment_id)


@dataclass(frozen=True)
class CountedSegment:
    segment: Segment
    count: int
    counted_at: datetime


def _stored(node: Filter) -> dict[str, object]:
    return node.model_dump(mode="json", by_alias=True, exclude_none=True)


async def _counted(session: AsyncSession, segment: Segment) -> CountedSegment:
    return CountedSegment(
        segment, await contacts.count_contacts(session, Filter.model_validate(segment.filter)), utc_now()
    )


async def create_segment(session: AsyncSession, data: SegmentCreate) -> CountedSegment:
    counted = await contacts.count_contacts(session, data.filter)  # checks the filter, too
    segment = Segment(id=uuid.uuid4(), name=data.name, filter=_stored(data.filter))
    session.add(segment)
    await session.flush()
    return CountedSegment(segment, counted, utc_now())


async def _get(session: AsyncSession, segment_id: uuid.UUID) -> Segment:
    segment = await session.get(Segment, segment_id)
    if segment is None:
        raise SegmentNotFound(segment_id)
    return segment


async def get_segment(session: AsyncSession, segment_id: uuid.UUID) -> CountedSegment:
    return await _counted(session, await _get(session, segment_id))


async def list_segments(session: AsyncSession, page: PageRequest) -> Slice[CountedSegment]:
    found = await fetch_page(session, select(Segment), BY_NAME, page)
    return Slice([await _counted(session, segment) for segment in found.items], found.next_cursor)


async def update_segment(session: AsyncSession, segment_id: uuid.UUID, patch: SegmentPatch) -> CountedSegment:
    segment = await _get(session, segment_id)
    if patch.name is not None:
        segment.name = patch.name
    if patch.filter is not None:
        await contacts.count_contacts(session, patch.filter)
        segment.filter = _stored(patch.filter)
    await session.flush()
    return await _counted(session, segment)


async def delete_segment(session: AsyncSession, segment_id: uuid.UUID) -> None:
    await session.delete(await _get(session, segment_id))
    await session.flush()


async def members(
    session: AsyncSession, segment_id: uuid.UUID, limit: int, cursor: str | None
) -> contacts.SearchResult:
    segment = await _get(session, segment_id)
    request = SearchRequest(
        filter=Filter.model_validate(segment.filter), limit=limit, cursor=cursor, with_total=True
    )
    return await contacts.search_contacts(session, request)
