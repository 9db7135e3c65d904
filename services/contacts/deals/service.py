"""Business rules for deals. Flushes, never commits: the caller's session scope commits.

A deal is created in an open stage and moves only through `move_stage` (or a batch record's `stage`),
so that every move is in its history, with who made it and why.
"""

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from services.contacts.db import outbox
from services.contacts.deals.fields import DEAL_FIELDS
from services.contacts.deals.models import Deal, DealCompany, DealContact, DealStageChange
from services.contacts.deals.repository import NEWEST_FIRST, DealFilter, DealRepository, Link
from services.contacts.deals.schemas import DealCreate, DealPatch, DealUpsert, StageMove
from services.contacts.pipelines.models import Pipeline, PipelineStage, StageKind
from services.contacts.pipelines.repository import DEFAULT_KEY, PipelineRepository
from services.contacts.properties.schemas import ObjectType
from services.contacts.properties.values import CustomProperties
from services.contacts.search import query
from services.contacts.search.schemas import SearchRequest
from shared.batch import BatchResult, Outcome, RecordError, RecordResult, error_of, validate_each
from shared.db import utc_now
from shared.errors import AlreadyExists, DomainError, InvalidValue, NotFound, StaleVersion
from shared.events.base import ValueChange
from shared.events.deals import (
    DealContactAdded,
    DealContactRemoved,
    DealCreated,
    DealDeleted,
    DealLost,
    DealStageChanged,
    DealStatus,
    DealUpdated,
    DealWon,
)
from shared.pagination import PageRequest, Slice

# Changed fields whose values stay off the stream (see `DealUpdated`): names are free text.
_UNPUBLISHED_VALUES = frozenset({"name"})
_UPDATE_ATTEMPTS = 5


class DealNotFound(NotFound):
    def __init__(self, deal_id: uuid.UUID) -> None:
        super().__init__("Deal", deal_id)


@dataclass(frozen=True)
class DealView:
    """A deal with its associations: what the API shows."""

    deal: Deal
    contact_ids: list[uuid.UUID]
    company_ids: list[uuid.UUID]


def _external_id_taken(external_id: str, holder: object) -> AlreadyExists:
    return AlreadyExists(f"A deal with external_id {external_id} already exists.", existing_id=holder)


def _check_money(amount: int | None, currency: str | None) -> None:
    if amount is not None and currency is None:
        raise InvalidValue("currency", "amount needs a currency (ISO 4217).")


def _as_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _status(stage: PipelineStage) -> DealStatus:
    # A stage's kind is the status of the deals in it.
    return StageKind(stage.kind).value


def _snapshot(deal: Deal, stage: PipelineStage, contact_ids: list[uuid.UUID]) -> dict[str, Any]:
    """The fields every deal event carries (`shared.events.deals.DealSnapshot`). `contact_ids` is read
    after the deal's version-checked write: a concurrent association waits for this transaction, so the
    events of one deal list its contacts in the order the changes committed."""
    return {
        "deal_id": deal.id,
        "pipeline_id": deal.pipeline_id,
        "stage": deal.stage,
        "status": _status(stage),
        "amount": deal.amount,
        "currency": deal.currency,
        "owner": deal.owner,
        "expected_close_date": deal.expected_close_date,
        "created_at": deal.created_at,
        "closed_at": deal.closed_at,
        "contact_ids": contact_ids,
    }


async def _current_stage(repository: DealRepository, deal: Deal) -> PipelineStage:
    stage = await repository.stage(deal.pipeline_id, deal.stage)
    assert stage is not None, "the foreign key keeps a deal's stage in its pipeline"
    return stage


async def _pipeline_for(session: AsyncSession, pipeline_id: uuid.UUID | None) -> Pipeline:
    pipelines = PipelineRepository(session)
    if pipeline_id is None:
        pipeline = await pipelines.by_key(DEFAULT_KEY)
        if pipeline is None:
            raise InvalidValue("pipeline_id", f"There is no `{DEFAULT_KEY}` pipeline; name one.")
        return pipeline
    found = await pipelines.get(pipeline_id)
    if found is None:
        raise InvalidValue("pipeline_id", f"No pipeline with id {pipeline_id}.")
    return found


def _custom(session: AsyncSession, custom: CustomProperties | None) -> CustomProperties:
    return custom if custom is not None else CustomProperties(session, ObjectType.DEAL)


async def create_deal(
    session: AsyncSession,
    data: DealCreate | DealUpsert,
    *,
    actor: str,
    custom: CustomProperties | None = None,
) -> Deal:
    """Create a deal in an open stage (the pipeline's first if none is named), record that stage as
    the first of its history and announce it as `crm.deal.created`. `custom`: the deal properties'
    definitions, when a batch has read them already."""
    if data.name is None:
        raise InvalidValue("name", "name is needed to create a deal.")
    _check_money(data.amount, data.currency)
    custom = _custom(session, custom)
    written = await custom.write({}, data.properties)
    pipeline = await _pipeline_for(session, data.pipeline_id)
    if data.stage is None:
        stage = next(stage for stage in pipeline.stages if stage.kind == StageKind.OPEN)
    else:
        named = pipeline.stage(data.stage)
        if named is None:
            raise InvalidValue("stage", f"Pipeline {pipeline.key} has no stage {data.stage}.")
        if named.kind != StageKind.OPEN:
            raise InvalidValue(
                "stage",
                f"A deal is created in an open stage; {named.key} is {named.kind}. Move it there after.",
            )
        stage = named
    repository = DealRepository(session)
    if data.external_id is not None and (holder := await repository.id_by_external_id(data.external_id)):
        raise _external_id_taken(data.external_id, holder)
    deal = Deal(
        name=data.name,
        pipeline_id=pipeline.id,
        stage=stage.key,
        amount=data.amount,
        currency=data.currency,
        owner=data.owner,
        expected_close_date=data.expected_close_date,
        external_id=data.external_id,
        properties=written.values,
    )
    try:
        async with session.begin_nested():
            session.add(deal)
            await session.flush()
            await custom.store(deal.id, written)
    except IntegrityError:
        # The external id, taken by a concurrent writer; or the stage, removed by one.
        if data.external_id is not None and (holder := await repository.id_by_external_id(data.external_id)):
            raise _external_id_taken(data.external_id, holder) from None
        raise InvalidValue("stage", f"Pipeline {pipeline.key} no longer has stage {stage.key}.") from None
    session.add(DealStageChange(deal_id=deal.id, actor=actor, to_stage=stage.key, changed_at=deal.created_at))
    await session.flush()
    await outbox.add(session, DealCreated(**_snapshot(deal, stage, [])))  # associated after creation
    return deal


async def view(session: AsyncSession, deal: Deal) -> DealView:
    [found] = await views(session, [deal])
    return found


async def views(session: AsyncSession, deals: Sequence[Deal]) -> list[DealView]:
    contacts, companies = await DealRepository(session).links([deal.id for deal in deals])
    return [DealView(deal, contacts[deal.id], companies[deal.id]) for deal in deals]


async def get_deal(session: AsyncSession, deal_id: uuid.UUID) -> Deal:
    deal = await DealRepository(session).get(deal_id)
    if deal is None:
        raise DealNotFound(deal_id)
    return deal


async def list_deals(session: AsyncSession, where: DealFilter, page: PageRequest) -> Slice[DealView]:
    """Newest first (`repository.NEWEST_FIRST`), filtered."""
    found = await DealRepository(session).page(where, page)
    return Slice(await views(session, found.items), found.next_cursor)


async def search_deals(session: AsyncSession, request: SearchRequest) -> query.Found[DealView]:
    """The deals `request.filter` matches, sorted and paged as it asks (see `services.contacts.search`),
    each with its associations."""
    found = await query.search(session, Deal, DEAL_FIELDS, request, default=NEWEST_FIRST)
    return query.Found(Slice(await views(session, found.page.items), found.page.next_cursor), found.total)


async def update_deal(
    session: AsyncSession,
    deal_id: uuid.UUID,
    patch: DealPatch,
    *,
    if_match: Collection[str] | None = None,
) -> Deal:
    """Apply a merge patch and announce what changed as `crm.deal.updated`; nothing changed, no event.
    `if_match` as in `contacts.service.update_contact`."""
    deal, _changed = await _change(session, deal_id, patch.given(), if_match=if_match)
    return deal


async def _change(
    session: AsyncSession,
    deal_id: uuid.UUID,
    values: Mapping[str, Any],
    *,
    if_match: Collection[str] | None = None,
    custom: CustomProperties | None = None,
) -> tuple[Deal, bool]:
    """Set `values` on the deal (`properties` merged key by key); the deal, and whether anything
    changed."""
    repository = DealRepository(session)
    custom = _custom(session, custom)
    standard = {name: value for name, value in values.items() if name != "properties"}
    for attempt in range(_UPDATE_ATTEMPTS):
        deal = await repository.get(deal_id, fresh=attempt > 0)
        if deal is None:
            raise DealNotFound(deal_id)
        if if_match is not None and deal.etag not in if_match:
            raise StaleVersion("Deal", deal_id, current=deal.etag)
        changes = {
            name: (getattr(deal, name), value)
            for name, value in standard.items()
            if getattr(deal, name) != value
        }
        written = await custom.write(deal.properties, values.get("properties"))
        if not changes and not written.changed:
            return deal, False
        _check_money(values.get("amount", deal.amount), values.get("currency", deal.currency))
        external_id = changes.get("external_id", (None, None))[1]
        if external_id is not None and (holder := await repository.id_by_external_id(external_id)) not in (
            None,
            deal_id,
        ):
            raise _external_id_taken(external_id, holder)
        try:
            async with session.begin_nested():
                for name, (_old, new) in changes.items():
                    setattr(deal, name, new)
                if written.changed:
                    deal.properties = written.values
                deal.updated_at = utc_now()
                await session.flush()
                await custom.store(deal.id, written)
        except StaleDataError:
            continue
        except IntegrityError:
            assert external_id is not None  # the only unique value a change can take
            raise _external_id_taken(
                external_id, await repository.id_by_external_id(external_id) or "unknown"
            ) from None
        await outbox.add(
            session,
            DealUpdated(
                **_snapshot(
                    deal, await _current_stage(repository, deal), await repository.contact_ids(deal.id)
                ),
                changed_fields=sorted([*changes, *written.fields]),
                changes={
                    **{
                        name: ValueChange(old=_as_text(old), new=_as_text(new))
                        for name, (old, new) in changes.items()
                        if name not in _UNPUBLISHED_VALUES
                    },
                    **custom.published(written),
                },
                updated_at=deal.updated_at,
            ),
        )
        return deal, True
    assert deal is not None
    raise StaleVersion("Deal", deal_id, current=deal.etag)


async def delete_deal(
    session: AsyncSession, deal_id: uuid.UUID, *, if_match: Collection[str] | None = None
) -> None:
    """Delete a deal with its stage history, associations (database cascades) and custom property values,
    and announce it as `crm.deal.deleted` with the deal as it stood. `if_match` as in `update_deal`."""
    repository = DealRepository(session)
    for attempt in range(_UPDATE_ATTEMPTS):
        deal = await repository.get(deal_id, fresh=attempt > 0)
        if deal is None:
            raise DealNotFound(deal_id)
        if if_match is not None and deal.etag not in if_match:
            raise StaleVersion("Deal", deal_id, current=deal.etag)
        snapshot = _snapshot(
            deal, await _current_stage(repository, deal), await repository.contact_ids(deal.id)
        )
        try:
            # The DELETE checks the version too: a deal changed since this read is read again.
            async with session.begin_nested():
                await session.delete(deal)
                await session.flush()
        except StaleDataError:
            continue
        await CustomProperties(session, ObjectType.DEAL).forget(deal_id)
        await outbox.add(session, DealDeleted(**snapshot, deleted_at=utc_now()))
        return
    assert deal is not None
    raise StaleVersion("Deal", deal_id, current=deal.etag)


async def forget_company(session: AsyncSession, company_id: uuid.UUID) -> None:
    """A company is being deleted: the deals it was associated with lose it, and get a new `ETag`."""
    await DealRepository(session).drop_company(company_id)


async def move_stage(
    session: AsyncSession,
    deal_id: uuid.UUID,
    move: StageMove,
    *,
    actor: str,
    if_match: Collection[str] | None = None,
) -> Deal:
    """Move a deal to another stage of its pipeline; a move to the stage it is in changes nothing.

    Into a won or lost stage, `reason` is required, and the deal is closed (`closed_at`); out of one,
    it is open again. Recorded in the history and announced as `crm.deal.stage_changed`, then also
    `crm.deal.won` or `crm.deal.lost` when it closed.
    """
    deal, _moved = await _move(session, deal_id, move, actor=actor, if_match=if_match)
    return deal


async def _move(
    session: AsyncSession,
    deal_id: uuid.UUID,
    move: StageMove,
    *,
    actor: str,
    if_match: Collection[str] | None = None,
) -> tuple[Deal, bool]:
    repository = DealRepository(session)
    for attempt in range(_UPDATE_ATTEMPTS):
        deal = await repository.get(deal_id, fresh=attempt > 0)
        if deal is None:
            raise DealNotFound(deal_id)
        if if_match is not None and deal.etag not in if_match:
            raise StaleVersion("Deal", deal_id, current=deal.etag)
        target = await repository.stage(deal.pipeline_id, move.stage)
        if target is None:
            raise InvalidValue("stage", f"The deal's pipeline has no stage {move.stage}.")
        if target.key == deal.stage:
            return deal, False
        closes = target.kind != StageKind.OPEN
        if closes and move.reason is None:
            raise InvalidValue(
                "reason",
                f"A move into {target.key} ({target.kind}) needs a reason, e.g. `price` or `competitor`.",
            )
        source = await _current_stage(repository, deal)
        now = utc_now()
        try:
            async with session.begin_nested():
                deal.stage = target.key
                deal.closed_at = now if closes else None
                deal.close_reason = move.reason if closes else None
                deal.updated_at = now
                await session.flush()
        except StaleDataError:
            continue
        session.add(
            DealStageChange(
                deal_id=deal.id,
                changed_at=now,
                actor=actor,
                from_stage=source.key,
                to_stage=target.key,
                reason=move.reason,
                note=move.note,
            )
        )
        await session.flush()
        snapshot = _snapshot(deal, target, await repository.contact_ids(deal.id))
        await outbox.add(
            session,
            DealStageChanged(
                **snapshot,
                from_stage=source.key,
                from_status=_status(source),
                reason=move.reason,
                changed_by=actor,
                changed_at=now,
            ),
        )
        if closes:
            assert move.reason is not None
            outcome = DealWon if target.kind == StageKind.WON else DealLost
            await outbox.add(
                session, outcome(**snapshot, from_stage=source.key, reason=move.reason, changed_by=actor)
            )
        return deal, True
    assert deal is not None
    raise StaleVersion("Deal", deal_id, current=deal.etag)


async def stage_history(
    session: AsyncSession, deal_id: uuid.UUID, page: PageRequest
) -> Slice[DealStageChange]:
    repository = DealRepository(session)
    if await repository.get(deal_id) is None:
        raise DealNotFound(deal_id)
    return await repository.history(deal_id, page)


async def upsert_deals(
    session: AsyncSession, records: Sequence[dict[str, Any]], *, actor: str
) -> BatchResult:
    """Create or update each record's deal, matched by `external_id`; one result per record, in order.

    Each record runs in a savepoint of its own: one that fails (invalid, or refused by a rule, say a
    move into a lost stage without a reason) writes nothing, and fails alone.
    """
    validated = validate_each(DealUpsert, records)
    repository = DealRepository(session)
    custom = CustomProperties(session, ObjectType.DEAL)
    # Ids, not objects: a record whose savepoint rolls back leaves its deal expired in the session.
    known = await repository.ids_by_external_id(
        {item.external_id for item in validated if isinstance(item, DealUpsert)}
    )
    results: list[RecordResult] = []
    for index, item in enumerate(validated):
        if isinstance(item, RecordError):
            results.append(RecordResult(index=index, status=Outcome.ERROR, error=item))
            continue
        try:
            async with session.begin_nested():
                deal_id, outcome = await _upsert_one(
                    session, known.get(item.external_id), item, actor=actor, custom=custom
                )
        except DomainError as exc:
            results.append(RecordResult(index=index, status=Outcome.ERROR, error=error_of(exc)))
            continue
        known[item.external_id] = deal_id
        results.append(RecordResult(index=index, status=outcome, id=deal_id))
    return BatchResult.of(results)


async def _upsert_one(
    session: AsyncSession,
    deal_id: uuid.UUID | None,
    item: DealUpsert,
    *,
    actor: str,
    custom: CustomProperties,
) -> tuple[uuid.UUID, Outcome]:
    if deal_id is None:
        return (await create_deal(session, item, actor=actor, custom=custom)).id, Outcome.CREATED
    deal = await get_deal(session, deal_id)
    if item.pipeline_id is not None and item.pipeline_id != deal.pipeline_id:
        raise InvalidValue("pipeline_id", "A deal's pipeline cannot change.")
    _deal, changed = await _change(session, deal_id, item.fields(), custom=custom)
    moved = False
    if item.stage is not None:
        _deal, moved = await _move(
            session, deal_id, StageMove(stage=item.stage, reason=item.reason, note=item.note), actor=actor
        )
    return deal_id, Outcome.UPDATED if changed or moved else Outcome.UNCHANGED


async def _link(
    session: AsyncSession, link: Link, deal_id: uuid.UUID, other_id: uuid.UUID, *, add: bool
) -> Deal:
    """Add or remove an association; a change is a new version of the deal (its read model lists them).
    A contact's is announced as `crm.deal.contact_added` / `crm.deal.contact_removed`; a company's is
    not (yet)."""
    repository = DealRepository(session)
    if link is DealContact:
        found = await repository.contact_exists(other_id)
        what = "Contact"
    else:
        found = await repository.company_exists(other_id)
        what = "Company"
    for attempt in range(_UPDATE_ATTEMPTS):
        deal = await repository.get(deal_id, fresh=attempt > 0)
        if deal is None:
            raise DealNotFound(deal_id)
        if not found:
            raise NotFound(what, other_id)
        there = await repository.link(link, deal_id, other_id) is not None
        if there == add:
            return deal
        try:
            now = utc_now()
            async with session.begin_nested():
                if add:
                    session.add(link(deal_id=deal_id, created_at=now, **{f"{what.lower()}_id": other_id}))
                else:
                    await repository.unlink(link, deal_id, other_id)
                deal.updated_at = now
                await session.flush()
        except (StaleDataError, IntegrityError):
            continue  # a concurrent writer changed the deal, or made the same association
        if link is DealContact:
            await _announce_contact(repository, deal, other_id, added=add, at=now)
        return deal
    assert deal is not None
    raise StaleVersion("Deal", deal_id, current=deal.etag)


async def _announce_contact(
    repository: DealRepository, deal: Deal, contact_id: uuid.UUID, *, added: bool, at: datetime
) -> None:
    snapshot = _snapshot(deal, await _current_stage(repository, deal), await repository.contact_ids(deal.id))
    if added:
        event: DealContactAdded | DealContactRemoved = DealContactAdded(
            **snapshot, contact_id=contact_id, associated_at=at
        )
    else:
        event = DealContactRemoved(**snapshot, contact_id=contact_id, removed_at=at)
    await outbox.add(repository.session, event)


async def add_contact(session: AsyncSession, deal_id: uuid.UUID, contact_id: uuid.UUID) -> Deal:
    return await _link(session, DealContact, deal_id, contact_id, add=True)


async def remove_contact(session: AsyncSession, deal_id: uuid.UUID, contact_id: uuid.UUID) -> Deal:
    return await _link(session, DealContact, deal_id, contact_id, add=False)


async def add_company(session: AsyncSession, deal_id: uuid.UUID, company_id: uuid.UUID) -> Deal:
    return await _link(session, DealCompany, deal_id, company_id, add=True)


async def remove_company(session: AsyncSession, deal_id: uuid.UUID, company_id: uuid.UUID) -> Deal:
    return await _link(session, DealCompany, deal_id, company_id, add=False)
