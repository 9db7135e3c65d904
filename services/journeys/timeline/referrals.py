"""Referral activity on the timeline: a known contact's conversion, the click that led to it, and what
the conversion earned or lost afterwards (status changes, commissions, rewards). Team `partner`, channel
`referral`. Never commits.

A click names no one when it happens. Its `crm.click.recorded` is kept aside, and the click joins a
contact's timeline, at the time it happened, when a conversion of that contact names it. The click and
the conversion travel under different keys, so either may come first; both orders give the same entries.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.journeys.timeline import service
from services.journeys.timeline.models import TimelineReferralClick, TimelineReferralConversion
from services.journeys.timeline.repository import DealContactRepository
from shared.events.envelope import Envelope
from shared.events.referrals import (
    ClickRecorded,
    CommissionApproved,
    CommissionCreated,
    CommissionPaid,
    CommissionReversed,
    ConversionRecorded,
    ConversionStatusChanged,
    ReferralRewardGranted,
)

TEAM = "partner"
CHANNEL = "referral"

FollowUp = (
    ConversionStatusChanged
    | CommissionCreated
    | CommissionApproved
    | CommissionPaid
    | CommissionReversed
    | ReferralRewardGranted
)


async def learn_click(session: AsyncSession, envelope: Envelope) -> None:
    event = envelope.event
    assert isinstance(event, ClickRecorded)
    if event.is_bot or await session.get(TimelineReferralClick, event.click_id) is not None:
        return  # a crawler's click is on no one's journey; a replayed one is known already
    click = TimelineReferralClick(
        click_id=event.click_id,
        event_id=envelope.id,
        event_source=envelope.source,
        clicked_at=event.clicked_at,
        link_id=event.link_id,
        code=event.code,
        program_id=event.program_id,
        affiliate_id=event.affiliate_id,
    )
    session.add(click)
    converted = await session.scalars(
        select(TimelineReferralConversion).where(TimelineReferralConversion.click_id == event.click_id)
    )
    for conversion in converted:
        _place_click(session, click, conversion.contact_id)


async def learn_conversion(session: AsyncSession, envelope: Envelope) -> None:
    event = envelope.event
    assert isinstance(event, ConversionRecorded)
    if event.contact_id is None:
        return  # nobody's yet; referrals does not say later whose it became
    # As the contact is now: merged since into a survivor, or erased (no timeline at all).
    contact_id = (await DealContactRepository(session).survivors([event.contact_id])).get(
        event.contact_id, event.contact_id
    )
    if contact_id is None:
        return
    await session.merge(
        TimelineReferralConversion(
            conversion_id=event.conversion_id, contact_id=contact_id, click_id=event.click_id
        )
    )
    service.record(
        session,
        envelope,
        contact_id=contact_id,
        occurred_at=event.occurred_at,
        team=TEAM,
        channel=CHANNEL,
        properties={
            "conversion_id": str(event.conversion_id),
            "program_id": str(event.program_id),
            "affiliate_id": _text(event.affiliate_id),
            "click_id": event.click_id,
            "goal": event.goal,
            "amount": event.amount,
            "currency": event.currency,
            "status": event.status,
            "attributed": event.attributed,
            "unattributed_reason": event.unattributed_reason,
        },
    )
    if event.click_id is not None:
        click = await session.get(TimelineReferralClick, event.click_id)
        if click is not None:
            _place_click(session, click, contact_id)


async def follow_up(session: AsyncSession, envelope: Envelope) -> None:
    """A later event of a conversion: on its contact's timeline, if it has one."""
    event = envelope.event
    assert isinstance(event, FollowUp)
    conversion = await session.get(TimelineReferralConversion, event.conversion_id)
    if conversion is None:
        return
    service.record(
        session,
        envelope,
        contact_id=conversion.contact_id,
        team=TEAM,
        channel=CHANNEL,
        properties={"conversion_id": str(event.conversion_id), **_details(event)},
    )


def _details(event: FollowUp) -> dict[str, Any]:
    if isinstance(event, ConversionStatusChanged):
        return {"from_status": event.old_status, "status": event.new_status, "reason": event.reason}
    details: dict[str, Any] = {
        "commission_id": str(event.commission_id),
        "kind": event.kind,
        "affiliate_id": _text(event.affiliate_id),
        "amount": event.amount,
        "currency": event.currency,
    }
    if isinstance(event, CommissionReversed):
        details |= {"reason": event.reason, "clawback": event.clawback}
    if isinstance(event, ReferralRewardGranted):
        details["side"] = event.side
    return details


def _place_click(session: AsyncSession, click: TimelineReferralClick, contact_id: uuid.UUID) -> None:
    click.contact_id = contact_id
    service.record_learnt(
        session,
        event_id=click.event_id,
        event_type=ClickRecorded.event_type(),
        source=click.event_source,
        contact_id=contact_id,
        occurred_at=click.clicked_at,
        team=TEAM,
        channel=CHANNEL,
        properties={
            "click_id": click.click_id,
            "link_id": str(click.link_id),
            "code": click.code,
            "program_id": str(click.program_id),
            "affiliate_id": str(click.affiliate_id),
        },
    )


def _text(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


async def repoint(session: AsyncSession, merged_id: uuid.UUID, survivor_id: uuid.UUID) -> None:
    """A merge: the merged contact's conversions and clicks are the survivor's."""
    for model in (TimelineReferralConversion, TimelineReferralClick):
        await session.execute(
            update(model).where(model.contact_id == merged_id).values(contact_id=survivor_id),
            execution_options={"synchronize_session": False},
        )


async def forget(session: AsyncSession, contact_ids: Collection[uuid.UUID]) -> None:
    """Erasure: which conversions and clicks were the people's goes."""
    ids = list(contact_ids)
    await session.execute(delete(TimelineReferralClick).where(TimelineReferralClick.contact_id.in_(ids)))
    await session.execute(
        delete(TimelineReferralConversion).where(TimelineReferralConversion.contact_id.in_(ids))
    )
