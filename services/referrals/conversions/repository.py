import uuid
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.affiliates.models import Affiliate
from services.referrals.clicks.models import Click
from services.referrals.conversions.models import Conversion, Postback, PostbackSource
from services.referrals.links.models import Link
from services.referrals.programs.models import Program
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_page

RowT = TypeVar("RowT")

NEWEST_FIRST = Keyset(
    SortKey(Conversion.recorded_at, descending=True), SortKey(Conversion.id, descending=True)
)
# What an explanation lists of one visitor's clicks: enough for any real journey, bounded for a bot's.
MAX_CANDIDATES = 100


_INSERT_POSTGRES = (
    postgresql.insert(Conversion)
    .on_conflict_do_nothing(index_elements=[Conversion.source, Conversion.transaction_id])
    .returning(Conversion)
)
_INSERT_SQLITE = (
    sqlite.insert(Conversion)
    .on_conflict_do_nothing(index_elements=[Conversion.source, Conversion.transaction_id])
    .returning(Conversion)
)


class ConversionRepository:
    """Queries of the conversions feature. Programs, links and affiliates are read once per repository
    (one transaction, or one group-commit batch of postbacks, which mostly name the same few)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._links_by_code: dict[str, Link | None] = {}
        self._rows: dict[tuple[type[Any], object], Any] = {}

    @property
    def _postgres(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    async def locked(self, source: str, transaction_id: str) -> Conversion | None:
        """The conversion of (source, transaction id), locked until the transaction ends on PostgreSQL
        (SQLite has one writer anyway), so that two postbacks of one conversion take turns."""
        statement = select(Conversion).where(
            Conversion.source == source, Conversion.transaction_id == transaction_id
        )
        if self._postgres:
            statement = statement.with_for_update()
        found = await self.session.scalars(statement, execution_options={"populate_existing": True})
        return found.one_or_none()

    async def insert_many(self, rows: list[dict[str, Any]]) -> list[Conversion]:
        """Insert the conversions whose (source, transaction id) is free, in one statement; returns
        those inserted. On PostgreSQL a concurrent insert of the same waits for the other transaction's
        outcome, so one of them inserts and the other sees it."""
        if not rows:
            return []
        # The values go as parameters, not into the statement: one statement, compiled once.
        statement = _INSERT_POSTGRES if self._postgres else _INSERT_SQLITE
        found = await self.session.scalars(statement, rows, execution_options={"populate_existing": True})
        return list(found)

    async def get(self, conversion_id: uuid.UUID, *, lock: bool = False) -> Conversion | None:
        return await self.session.get(
            Conversion, conversion_id, populate_existing=True, with_for_update=lock and self._postgres
        )

    async def page(
        self,
        page: PageRequest,
        *,
        program_id: uuid.UUID | None,
        affiliate_id: uuid.UUID | None,
        status: str | None,
        attributed: bool | None,
        review: str | None,
    ) -> Slice[Conversion]:
        statement: Select[Any] = select(Conversion)
        if program_id is not None:
            statement = statement.where(Conversion.program_id == program_id)
        if affiliate_id is not None:
            statement = statement.where(Conversion.affiliate_id == affiliate_id)
        if status is not None:
            statement = statement.where(Conversion.status == status)
        if attributed is not None:
            statement = statement.where(Conversion.attributed.is_(attributed))
        if review is not None:
            statement = statement.where(Conversion.review == review)
        return await fetch_page(self.session, statement, NEWEST_FIRST, page)

    async def earliest_attributed(
        self, program_id: uuid.UUID, *, customer_id: str | None = None, contact_id: uuid.UUID | None = None
    ) -> Conversion | None:
        """The customer's earliest attributed conversion in the program, by the advertiser's id for them
        or by their contact id (whichever is given)."""
        named = Conversion.customer_id == customer_id if customer_id is not None else None
        if named is None:
            assert contact_id is not None, "name the customer"
            named = Conversion.contact_id == contact_id
        return await self.session.scalar(
            select(Conversion)
            .where(Conversion.program_id == program_id, named, Conversion.attributed.is_(True))
            .order_by(Conversion.occurred_at, Conversion.id)
            .limit(1)
        )

    # Postbacks

    def add_postback(self, postback: Postback) -> None:
        # Written by the next query's autoflush, or the commit: one statement fewer per postback.
        self.session.add(postback)

    async def postback_by_idempotency_key(self, source: str, key: str) -> Postback | None:
        return await self.session.scalar(
            select(Postback).where(Postback.source == source, Postback.idempotency_key == key)
        )

    async def first_postback_with(self, conversion_id: uuid.UUID, status: str) -> Postback | None:
        return await self.session.scalar(
            select(Postback)
            .where(Postback.conversion_id == conversion_id, Postback.status == status)
            .order_by(Postback.received_at, Postback.id)
            .limit(1)
        )

    async def postbacks_of(self, conversion_id: uuid.UUID) -> list[Postback]:
        found = await self.session.scalars(
            select(Postback)
            .where(Postback.conversion_id == conversion_id)
            .order_by(Postback.received_at, Postback.id)
        )
        return list(found)

    # What attribution and the fraud checks read

    async def click(self, click_id: str) -> Click | None:
        return await self.session.get(Click, click_id)

    async def visitor_clicks(self, visitor_id: str, program_id: uuid.UUID, until: datetime) -> list[Click]:
        """The visitor's clicks in the program up to `until` (plus clock skew left to the caller), newest
        first, at most `MAX_CANDIDATES`."""
        found = await self.session.scalars(
            select(Click)
            .where(Click.visitor_id == visitor_id, Click.program_id == program_id, Click.clicked_at <= until)
            .order_by(Click.clicked_at.desc(), Click.id.desc())
            .limit(MAX_CANDIDATES)
        )
        return list(found)

    async def clicks_from_address(self, ip_hash: str, since: datetime, until: datetime) -> int:
        count = await self.session.scalar(
            select(func.count())
            .select_from(Click)
            .where(Click.ip_hash == ip_hash, Click.clicked_at >= since, Click.clicked_at <= until)
        )
        return int(count or 0)

    async def link_by_code(self, code: str) -> Link | None:
        if code not in self._links_by_code:
            self._links_by_code[code] = await self.session.scalar(select(Link).where(Link.code == code))
        return self._links_by_code[code]

    async def _row(self, kind: type[RowT], key: object) -> RowT | None:
        if (kind, key) not in self._rows:
            self._rows[(kind, key)] = await self.session.get(kind, key)
        found: RowT | None = self._rows[(kind, key)]
        return found

    async def link(self, link_id: uuid.UUID) -> Link | None:
        return await self._row(Link, link_id)

    async def affiliate(self, affiliate_id: uuid.UUID) -> Affiliate | None:
        return await self._row(Affiliate, affiliate_id)

    async def program(self, program_id: uuid.UUID) -> Program | None:
        return await self._row(Program, program_id)

    async def program_named(self, name: str) -> Program | None:
        """A program by its key, or by its id."""
        try:
            program_id = uuid.UUID(name)
        except ValueError:
            return await self.session.scalar(select(Program).where(Program.key == name))
        return await self.program(program_id)

    async def only_program(self) -> Program | None:
        """The one program, when there is exactly one."""
        found = list(await self.session.scalars(select(Program).limit(2)))
        return found[0] if len(found) == 1 else None

    # Signing sources

    async def source(self, name: str) -> PostbackSource | None:
        return await self.session.get(PostbackSource, name)

    async def sources(self) -> list[PostbackSource]:
        return list(await self.session.scalars(select(PostbackSource).order_by(PostbackSource.name)))
