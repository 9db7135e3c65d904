"""Group commit: concurrent items share a transaction, and one bad item fails only itself."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.batching import BatchWriter
from shared.db import Database
from tests.shared.support import count, effects


class Refused(Exception):
    """A domain error for one item."""


async def _write(session: AsyncSession, notes: Sequence[str]) -> list[int | Exception]:
    if "explode" in notes:
        raise RuntimeError("this batch cannot be written")
    await session.execute(
        insert(effects), [{"event_id": note, "note": note} for note in notes if note != "refused"]
    )
    return [Refused(note) if note == "refused" else len(notes) for note in notes]


async def test_concurrent_items_share_one_transaction(database: Database) -> None:
    writer = BatchWriter(database, _write)
    assert await writer.submit("alone") == 1, "a lone item is written at once, in a batch of its own"
    sizes = await asyncio.gather(*(writer.submit(f"n{n}") for n in range(40)))
    assert await count(database, effects) == 41
    assert min(sizes) > 1, "items that arrived together were written together"


async def test_a_domain_error_answers_its_item_and_writes_nothing_for_it(database: Database) -> None:
    writer = BatchWriter(database, _write)
    results = await asyncio.gather(
        writer.submit("a"), writer.submit("refused"), writer.submit("b"), return_exceptions=True
    )
    assert isinstance(results[1], Refused)
    assert await count(database, effects) == 2


async def test_a_failing_batch_is_retried_item_by_item(database: Database) -> None:
    writer = BatchWriter(database, _write)
    results = await asyncio.gather(
        writer.submit("a"),
        writer.submit("b"),
        writer.submit("explode"),
        writer.submit("c"),
        return_exceptions=True,
    )
    assert isinstance(results[2], RuntimeError)
    assert [r for n, r in enumerate(results) if n != 2] == [1, 1, 1]
    assert await count(database, effects) == 3
    with pytest.raises(RuntimeError):
        await writer.submit("explode")
