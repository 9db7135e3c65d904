"""The one way referrals changes a versioned row (a program, an affiliate, a link) from a PATCH."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from shared.db import utc_now
from shared.errors import DomainError, StaleVersion

_UPDATE_ATTEMPTS = 3


class Versioned(Protocol):
    updated_at: datetime

    @property
    def etag(self) -> str: ...


RowT = TypeVar("RowT", bound=Versioned)


async def update_versioned(
    session: AsyncSession,
    model: type[RowT],
    row_id: uuid.UUID,
    values: Mapping[str, Any],
    *,
    if_match: Collection[str] | None,
    not_found: Callable[[uuid.UUID], DomainError],
) -> RowT:
    """Set `values` on the row. A stale `if_match`, or a write by someone else between this read and
    this write that retries cannot get past (the UPDATE checks the version), is a `StaleVersion`."""
    row: RowT | None = None
    for attempt in range(_UPDATE_ATTEMPTS):
        row = await session.get(model, row_id, populate_existing=attempt > 0)
        if row is None:
            raise not_found(row_id)
        if if_match is not None and row.etag not in if_match:
            raise StaleVersion(model.__name__, row_id, current=row.etag)
        changes = {name: value for name, value in values.items() if getattr(row, name) != value}
        if not changes:
            return row
        try:
            async with session.begin_nested():
                for name, value in changes.items():
                    setattr(row, name, value)
                row.updated_at = utc_now()
                await session.flush()
        except StaleDataError:
            continue
        return row
    assert row is not None
    raise StaleVersion(model.__name__, row_id, current=row.etag)
