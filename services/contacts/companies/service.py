"""Business rules for companies. Flushes, never commits: the caller's session scope commits."""

import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from services.contacts.companies.fields import COMPANY_FIELDS
from services.contacts.companies.models import Company, CompanyContact
from services.contacts.companies.repository import NEWEST_FIRST, CompanyRepository
from services.contacts.companies.schemas import CompanyCreate, CompanyPatch, CompanyUpsert
from services.contacts.db import outbox
from services.contacts.deals import service as deals
from services.contacts.properties.schemas import ObjectType
from services.contacts.properties.values import CustomProperties
from services.contacts.search import query
from services.contacts.search.schemas import SearchRequest
from shared.batch import BatchResult, Outcome, RecordError, RecordResult, error_of, validate_each
from shared.db import utc_now
from shared.errors import AlreadyExists, DomainError, InvalidValue, NotFound, StaleVersion
from shared.events.base import ValueChange
from shared.events.companies import (
    CompanyContactAdded,
    CompanyContactRemoved,
    CompanyCreated,
    CompanyDeleted,
    CompanyUpdated,
)
from shared.pagination import PageRequest, Slice

# Changed fields whose values stay off the stream (see `CompanyUpdated`).
_UNPUBLISHED_VALUES = frozenset({"phone"})
# Unconditional updates that keep meeting a concurrent writer give up after this many reads.
_UPDATE_ATTEMPTS = 5


class CompanyNotFound(NotFound):
    def __init__(self, company_id: uuid.UUID) -> None:
        super().__init__("Company", company_id)


class ContactNotFound(NotFound):
    def __init__(self, contact_id: uuid.UUID) -> None:
        super().__init__("Contact", contact_id)


def _domain_taken(domain: str, holder: object) -> AlreadyExists:
    return AlreadyExists(f"A company with domain {domain} already exists.", existing_id=holder)


def _check_money(revenue: int | None, currency: str | None) -> None:
    if revenue is not None and currency is None:
        raise InvalidValue("currency", "annual_revenue needs a currency (ISO 4217).")


def _as_text(value: Any) -> str | None:
    return None if value is None else str(value)


async def _holder_of(repository: CompanyRepository, domain: str) -> uuid.UUID | str:
    return await repository.id_by_domain(domain) or "unknown"


def _custom(session: AsyncSession, custom: CustomProperties | None) -> CustomProperties:
    return custom if custom is not None else CustomProperties(session, ObjectType.COMPANY)


async def create_company(
    session: AsyncSession, data: CompanyCreate | CompanyUpsert, *, custom: CustomProperties | None = None
) -> Company:
    """Create a company and announce it as `crm.company.created`; a taken domain is `AlreadyExists`.
    `custom`: the company properties' definitions, when a batch has read them already."""
    if data.name is None:
        raise InvalidValue("name", "name is needed to create a company.")
    _check_money(data.annual_revenue, data.currency)
    custom = _custom(session, custom)
    written = await custom.write({}, data.properties)
    repository = CompanyRepository(session)
    if data.domain is not None and (holder := await repository.id_by_domain(data.domain)) is not None:
        raise _domain_taken(data.domain, holder)
    company = Company(**data.model_dump(exclude={"properties"}), properties=written.values)
    try:
        # A savepoint: a domain taken by a concurrent writer leaves the transaction usable to name it.
        async with session.begin_nested():
            session.add(company)
            await session.flush()
            await custom.store(company.id, written)
    except IntegrityError:
        assert data.domain is not None  # the only unique value a new company holds
        raise _domain_taken(data.domain, await _holder_of(repository, data.domain)) from None
    await outbox.add(
        session,
        CompanyCreated(
            company_id=company.id,
            name=company.name,
            domain=company.domain,
            industry=company.industry,
            employee_count=company.employee_count,
            annual_revenue=company.annual_revenue,
            currency=company.currency,
            country=company.country,
            region=company.region,
            owner=company.owner,
            created_at=company.created_at,
        ),
    )
    return company


async def get_company(session: AsyncSession, company_id: uuid.UUID) -> Company:
    company = await CompanyRepository(session).get(company_id)
    if company is None:
        raise CompanyNotFound(company_id)
    return company


async def list_companies(session: AsyncSession, page: PageRequest) -> Slice[Company]:
    """Newest first (`repository.NEWEST_FIRST`)."""
    return await CompanyRepository(session).page(page)


async def search_companies(session: AsyncSession, request: SearchRequest) -> query.Found[Company]:
    """The companies `request.filter` matches, sorted and paged as it asks (`services.contacts.search`)."""
    return await query.search(session, Company, COMPANY_FIELDS, request, default=NEWEST_FIRST)


async def update_company(
    session: AsyncSession,
    company_id: uuid.UUID,
    patch: CompanyPatch,
    *,
    if_match: Collection[str] | None = None,
) -> Company:
    """Apply a merge patch and announce what changed as `crm.company.updated`; nothing changed, no event.

    `if_match` as in `contacts.service.update_contact`: a stale tag, or a write by someone else between
    this read and this write, is a `StaleVersion` (the UPDATE itself checks the version).
    """
    company, _changed = await _change(session, company_id, patch.given(), if_match=if_match)
    return company


async def _change(
    session: AsyncSession,
    company_id: uuid.UUID,
    values: Mapping[str, Any],
    *,
    if_match: Collection[str] | None = None,
    custom: CustomProperties | None = None,
) -> tuple[Company, bool]:
    """Set `values` on the company (`properties` merged key by key); the company, and whether anything
    changed."""
    repository = CompanyRepository(session)
    custom = _custom(session, custom)
    standard = {name: value for name, value in values.items() if name != "properties"}
    for attempt in range(_UPDATE_ATTEMPTS):
        company = await repository.get(company_id, fresh=attempt > 0)
        if company is None:
            raise CompanyNotFound(company_id)
        if if_match is not None and company.etag not in if_match:
            raise StaleVersion("Company", company_id, current=company.etag)
        changes = {
            name: (getattr(company, name), value)
            for name, value in standard.items()
            if getattr(company, name) != value
        }
        written = await custom.write(company.properties, values.get("properties"))
        if not changes and not written.changed:
            return company, False
        _check_money(
            values.get("annual_revenue", company.annual_revenue), values.get("currency", company.currency)
        )
        domain = changes.get("domain", (None, None))[1]
        if domain is not None and (holder := await repository.id_by_domain(domain)) not in (None, company_id):
            raise _domain_taken(domain, holder)
        try:
            # A savepoint, so that losing a race leaves the transaction usable to read the winner.
            async with session.begin_nested():
                for name, (_old, new) in changes.items():
                    setattr(company, name, new)
                if written.changed:
                    company.properties = written.values
                company.updated_at = utc_now()
                await session.flush()
                await custom.store(company.id, written)
        except StaleDataError:
            continue  # read again: a 412 under a condition, else the values apply to the new version
        except IntegrityError:
            assert domain is not None  # the only unique value a change can take
            raise _domain_taken(domain, await _holder_of(repository, domain)) from None
        await outbox.add(
            session,
            CompanyUpdated(
                company_id=company.id,
                changed_fields=sorted([*changes, *written.fields]),
                changes={
                    **{
                        name: ValueChange(old=_as_text(old), new=_as_text(new))
                        for name, (old, new) in changes.items()
                        if name not in _UNPUBLISHED_VALUES
                    },
                    **custom.published(written),
                },
                updated_at=company.updated_at,
            ),
        )
        return company, True
    # Only reached when every attempt lost a race, and then the last read found the company.
    assert company is not None
    raise StaleVersion("Company", company_id, current=company.etag)


async def delete_company(
    session: AsyncSession, company_id: uuid.UUID, *, if_match: Collection[str] | None = None
) -> None:
    """Delete a company with its custom property values and its associations (contacts by the database's
    cascade; deals through `deals.forget_company`, which gives them new versions), and announce it as
    `crm.company.deleted`. `if_match` as in `update_company`."""
    repository = CompanyRepository(session)
    for attempt in range(_UPDATE_ATTEMPTS):
        company = await repository.get(company_id, fresh=attempt > 0)
        if company is None:
            raise CompanyNotFound(company_id)
        if if_match is not None and company.etag not in if_match:
            raise StaleVersion("Company", company_id, current=company.etag)
        try:
            # The DELETE checks the version too: a company changed since this read is read again.
            async with session.begin_nested():
                await deals.forget_company(session, company_id)
                await session.delete(company)
                await session.flush()
        except StaleDataError:
            continue
        await CustomProperties(session, ObjectType.COMPANY).forget(company_id)
        await outbox.add(session, CompanyDeleted(company_id=company_id, deleted_at=utc_now()))
        return
    assert company is not None
    raise StaleVersion("Company", company_id, current=company.etag)


async def upsert_companies(session: AsyncSession, records: Sequence[dict[str, Any]]) -> BatchResult:
    """Create or update each record's company, matched by domain; one result per record, in order.

    A record that fails (invalid, or refused by a rule) writes nothing and fails alone: each write is
    in its own savepoint. Two records with one domain: the second updates what the first created.
    """
    validated = validate_each(CompanyUpsert, records)
    repository = CompanyRepository(session)
    custom = CustomProperties(session, ObjectType.COMPANY)
    # Ids, not objects: a record whose savepoint rolls back leaves its company expired in the session.
    known = await repository.ids_by_domain(
        {item.domain for item in validated if isinstance(item, CompanyUpsert)}
    )
    results: list[RecordResult] = []
    for index, item in enumerate(validated):
        if isinstance(item, RecordError):
            results.append(RecordResult(index=index, status=Outcome.ERROR, error=item))
            continue
        try:
            existing = known.get(item.domain)
            if existing is None:
                created = await create_company(session, item, custom=custom)
                known[item.domain] = created.id
                results.append(RecordResult(index=index, status=Outcome.CREATED, id=created.id))
            else:
                company, changed = await _change(session, existing, item.given(), custom=custom)
                status = Outcome.UPDATED if changed else Outcome.UNCHANGED
                results.append(RecordResult(index=index, status=status, id=company.id))
        except DomainError as exc:
            results.append(RecordResult(index=index, status=Outcome.ERROR, error=error_of(exc)))
    return BatchResult.of(results)


async def _company_and_contact(
    repository: CompanyRepository, company_id: uuid.UUID, contact_id: uuid.UUID
) -> None:
    if not await repository.exists(company_id):
        raise CompanyNotFound(company_id)
    if not await repository.contact_exists(contact_id):
        raise ContactNotFound(contact_id)


async def add_contact(session: AsyncSession, company_id: uuid.UUID, contact_id: uuid.UUID) -> None:
    """Associate a contact with a company; announced as `crm.company.contact_added` the first time only."""
    repository = CompanyRepository(session)
    await _company_and_contact(repository, company_id, contact_id)
    if await repository.association(company_id, contact_id) is not None:
        return
    association = CompanyContact(company_id=company_id, contact_id=contact_id)
    try:
        async with session.begin_nested():
            session.add(association)
            await session.flush()
    except IntegrityError:
        # A concurrent request made it (then it announced it), or a row went in between.
        await _company_and_contact(repository, company_id, contact_id)
        return
    await outbox.add(
        session,
        CompanyContactAdded(
            company_id=company_id, contact_id=contact_id, associated_at=association.created_at
        ),
    )


async def remove_contact(session: AsyncSession, company_id: uuid.UUID, contact_id: uuid.UUID) -> None:
    """Remove the association; announced as `crm.company.contact_removed` when there was one."""
    repository = CompanyRepository(session)
    await _company_and_contact(repository, company_id, contact_id)
    if await repository.remove_association(company_id, contact_id):
        await outbox.add(
            session,
            CompanyContactRemoved(company_id=company_id, contact_id=contact_id, removed_at=utc_now()),
        )


async def list_contacts(
    session: AsyncSession, company_id: uuid.UUID, page: PageRequest
) -> Slice[CompanyContact]:
    """The company's contacts, in the order they were associated."""
    repository = CompanyRepository(session)
    if not await repository.exists(company_id):
        raise CompanyNotFound(company_id)
    return await repository.contacts_page(company_id, page)
