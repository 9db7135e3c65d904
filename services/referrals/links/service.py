"""Links: a code (given or made), a destination with UTM parameters, for one affiliate in one program."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.affiliates.repository import AffiliateRepository
from services.referrals.links.models import Link
from services.referrals.links.repository import LinkRepository
from services.referrals.links.schemas import UTM_FIELDS, LinkCreate
from services.referrals.programs.repository import ProgramRepository
from services.referrals.versioned import update_versioned
from shared.db import utc_now
from shared.errors import AlreadyExists, InvalidValue, NotFound, StaleVersion
from shared.pagination import PageRequest, Slice

# A made code collides with one in 64^8; after this many collisions in a row something else is wrong.
_CODE_ATTEMPTS = 5


class LinkNotFound(NotFound):
    def __init__(self, link_id: object) -> None:
        super().__init__("Link", link_id)


def new_code() -> str:
    """8 URL-safe characters (48 random bits): short to share, unguessable enough to not be enumerated."""
    return secrets.token_urlsafe(6)


def _code_taken(code: str, holder: uuid.UUID | None) -> AlreadyExists:
    return AlreadyExists(f"The code {code!r} is another link's.", existing_id=holder or "unknown")


async def create_link(session: AsyncSession, data: LinkCreate) -> Link:
    """A link for an active program and an existing affiliate; a taken code is `AlreadyExists`."""
    program = await ProgramRepository(session).get(data.program_id)
    if program is None:
        raise InvalidValue("program_id", f"No program with id {data.program_id}.")
    if program.status != "active":
        raise InvalidValue("program_id", f"The program {data.program_id} is archived.")
    if await AffiliateRepository(session).get(data.affiliate_id) is None:
        raise InvalidValue("affiliate_id", f"No affiliate with id {data.affiliate_id}.")
    repository = LinkRepository(session)
    for _attempt in range(_CODE_ATTEMPTS):
        code = data.code or new_code()
        if (holder := await repository.id_by_code(code)) is not None:
            if data.code is not None:
                raise _code_taken(code, holder)
            continue
        link = Link(
            code=code,
            destination_url=data.destination_url,
            program_id=data.program_id,
            affiliate_id=data.affiliate_id,
            **{name: getattr(data, name) for name in UTM_FIELDS},
        )
        try:
            # A savepoint: a code taken by a concurrent writer leaves the transaction usable to name it.
            async with session.begin_nested():
                session.add(link)
                await session.flush()
        except IntegrityError:
            if data.code is not None:
                raise _code_taken(code, await repository.id_by_code(code)) from None
            continue
        return link
    raise RuntimeError(f"no free link code after {_CODE_ATTEMPTS} attempts")


async def get_link(session: AsyncSession, link_id: uuid.UUID) -> Link:
    link = await LinkRepository(session).get(link_id)
    if link is None:
        raise LinkNotFound(link_id)
    return link


async def list_links(
    session: AsyncSession,
    page: PageRequest,
    *,
    program_id: uuid.UUID | None = None,
    affiliate_id: uuid.UUID | None = None,
) -> Slice[Link]:
    """Oldest first, optionally of one program and/or one affiliate."""
    return await LinkRepository(session).page(page, program_id=program_id, affiliate_id=affiliate_id)


async def update_link(
    session: AsyncSession,
    link_id: uuid.UUID,
    values: Mapping[str, Any],
    *,
    if_match: Collection[str] | None = None,
) -> Link:
    """Set `values`; `if_match` as for programs. The redirect sees the change at once in this process,
    and within `click_link_cache_seconds` in the others (`clicks.cache`)."""
    return await update_versioned(session, Link, link_id, values, if_match=if_match, not_found=LinkNotFound)


async def archive_link(
    session: AsyncSession, link_id: uuid.UUID, *, if_match: Collection[str] | None = None
) -> Link:
    """Archive: it still redirects and records clicks (printed links live for ever) and credits nothing
    new. Archiving an archived link changes nothing."""
    link = await get_link(session, link_id)
    if link.archived_at is not None:
        if if_match is not None and link.etag not in if_match:
            raise StaleVersion("Link", link_id, current=link.etag)
        return link
    return await update_link(session, link_id, {"archived_at": utc_now()}, if_match=if_match)
