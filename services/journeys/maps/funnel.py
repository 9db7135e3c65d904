"""A journey's funnel over a time range, computed in SQL on SQLite and PostgreSQL alike.

Per stage: who entered it, who reached it (entered it or a later stage: a contact who skipped a stage
has passed it), the conversion to the next stage, the drop-off, the median time to the next stage (the
middle value, or the mean of the two middle ones, by window functions that both databases have), and
the goal's attainment. The range is `since` (inclusive) to `until` (exclusive) on the entry times.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, and_, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from services.journeys.maps.models import JourneyStageEvent
from services.journeys.maps.progress import ENTERED, GOAL
from services.journeys.maps.schemas import FunnelStage, StageIn


class seconds_between(FunctionElement[float]):  # noqa: N801 (a SQL function, named as one)
    """`later - earlier` in seconds, as a float."""

    type = Float()
    name = "seconds_between"
    inherit_cache = True


@compiles(seconds_between)
def _seconds_postgresql(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"


@compiles(seconds_between, "sqlite")
def _seconds_sqlite(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


def _in_range(column: Any, since: datetime | None, until: datetime | None) -> ColumnElement[bool]:
    conditions = [literal(True)]
    if since is not None:
        conditions.append(column >= since)
    if until is not None:
        conditions.append(column < until)
    return and_(*conditions)


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


async def funnel(
    session: AsyncSession,
    journey_id: uuid.UUID,
    stages: Sequence[StageIn],
    since: datetime | None,
    until: datetime | None,
) -> list[FunnelStage]:
    position = {stage.key: index for index, stage in enumerate(stages, start=1)}
    entry = JourneyStageEvent
    place = case(position, value=entry.stage_key)
    ranged = and_(entry.journey_id == journey_id, _in_range(entry.at, since, until))

    counts = await session.execute(
        select(entry.kind, entry.stage_key, func.count()).where(ranged).group_by(entry.kind, entry.stage_key)
    )
    by_kind: dict[tuple[str, str], int] = {(kind, key): count for kind, key, count in counts}

    # Each contact's furthest stage entered in the range; reached(N) = those whose furthest is N or later.
    furthest = (
        select(entry.contact_id, func.max(place).label("furthest"))
        .where(ranged, entry.kind == ENTERED)
        .group_by(entry.contact_id)
        .subquery()
    )
    rows = await session.execute(select(furthest.c.furthest, func.count()).group_by(furthest.c.furthest))
    at_furthest = {int(place_): count for place_, count in rows if place_ is not None}

    reached = {n: sum(count for p, count in at_furthest.items() if p >= n) for n in position.values()}

    medians = await _median_seconds_to_next(session, journey_id, position, since, until)

    result = []
    for stage in stages:
        n = position[stage.key]
        last = n == len(stages)
        goal = stage.goal
        entered = by_kind.get((ENTERED, stage.key), 0)
        goal_reached = by_kind.get((GOAL, stage.key), 0) if goal is not None else None
        result.append(
            FunnelStage(
                key=stage.key,
                name=stage.name,
                position=n,
                entered=entered,
                reached=reached[n],
                conversion_rate=None if last else _rate(reached[n + 1], reached[n]),
                dropped_off=None if last else reached[n] - reached[n + 1],
                median_seconds_to_next=medians.get(n),
                goal_reached=goal_reached,
                goal_rate=_rate(goal_reached, entered) if goal_reached is not None else None,
                target_rate=goal.target_rate if goal is not None else None,
            )
        )
    return result


async def _median_seconds_to_next(
    session: AsyncSession,
    journey_id: uuid.UUID,
    position: dict[str, int],
    since: datetime | None,
    until: datetime | None,
) -> dict[int, float]:
    """Per stage N: the median of (entered N+1 - entered N) over the contacts who entered N+1 in the
    range, having entered N."""
    later, earlier = aliased(JourneyStageEvent), aliased(JourneyStageEvent)
    later_place = case(position, value=later.stage_key)
    earlier_place = case(position, value=earlier.stage_key)
    pairs = (
        select(
            earlier_place.label("position"),
            seconds_between(later.at, earlier.at).label("seconds"),
        )
        .join_from(
            later,
            earlier,
            and_(
                earlier.journey_id == later.journey_id,
                earlier.contact_id == later.contact_id,
                earlier.kind == ENTERED,
                earlier_place == later_place - 1,
            ),
        )
        .where(later.journey_id == journey_id, later.kind == ENTERED, _in_range(later.at, since, until))
        .subquery()
    )
    ranked = select(
        pairs.c.position,
        pairs.c.seconds,
        func.row_number().over(partition_by=pairs.c.position, order_by=pairs.c.seconds).label("row"),
        func.count().over(partition_by=pairs.c.position).label("size"),
    ).subquery()
    # The middle row, or the two middle rows of an even count: (size + 1) / 2 and (size + 2) / 2 in
    # integer division.
    middle = (
        select(ranked.c.position, func.avg(ranked.c.seconds))
        .where(ranked.c.row.in_([(ranked.c.size + 1) // 2, (ranked.c.size + 2) // 2]))
        .group_by(ranked.c.position)
    )
    rows = await session.execute(middle)
    return {int(position): round(float(seconds), 3) for position, seconds in rows}
