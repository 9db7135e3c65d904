"""Dead letters of one service: list them, and drive them again once their cause is fixed.

Two kinds end up aside:
- **consumer dead letters**: records a consumer gave up on, on `<topic>.dlq` with the error in headers;
- **refused outbox events**: rows the bus refused for good (too large, say), in `outbox_dead`.

Re-driving is idempotent. A dead-lettered record is applied by its consumer's own handler, through the
same transaction that records the consumer's position on the dead-letter topic and the event id: a
second run skips what the first one applied. It stops at the first record that fails again, so the
order of what is left is kept. A refused outbox row goes back into the outbox, under its own event id,
and is published after what is already queued.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select

from shared.bus.base import Record
from shared.bus.reading import read_to_end
from shared.consumer import ConsumerRunner, Positions, stored_positions
from shared.db import Database, read_scope, session_scope
from shared.events.envelope import from_record
from shared.outbox import OutboxTables, slot_for


@dataclass(frozen=True)
class DeadLetter:
    kind: str  # "consumer" or "outbox"
    event_id: str
    event_type: str
    key: str
    error: str
    where: str  # `<dlq topic>/<partition>@<offset>` or `outbox_dead#<id>`
    consumer: str | None = None
    pending: bool = True  # False once settled: re-driven or skipped (the record itself stays)
    failed_at: str | None = None


def _header(record: Record, name: str) -> str:
    return record.headers.get(name, b"").decode(errors="replace")


def _consumer_letter(
    runner: ConsumerRunner, record: Record, *, error: str, pending: bool = True
) -> DeadLetter:
    return DeadLetter(
        kind="consumer",
        consumer=runner.spec.name,
        event_id=_header(record, "ce_id"),
        event_type=_header(record, "ce_type"),
        key=record.key or "",
        error=error,
        where=f"{record.topic}/{record.partition}@{record.offset}",
        pending=pending,
        failed_at=_header(record, "crm_failed_at"),
    )


async def _dead_letter_records(runner: ConsumerRunner) -> list[Record]:
    """This consumer's records on its dead-letter topics, oldest first, up to their current ends."""
    topics = [topic.dead_letter for topic in runner.spec.topics]
    records: list[Record] = []
    async for _, batch in read_to_end(runner.bus, topics, group_prefix=f"{runner.spec.name}.dlq-reader"):
        records.extend(record for record in batch if _header(record, "crm_consumer") == runner.spec.name)
    return records


async def _redrive_positions(runner: ConsumerRunner) -> Positions:
    async with read_scope(runner.database) as session:
        return await stored_positions(session, runner.tables, runner.spec.name)


async def list_dead_letters(
    database: Database, outbox: OutboxTables, runners: Sequence[ConsumerRunner]
) -> list[DeadLetter]:
    letters: list[DeadLetter] = []
    for runner in runners:
        done = await _redrive_positions(runner)
        for record in await _dead_letter_records(runner):
            letters.append(
                _consumer_letter(
                    runner,
                    record,
                    error=f"{_header(record, 'crm_error_type')}: {_header(record, 'crm_error')}",
                    pending=record.offset >= done.get((record.topic, record.partition), 0),
                )
            )
    async with read_scope(database) as session:
        for row in await session.execute(select(outbox.dead).order_by(outbox.dead.c.id)):
            refused_at: datetime = row.refused_at
            letters.append(
                DeadLetter(
                    kind="outbox",
                    event_id=row.event_id,
                    event_type=row.event_type,
                    key=row.partition_key,
                    error=row.error,
                    where=f"outbox_dead#{row.id}",
                    failed_at=refused_at.isoformat(),
                )
            )
    return letters


@dataclass
class RedriveReport:
    applied: int = 0
    skipped: int = 0  # already applied by another way (a relay repeat, a replay)
    discarded: int = 0  # named with `skip`: settled without being applied
    requeued: int = 0
    stopped_at: DeadLetter | None = None


async def redrive_consumer(
    runner: ConsumerRunner, report: RedriveReport, *, skip: frozenset[str] = frozenset()
) -> None:
    """Apply this consumer's pending dead letters in order; stop at the first that fails again.

    `skip` names dead letters (by `where`, e.g. `crm.contacts.dlq/0@3`) to settle without applying:
    for a record that can never be applied, such as bytes that are no event at all.
    """
    done = await _redrive_positions(runner)
    for record in await _dead_letter_records(runner):
        partition = (record.topic, record.partition)
        if record.offset < done.get(partition, 0):
            continue
        if f"{record.topic}/{record.partition}@{record.offset}" in skip:
            await runner.set_positions({partition: record.offset + 1})
            report.discarded += 1
            continue
        try:
            envelope = from_record(record)
            [outcome] = await runner.apply_records([(record, envelope)])
        except Exception as exc:
            report.stopped_at = _consumer_letter(runner, record, error=f"{type(exc).__name__}: {exc}")
            return
        if outcome == "applied":
            report.applied += 1
        else:
            report.skipped += 1


async def requeue_refused(database: Database, outbox: OutboxTables, report: RedriveReport) -> None:
    """Move refused outbox rows back into the outbox, in the order they were refused."""
    async with session_scope(database) as session:
        rows = (await session.execute(select(outbox.dead).order_by(outbox.dead.c.id))).all()
        for row in rows:
            already_queued = await session.scalar(
                select(outbox.events.c.id).where(outbox.events.c.event_id == row.event_id)
            )
            if already_queued is None:
                await session.execute(
                    insert(outbox.events).values(
                        event_id=row.event_id,
                        event_type=row.event_type,
                        topic=row.topic,
                        partition_key=row.partition_key,
                        slot=slot_for(row.partition_key),
                        headers=row.headers,
                        payload=row.payload,
                    )
                )
            await session.execute(delete(outbox.dead).where(outbox.dead.c.id == row.id))
            report.requeued += 1
