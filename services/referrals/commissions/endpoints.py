"""Commissions and rewards, their approval after the hold, payouts, and an affiliate's balance."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response, status

from services.referrals.commissions import payouts, service
from services.referrals.commissions.approval import approve_due
from services.referrals.commissions.models import Commission
from services.referrals.commissions.repository import NEWEST_FIRST, PAYOUTS_NEWEST_FIRST, CommissionFilter
from services.referrals.commissions.schemas import (
    ApprovedDue,
    Balance,
    CommissionDetail,
    CommissionKind,
    CommissionRead,
    CommissionStatus,
    CurrencyBalance,
    LedgerEntryRead,
    PayoutCreate,
    PayoutRead,
)
from shared.pagination import PageRequest
from shared.web.auth import requires
from shared.web.deps import ReadSessionDep, RuntimeDep, SessionDep
from shared.web.pagination import Page, page_request, paginated
from shared.web.problems import PROBLEM_RESPONSES, problem_doc
from shared.web.routing import api_router

router = api_router(tags=["commissions"])

_NO_COMMISSION: dict[int | str, dict[str, Any]] = {404: problem_doc("No commission with this id.")}
_NO_PAYOUT: dict[int | str, dict[str, Any]] = {404: problem_doc("No payout with this id.")}

_LIFECYCLE = (
    "A conversion credited to an affiliate earns a `commission` under its program's rule for the goal "
    "(fixed, percent of the amount rounded half up, tiers by the affiliate's volume in the calendar "
    "period, recurring months per customer); a customer referral also earns a `referrer_reward` and a "
    "`referee_reward`. Each is `pending` until `hold_until` (the conversion's time plus the program's "
    "hold), or `held` while its conversion waits for a fraud review; then `approved`, then `paid`. A "
    "refund, a chargeback or a rejection makes it `reversed`; after payment that is a clawback, deducted "
    "from the affiliate's next payout. The amount never changes: every change is a ledger entry."
)


def commission_read(commission: Commission) -> CommissionRead:
    return CommissionRead.model_validate(commission)


def commission_detail(found: service.CommissionWithLedger) -> CommissionDetail:
    return CommissionDetail(
        **CommissionRead.model_validate(found.commission).model_dump(),
        ledger=[LedgerEntryRead.model_validate(entry) for entry in found.ledger],
    )


@router.get(
    "/v1/commissions",
    summary="List commissions and rewards",
    description=f"Newest first, cursor-paginated, filtered by any of the parameters. {_LIFECYCLE}",
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("referrals:read")],
)
async def list_commissions(
    request: Request,
    response: Response,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(NEWEST_FIRST))],
    affiliate_id: Annotated[uuid.UUID | None, Query(description="The payee affiliate.")] = None,
    program_id: uuid.UUID | None = None,
    conversion_id: uuid.UUID | None = None,
    status: CommissionStatus | None = None,
    kind: CommissionKind | None = None,
) -> Page[CommissionRead]:
    where = CommissionFilter(
        affiliate_id=affiliate_id,
        program_id=program_id,
        conversion_id=conversion_id,
        status=status,
        kind=kind,
    )
    found = await service.list_commissions(session, where, page)
    return paginated(request, response, found, commission_read)


@router.post(
    "/v1/commissions/approve-due",
    summary="Approve the commissions whose hold has ended, now",
    description="Runs the approval sweep the service runs in the background (every "
    "`CRM_REFERRALS_APPROVAL_SWEEP_SECONDS`): every `pending` commission or reward whose `hold_until` "
    "has passed becomes `approved`, with an `approved` ledger entry and `crm.commission.approved`. "
    "Answers how many. Safe to call at any time, and from many places at once.",
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("referrals:write")],
)
async def approve_due_now(runtime: RuntimeDep) -> ApprovedDue:
    # Not the request's session: the sweep commits batch by batch, each in a transaction of its own.
    return ApprovedDue(approved=await approve_due(runtime.database))


@router.get(
    "/v1/commissions/{commission_id}",
    summary="Get a commission with its ledger",
    description=f"{_LIFECYCLE} The `ledger` lists every change, oldest first.",
    responses={**_NO_COMMISSION, **PROBLEM_RESPONSES},
    dependencies=[requires("referrals:read")],
)
async def get_commission(commission_id: uuid.UUID, session: ReadSessionDep) -> CommissionDetail:
    return commission_detail(await service.get_commission(session, commission_id))


@router.post(
    "/v1/payouts",
    status_code=status.HTTP_201_CREATED,
    summary="Pay an affiliate",
    description="Pays every `approved` commission and reward of the affiliate in `currency` that no "
    "payout covers yet, less every clawback it owes in that currency (each gets a `deducted` ledger "
    "entry). Each commission becomes `paid`, with a `paid` ledger entry and `crm.commission.paid`. A "
    "payout is never negative: 409 when the clawbacks owed exceed the approved commissions (nothing is "
    "paid; later approvals cover them), and 409 when nothing approved waits to be paid. "
    "Send an `Idempotency-Key` so that a retry does not pay twice.",
    responses={
        409: problem_doc("Nothing approved to pay, or clawbacks owed exceed it."),
        **PROBLEM_RESPONSES,
    },
    dependencies=[requires("referrals:write")],
)
async def create_payout(
    body: PayoutCreate, session: SessionDep, request: Request, response: Response
) -> PayoutRead:
    payout = await payouts.pay(
        session,
        payouts.PayoutRequest(
            affiliate_id=body.affiliate_id, currency=body.currency, reference=body.reference
        ),
    )
    response.headers["Location"] = str(request.url_for("get_payout", payout_id=payout.id))
    return PayoutRead.model_validate(payout)


@router.get(
    "/v1/payouts",
    summary="List payouts",
    description="Newest first, cursor-paginated; `affiliate_id` keeps one affiliate's.",
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("referrals:read")],
)
async def list_payouts(
    request: Request,
    response: Response,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(PAYOUTS_NEWEST_FIRST))],
    affiliate_id: uuid.UUID | None = None,
) -> Page[PayoutRead]:
    found = await payouts.list_payouts(session, affiliate_id, page)
    return paginated(request, response, found, PayoutRead.model_validate)


@router.get(
    "/v1/payouts/{payout_id}",
    summary="Get a payout",
    description="The commissions it paid are listed by `GET /v1/commissions?status=paid` and carry its id.",
    responses={**_NO_PAYOUT, **PROBLEM_RESPONSES},
    dependencies=[requires("referrals:read")],
)
async def get_payout(payout_id: uuid.UUID, session: ReadSessionDep) -> PayoutRead:
    return PayoutRead.model_validate(await payouts.get_payout(session, payout_id))


@router.get(
    "/v1/affiliates/{affiliate_id}/balance",
    summary="An affiliate's balance",
    description="Per currency: commissions and rewards `pending` (including `held`), `approved` (waiting "
    "for a payout), `paid`, and the clawbacks the affiliate owes that no payout has deducted yet.",
    responses={404: problem_doc("No affiliate with this id."), **PROBLEM_RESPONSES},
    dependencies=[requires("referrals:read")],
)
async def affiliate_balance(affiliate_id: uuid.UUID, session: ReadSessionDep) -> Balance:
    figures = await service.balance(session, affiliate_id)
    return Balance(
        affiliate_id=affiliate_id,
        currencies=[
            CurrencyBalance(
                currency=currency,
                pending=each.pending,
                approved=each.approved,
                paid=each.paid,
                clawbacks_owed=each.clawbacks_owed,
            )
            for currency, each in figures.items()
        ],
    )
