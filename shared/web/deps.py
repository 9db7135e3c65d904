"""Dependencies every service's endpoints use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import read_scope, roll_back_at_end, session_scope
from shared.runtime import ServiceRuntime
from shared.web.idempotency import keep_no_answer


def get_runtime(request: Request) -> ServiceRuntime:
    runtime = request.app.state.runtime
    assert isinstance(runtime, ServiceRuntime)
    return runtime


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    # scope="function" below: the commit happens before the response is sent, so a client never
    # sees success for a write that then failed to commit.
    async with session_scope(get_runtime(request).database) as session:
        yield session


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with read_scope(get_runtime(request).database) as session:
        yield session


RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
# For endpoints that only read: no commit, and on SQLite no wait behind writers.
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session, scope="function")]


async def dry_run_flag(
    request: Request,
    session: SessionDep,
    dry_run: Annotated[
        bool,
        Query(
            description="Run every check and statement the write would, answer as it would, and keep "
            "nothing: no row, no event, no answer kept for an `Idempotency-Key`."
        ),
    ] = False,
) -> bool:
    # The request's own session, so the one place that commits rolls this one back instead.
    if dry_run:
        roll_back_at_end(session)
        keep_no_answer(request)
    return dry_run


# `?dry_run=true` on a write: see `dry_run_flag`.
DryRunDep = Annotated[bool, Depends(dry_run_flag)]
