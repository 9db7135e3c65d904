"""Group commit: the writes of concurrent requests run together, in one transaction per batch.

An ingestion endpoint hands its item to a `BatchWriter` and awaits the result. While one batch is being
written, new items queue; the next batch takes all of them. So a lone request is written at once, and
under load each transaction (its statements, the round trips and the commit) serves many requests. The
outbox guarantee is unchanged: a batch's state changes and their events commit together, and a request
is answered only after its batch committed.

`apply(session, items)` returns one entry per item: the result, or the domain error for that item (an
item that gets an error must have written nothing, e.g. an `INSERT … ON CONFLICT DO NOTHING` that did
nothing). When `apply` raises, the batch is rolled back and each item is tried again alone, so one bad
item fails only its own request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import Database, session_scope

log = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

ApplyBatch = Callable[[AsyncSession, Sequence[ItemT]], Awaitable[Sequence[ResultT | Exception]]]


class BatchWriter(Generic[ItemT, ResultT]):
    def __init__(
        self, database: Database, apply: ApplyBatch[ItemT, ResultT], *, max_batch: int = 256
    ) -> None:
        self.database = database
        self.apply = apply
        self.max_batch = max_batch
        self._pending: list[tuple[ItemT, asyncio.Future[ResultT]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: ItemT) -> ResultT:
        """Write `item` with whatever else is queued; returns its result or raises its error."""
        future: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())
        return await future

    async def _write_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            try:
                await self._write(batch)
            except Exception as exc:  # never leave a request waiting
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)

    async def _write(self, batch: list[tuple[ItemT, asyncio.Future[ResultT]]]) -> None:
        items = [item for item, _ in batch]
        try:
            async with session_scope(self.database) as session:
                outcomes = await self.apply(session, items)
        except Exception as exc:
            if len(batch) == 1:
                raise
            log.info("a batch of %d failed (%r); writing its items one by one", len(batch), exc)
            for entry in batch:
                try:
                    await self._write([entry])
                except Exception as item_exc:
                    if not entry[1].done():
                        entry[1].set_exception(item_exc)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # the request was cancelled; its write stands, as if answered
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
