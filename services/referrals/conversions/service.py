"""Postbacks in, conversions out. Flushes, never commits.

One conversion per (source, transaction id): the source is the API key's id, or the signing source's
name. Each postback is kept (`postback`) with what it did:
- the first of a transaction records the conversion (`crm.conversion.recorded`), attributed or not;
- a repeat (the same status again, or an `Idempotency-Key` used before) changes nothing and answers with
  the conversion, marked as a duplicate (`crm.conversion.duplicate`);
- a later status moves the conversion on (`crm.conversion.status_changed`); an older one after a newer one
  (a sale after its refund) is `stale`: the status stays, and details the conversion lacks (the amount,
  the customer, the earlier time) are filled in from it. So a refund that comes before its sale makes the
  conversion in `refunded`, and the sale completes it.
Postbacks of one conversion take turns (a row lock on PostgreSQL, the one writer on SQLite); the
conversion's insert skips a (source, transaction id) taken meanwhile, so concurrent copies of one postback
make one conversion. Commissions are computed in the same transaction (`commissions.service`).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.commissions import service as commissions
from services.referrals.conversions import attribution, fraud
from services.referrals.conversions.models import Conversion, Postback, PostbackSource
from services.referrals.conversions.repository import ConversionRepository
from services.referrals.conversions.schemas import (
    STATUS_RANK,
    ConversionStatus,
    Outcome,
    PostbackIn,
    Review,
    ReviewDecision,
)
from services.referrals.db import outbox
from services.referrals.people import service as people
from services.referrals.programs.models import Program
from shared.db import utc_now
from shared.errors import AlreadyExists, DomainError, InUse, InvalidValue, NotFound
from shared.events.referrals import (
    ConversionDuplicate,
    ConversionRecorded,
    ConversionStatusChanged,
)
from shared.identity import hasher_of
from shared.pagination import PageRequest, Slice

IDEMPOTENCY_FIELD = "Idempotency-Key"


class ConversionNotFound(NotFound):
    def __init__(self, conversion_id: uuid.UUID) -> None:
        super().__init__("Conversion", conversion_id)


class NotHeld(InUse):
    """Only a held conversion can be reviewed."""


@dataclass(frozen=True)
class NewPostback:
    data: PostbackIn
    source: str
    """The API key's id, or the signing source's name."""
    method: Literal["GET", "POST", "EVENT"]
    """`EVENT`: not a postback, a purchase the journeys service reported on the stream."""
    authenticated_by: Literal["key", "signature", "stream"]
    idempotency_key: str | None = None
    caller_affiliate: uuid.UUID | None = None
    """Posted with a key bound to this affiliate: it can be credited, no one else."""
    rules: fraud.FraudRules = field(default_factory=fraud.FraudRules)


@dataclass(frozen=True)
class Taken:
    postback_id: uuid.UUID
    """This postback's id; for a duplicate, the id of the postback it repeats."""
    outcome: Outcome
    conversion: Conversion

    @property
    def duplicate(self) -> bool:
        return self.outcome is Outcome.DUPLICATE


async def take_postbacks(session: AsyncSession, items: Sequence[NewPostback]) -> list[Taken | Exception]:
    """Take postbacks in one transaction (concurrent requests: `shared.batching`).

    The first postback of each (source, transaction id) in the batch, when it makes a new conversion,
    is written together with the others: one insert of the conversions, one of their postback rows,
    one of their events. Every other postback (a later one of a transaction already seen, one with an
    `Idempotency-Key`, one whose transaction has a conversion) is then taken alone, in the batch's
    order, so it sees what the earlier ones did. A postback refused with a domain error has written
    nothing: every check comes before the first write."""
    repository = ConversionRepository(session)
    now = utc_now()
    results: list[Taken | Exception | None] = [None] * len(items)
    firsts: dict[tuple[str, str], int] = {}
    for index, item in enumerate(items):
        if item.idempotency_key is None:
            firsts.setdefault((item.source, item.data.transaction_id), index)
    prepared: dict[uuid.UUID, tuple[int, _NewConversion]] = {}
    for index in firsts.values():
        try:
            new = await _prepare(session, repository, items[index], now)
        except DomainError:
            continue  # taken alone below, where a known conversion may still answer it
        if new.decision.rule in ("none", "customer") and items[index].data.customer_id is not None:
            # Credit by the customer's earlier conversions must see those of this batch: taken below.
            continue
        prepared[new.values["id"]] = (index, new)
    inserted = await repository.insert_many([new.values for _, new in prepared.values()])
    recorded = [(prepared[conversion.id], conversion) for conversion in inserted]
    for (index, new), conversion in recorded:
        results[index] = _recorded(repository, items[index], new, conversion, now)
    # Each conversion's own events come after its `recorded`, whatever the order of the rest.
    await outbox.add_many(session, [_announcement(conversion) for _, conversion in recorded])
    for _, conversion in recorded:
        await commissions.conversion_recorded(session, conversion)
    for index, item in enumerate(items):
        if results[index] is None:
            try:
                results[index] = await take_postback(session, item, repository)
            except DomainError as exc:
                results[index] = exc
    return [result for result in results if result is not None]


async def take_postback(
    session: AsyncSession, item: NewPostback, repository: ConversionRepository | None = None
) -> Taken:
    """Take one postback (see `take_postbacks`)."""
    repository = repository or ConversionRepository(session)
    data = item.data
    now = utc_now()
    if item.idempotency_key is not None:
        earlier = await repository.postback_by_idempotency_key(item.source, item.idempotency_key)
        if earlier is not None:
            if earlier.transaction_id != data.transaction_id:
                raise InvalidValue(
                    IDEMPOTENCY_FIELD,
                    "This Idempotency-Key was used with another transaction; use a new key for a new one.",
                )
            conversion = await repository.get(earlier.conversion_id, lock=True)
            assert conversion is not None
            _keep(repository, item, conversion, Outcome.DUPLICATE, now, idempotency_key=None)
            await _announce_duplicate(session, conversion, now)
            return Taken(earlier.id, Outcome.DUPLICATE, conversion)
    # Most postbacks are new: try to record, and look for the conversion only when it exists.
    try:
        new = await _prepare(session, repository, item, now)
    except InvalidValue:
        # What a new conversion needs (its program, a goal of it) need not be said again by a later
        # postback of a known one, e.g. a refund that leaves out `program`.
        known = await repository.locked(item.source, data.transaction_id)
        if known is None:
            raise
        return await _update(session, repository, item, known, now)
    inserted = await repository.insert_many([new.values])
    if inserted:
        conversion = inserted[0]
        taken = _recorded(repository, item, new, conversion, now)
        await outbox.add(session, _announcement(conversion))
        await commissions.conversion_recorded(session, conversion)
        return taken
    # An earlier (or a concurrent) postback of the transaction recorded it: this one is a later one.
    conversion = await repository.locked(item.source, data.transaction_id)
    assert conversion is not None
    return await _update(session, repository, item, conversion, now)


def _goals(program: Program) -> set[str]:
    goals = {"lead", "sale"}
    goals.update(str(rule.get("goal", "sale")) for rule in program.commission_rules)
    for side in (program.referral_rewards or {}).values():
        if isinstance(side, dict):
            goals.add(str(side.get("qualifies_on", "sale")))
    return goals


@dataclass(frozen=True)
class _NewConversion:
    values: dict[str, Any]
    """The conversion's row."""
    decision: attribution.Decision


async def _prepare(
    session: AsyncSession, repository: ConversionRepository, item: NewPostback, now: datetime
) -> _NewConversion:
    """The conversion the first postback of a transaction makes: checked, attributed, fraud-checked;
    nothing written yet."""
    data = item.data
    program = await attribution.program_of(repository, data)
    if data.event not in _goals(program):
        raise InvalidValue(
            "event",
            f"{data.event!r} is not a goal of program {program.key}: use lead, sale, or a goal its "
            "commission rules name.",
        )
    occurred_at = data.occurred_at or now
    decision = await attribution.attribute(
        repository, data, program, occurred_at, caller_affiliate=item.caller_affiliate
    )
    email_hash = hasher_of(session).email(data.customer_email) if data.customer_email is not None else None
    # A buyer named by email only is the contact the contacts events gave that address, if any: their
    # conversion then goes on their timeline, and the self-referral check compares contacts too.
    contact_id = data.contact_id
    if contact_id is None and email_hash is not None:
        contact_id = await people.contact_of_email(session, email_hash)
    flags = await fraud.flags(
        repository,
        decision,
        item.rules,
        occurred_at=occurred_at,
        contact_id=contact_id,
        email_hash=email_hash,
    )
    values = {
        "id": uuid.uuid4(),
        "program_id": program.id,
        "source": item.source,
        "transaction_id": data.transaction_id,
        "goal": data.event,
        "amount": data.amount,
        "currency": _currency(data, program),
        "status": data.status.value,
        "status_changed_at": now,
        "affiliate_id": decision.affiliate.id if decision.affiliate is not None else None,
        "link_id": decision.link_id,
        "click_id": decision.click.id if decision.click is not None else None,
        "attributed": decision.attributed,
        "unattributed_reason": decision.reason,
        "attribution": decision.explanation,
        "customer_id": data.customer_id,
        "contact_id": contact_id,
        "customer_email_hash": email_hash,
        "review": Review.HELD.value if flags else Review.NONE.value,
        "fraud_flags": flags,
        "occurred_at": occurred_at,
        "recorded_at": now,
        "updated_at": now,
        "version": 1,
    }
    return _NewConversion(values, decision)


def _recorded(
    repository: ConversionRepository,
    item: NewPostback,
    new: _NewConversion,
    conversion: Conversion,
    now: datetime,
) -> Taken:
    """What goes with a new conversion, but its event and commissions: the postback row, and the
    buyer's contact on the crediting click (so that an erasure of the buyer finds it)."""
    click = new.decision.click
    if click is not None and conversion.contact_id is not None and click.contact_id is None:
        click.contact_id = conversion.contact_id
    postback = _keep(repository, item, conversion, Outcome.RECORDED, now)
    return Taken(postback.id, Outcome.RECORDED, conversion)


def _announcement(conversion: Conversion) -> ConversionRecorded:
    return ConversionRecorded(
        conversion_id=conversion.id,
        program_id=conversion.program_id,
        affiliate_id=conversion.affiliate_id,
        click_id=conversion.click_id,
        contact_id=conversion.contact_id,
        source=conversion.source,
        transaction_id=conversion.transaction_id,
        goal=conversion.goal,
        amount=conversion.amount,
        currency=conversion.currency,
        status=conversion.status,
        attributed=conversion.attributed,
        unattributed_reason=conversion.unattributed_reason,
        held_for_review=conversion.review == Review.HELD.value,
        occurred_at=conversion.occurred_at,
        recorded_at=conversion.recorded_at,
    )


def _currency(data: PostbackIn, program: Program) -> str | None:
    if data.currency is not None:
        return data.currency
    return program.currency if data.amount is not None else None


async def _update(
    session: AsyncSession,
    repository: ConversionRepository,
    item: NewPostback,
    conversion: Conversion,
    now: datetime,
) -> Taken:
    """A later postback of a known conversion: a duplicate, a new status, or an older (stale) one."""
    data = item.data
    status = data.status
    current = ConversionStatus(conversion.status)
    first = await repository.first_postback_with(conversion.id, status.value)
    if first is not None or status is current:
        postback = _keep(repository, item, conversion, Outcome.DUPLICATE, now)
        await _announce_duplicate(session, conversion, now)
        return Taken(first.id if first is not None else postback.id, Outcome.DUPLICATE, conversion)
    if STATUS_RANK[status] > STATUS_RANK[current]:
        await _fill_in(session, repository, conversion, data)
        await _change_status(session, conversion, status, data.reason, now)
        postback = _keep(repository, item, conversion, Outcome.STATUS_CHANGED, now)
        return Taken(postback.id, Outcome.STATUS_CHANGED, conversion)
    if await _fill_in(session, repository, conversion, data):
        conversion.updated_at = now
    postback = _keep(repository, item, conversion, Outcome.STALE, now)
    return Taken(postback.id, Outcome.STALE, conversion)


async def _fill_in(
    session: AsyncSession, repository: ConversionRepository, conversion: Conversion, data: PostbackIn
) -> bool:
    """Take from a postback what the conversion lacks: its first postback may have been a refund that
    knew less than the sale. Never overwrites what is known. Returns whether anything was filled."""
    filled = False
    if conversion.amount is None and data.amount is not None:
        conversion.amount = data.amount
        if data.currency is None and conversion.currency is None:
            # As on a first postback: an amount without a currency is in the program's.
            program = await repository.program(conversion.program_id)
            conversion.currency = program.currency if program is not None else None
        filled = True
    if conversion.currency is None and data.currency is not None:
        conversion.currency = data.currency
        filled = True
    if conversion.customer_id is None and data.customer_id is not None:
        conversion.customer_id = data.customer_id
        filled = True
    if conversion.contact_id is None and data.contact_id is not None:
        conversion.contact_id = data.contact_id
        filled = True
    if conversion.customer_email_hash is None and data.customer_email is not None:
        conversion.customer_email_hash = hasher_of(session).email(data.customer_email)
        filled = True
    # The sale happened before its refund: the earlier time is when the conversion occurred.
    if data.occurred_at is not None and data.occurred_at < conversion.occurred_at:
        conversion.occurred_at = data.occurred_at
        filled = True
    return filled


async def _change_status(
    session: AsyncSession, conversion: Conversion, status: ConversionStatus, reason: str | None, now: datetime
) -> None:
    old = conversion.status
    conversion.status = status.value
    conversion.status_changed_at = now
    conversion.updated_at = now
    await outbox.add(
        session,
        ConversionStatusChanged(
            conversion_id=conversion.id,
            old_status=old,
            new_status=status.value,
            reason=reason,
            changed_at=now,
        ),
    )
    await commissions.conversion_status_changed(session, conversion, old, reason)


def _keep(
    repository: ConversionRepository,
    item: NewPostback,
    conversion: Conversion,
    outcome: Outcome,
    now: datetime,
    *,
    idempotency_key: str | Literal["item"] | None = "item",
) -> Postback:
    postback = Postback(
        id=uuid.uuid4(),
        source=item.source,
        transaction_id=item.data.transaction_id,
        # A repeat of a key already kept is kept without it: the key names its first postback.
        idempotency_key=item.idempotency_key if idempotency_key == "item" else idempotency_key,
        method=item.method,
        authenticated_by=item.authenticated_by,
        status=item.data.status.value,
        outcome=outcome.value,
        conversion_id=conversion.id,
        received_at=now,
    )
    repository.add_postback(postback)
    return postback


async def _announce_duplicate(session: AsyncSession, conversion: Conversion, now: datetime) -> None:
    await outbox.add(
        session,
        ConversionDuplicate(
            conversion_id=conversion.id,
            source=conversion.source,
            transaction_id=conversion.transaction_id,
            received_at=now,
        ),
    )


# Reading and reviewing


async def get_conversion(session: AsyncSession, conversion_id: uuid.UUID) -> Conversion:
    conversion = await ConversionRepository(session).get(conversion_id)
    if conversion is None:
        raise ConversionNotFound(conversion_id)
    return conversion


async def postbacks_of(session: AsyncSession, conversion_id: uuid.UUID) -> list[Postback]:
    return await ConversionRepository(session).postbacks_of(conversion_id)


async def list_conversions(
    session: AsyncSession,
    page: PageRequest,
    *,
    program_id: uuid.UUID | None = None,
    affiliate_id: uuid.UUID | None = None,
    status: str | None = None,
    attributed: bool | None = None,
    review: str | None = None,
) -> Slice[Conversion]:
    return await ConversionRepository(session).page(
        page,
        program_id=program_id,
        affiliate_id=affiliate_id,
        status=status,
        attributed=attributed,
        review=review,
    )


async def review_conversion(
    session: AsyncSession, conversion_id: uuid.UUID, decision: ReviewDecision, note: str | None
) -> Conversion:
    """Decide on a held conversion: approve releases its commissions, reject rejects the conversion
    (announced as a status change) and reverses them."""
    conversion = await ConversionRepository(session).get(conversion_id, lock=True)
    if conversion is None:
        raise ConversionNotFound(conversion_id)
    if conversion.review != Review.HELD.value:
        raise NotHeld(f"Conversion {conversion_id} is not held for review (review is {conversion.review}).")
    now = utc_now()
    conversion.updated_at = now
    if decision is ReviewDecision.APPROVE:
        conversion.review = Review.APPROVED.value
    else:
        conversion.review = Review.REJECTED.value
        if STATUS_RANK[ConversionStatus(conversion.status)] < STATUS_RANK[ConversionStatus.REJECTED]:
            old = conversion.status
            conversion.status = ConversionStatus.REJECTED.value
            conversion.status_changed_at = now
            await outbox.add(
                session,
                ConversionStatusChanged(
                    conversion_id=conversion.id,
                    old_status=old,
                    new_status=conversion.status,
                    reason=f"review: {note}" if note else "review",
                    changed_at=now,
                ),
            )
    # The review decides the commissions (commissions.conversion_reviewed reverses on a rejection), so
    # the status change above is not also passed to conversion_status_changed: that would reverse twice.
    await commissions.conversion_reviewed(session, conversion)
    return conversion


# Signing sources


@dataclass(frozen=True)
class CreatedSource:
    source: PostbackSource
    secret: str
    """Shown once; derived again from the salt to verify (`source_secret`)."""


SECRET_PURPOSE = "postback-source"


def source_secret(session: AsyncSession, source: PostbackSource) -> str:
    return hasher_of(session).secret(SECRET_PURPOSE, source.salt)


async def create_source(session: AsyncSession, name: str, description: str | None) -> CreatedSource:
    repository = ConversionRepository(session)
    if await repository.source(name) is not None:
        raise AlreadyExists(f"A postback source named {name} exists.", existing_id=name)
    source = PostbackSource(
        name=name, description=description, salt=secrets.token_hex(32), created_at=utc_now()
    )
    session.add(source)
    await session.flush()
    return CreatedSource(source, source_secret(session, source))


async def list_sources(session: AsyncSession) -> list[PostbackSource]:
    return await ConversionRepository(session).sources()


async def find_source(session: AsyncSession, name: str) -> PostbackSource | None:
    return await ConversionRepository(session).source(name)
