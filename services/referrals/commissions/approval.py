"""Approval after the hold: pending commissions whose `hold_until` has passed become approved.

A background worker sweeps every `CRM_REFERRALS_APPROVAL_SWEEP_SECONDS` (0 turns it off), and
`POST /v1/commissions/approve-due` runs the same sweep at once. Each batch is its own transaction, and its
rows are claimed with `FOR UPDATE SKIP LOCKED`, so replicas sweeping at once approve each commission once.
The conversion's own status does not matter: a conversion still `pending` at its advertiser is approved
after the hold like an `approved` one; one refunded, rejected or charged back was reversed already.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.commissions.repository import CommissionRepository
from services.referrals.commissions.service import add_entry, event_fields
from services.referrals.db import outbox
from services.referrals.settings import ReferralsSettings
from shared.aio import sleep_unless_stopped
from shared.db import Database, session_scope, utc_now
from shared.events.referrals import CommissionApproved
from shared.runtime import BackgroundWorker, ServiceRuntime

log = logging.getLogger(__name__)

BATCH = 500


async def approve_batch(session: AsyncSession, now: datetime, limit: int = BATCH) -> int:
    """Approve up to `limit` commissions due at `now` in this transaction; how many. The ledger and the
    events say when the approval happened (the clock), whatever `now` the sweep was asked about."""
    due = await CommissionRepository(session).due(now, limit)
    approved_at = utc_now()
    for commission in due:
        commission.status = "approved"
        commission.updated_at = approved_at
        add_entry(session, commission, "approved", 0, at=approved_at, reason="hold ended")
        await outbox.add(session, CommissionApproved(**event_fields(commission), approved_at=approved_at))
    await session.flush()
    return len(due)


async def approve_due(database: Database, now: datetime | None = None, *, batch: int = BATCH) -> int:
    """Approve every commission due at `now` (default: the present), batch by batch; how many."""
    moment = now or utc_now()
    total = 0
    while True:
        async with session_scope(database) as session:
            approved = await approve_batch(session, moment, batch)
        total += approved
        if approved < batch:
            return total


async def _sweep_forever(runtime: ServiceRuntime, stop: asyncio.Event) -> None:
    settings = runtime.settings
    every_s = settings.approval_sweep_seconds if isinstance(settings, ReferralsSettings) else 0.0
    if every_s <= 0:
        return
    while not stop.is_set():
        await sleep_unless_stopped(stop, every_s)
        if stop.is_set():
            return
        try:
            approved = await approve_due(runtime.database)
        except Exception as exc:  # a database outage only delays approval until the next sweep
            log.warning("approval sweep failed: %r", exc)
            continue
        if approved:
            log.info("%d commissions approved after their hold", approved)


APPROVAL_WORKER = BackgroundWorker(name="commission-approval", run=_sweep_forever)
