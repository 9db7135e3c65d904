"""Programs: created with validated rules (`rules.py`), changed under a version, archived for good."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.programs.models import Program
from services.referrals.programs.repository import ProgramRepository
from services.referrals.programs.schemas import ProgramCreate
from services.referrals.versioned import update_versioned
from shared.errors import AlreadyExists, NotFound
from shared.pagination import PageRequest, Slice

# A write that loses a race with another is read again and retried this many times.


class ProgramNotFound(NotFound):
    def __init__(self, program_id: object) -> None:
        super().__init__("Program", program_id)


def _key_taken(key: str, holder: uuid.UUID | None) -> AlreadyExists:
    return AlreadyExists(f"The key {key!r} is another program's.", existing_id=holder or "unknown")


async def create_program(session: AsyncSession, data: ProgramCreate) -> Program:
    repository = ProgramRepository(session)
    if (holder := await repository.id_by_key(data.key)) is not None:
        raise _key_taken(data.key, holder)
    values = data.model_dump(mode="json")
    program = Program(**values)
    try:
        # A savepoint: a key taken by a concurrent writer leaves the transaction usable to name it.
        async with session.begin_nested():
            session.add(program)
            await session.flush()
    except IntegrityError:
        raise _key_taken(data.key, await repository.id_by_key(data.key)) from None
    return program


async def get_program(session: AsyncSession, program_id: uuid.UUID) -> Program:
    program = await ProgramRepository(session).get(program_id)
    if program is None:
        raise ProgramNotFound(program_id)
    return program


async def list_programs(session: AsyncSession, page: PageRequest) -> Slice[Program]:
    """Oldest first."""
    return await ProgramRepository(session).page(page)


async def update_program(
    session: AsyncSession,
    program_id: uuid.UUID,
    values: Mapping[str, Any],
    *,
    if_match: Collection[str] | None = None,
) -> Program:
    """Set `values` on the program. A stale `if_match`, or a write by someone else between this read
    and this write (the UPDATE checks the version), is a `StaleVersion`. A new rule applies to
    conversions recorded from then on; commissions already computed keep their amounts."""
    return await update_versioned(
        session, Program, program_id, values, if_match=if_match, not_found=ProgramNotFound
    )


async def archive_program(
    session: AsyncSession, program_id: uuid.UUID, *, if_match: Collection[str] | None = None
) -> Program:
    """Archive: its links keep redirecting and recording clicks, its conversions earn nothing new.
    Archiving an archived program changes nothing."""
    return await update_program(session, program_id, {"status": "archived"}, if_match=if_match)
