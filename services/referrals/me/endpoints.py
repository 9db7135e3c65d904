"""`/v1/me/...`: what a key bound to an affiliate may read, and only of that affiliate.

Every route here opens itself to affiliate keys (the edge refuses them everywhere else) and takes the
affiliate's id from the key, never from the request: a list holds only the caller's rows, and another
affiliate's id in a path answers 404, as an id that does not exist would. Staff keys are refused (403):
they read the same data through the staff API.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime

from services.referrals.clicks.models import Click
from services.referrals.commissions import payouts
from services.referrals.commissions import service as commissions
from services.referrals.commissions.endpoints import commission_detail, commission_read
from services.referrals.commissions.repository import NEWEST_FIRST, PAYOUTS_NEWEST_FIRST, CommissionFilter
from services.referrals.commissions.schemas import (
    CommissionDetail,
    CommissionKind,
    CommissionRead,
    CommissionStatus,
    PayoutRead,
)
from services.referrals.conversions.models import Conversion
from services.referrals.links.models import Link
from services.referrals.me import service
from services.referrals.me.repository import (
    CLICKS_NEWEST_FIRST,
    CONVERSIONS_NEWEST_FIRST,
    LINKS_NEWEST_FIRST,
    MyRows,
)
from services.referrals.me.schemas import DayEarnings, Earnings, Me, MyClick, MyConversion, MyLink, Stats
from shared.errors import NotFound
from shared.pagination import PageRequest
from shared.web.auth import AffiliateDep, requires
from shared.web.deps import ReadSessionDep
from shared.web.pagination import Page, page_request, paginated
from shared.web.problems import PROBLEM_RESPONSES, problem_doc
from shared.web.routing import api_router

router = api_router(
    prefix="/v1/me", tags=["me"], dependencies=[requires("referrals:read", affiliate_keys=True)]
)

MAX_STATS_DAYS = 366
DEFAULT_STATS_DAYS = 30


def _not_found(what: str) -> dict[int | str, dict[str, Any]]:
    return {
        403: problem_doc("The key is not bound to an affiliate."),
        404: problem_doc(f"No {what} of yours with this id."),
        **PROBLEM_RESPONSES,
    }


_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: problem_doc("The key is not bound to an affiliate."),
    **PROBLEM_RESPONSES,
}


async def my_affiliate_id(principal: AffiliateDep) -> uuid.UUID:
    try:
        return uuid.UUID(str(principal.affiliate_id))
    except ValueError:
        # A key bound to an id that is no affiliate's has nothing to read.
        raise NotFound("Affiliate", principal.affiliate_id) from None


MeDep = Annotated[uuid.UUID, Depends(my_affiliate_id)]


@router.get(
    "",
    summary="Who am I",
    description="The affiliate the key is bound to.",
    responses=_not_found("affiliate"),
)
async def get_me(affiliate_id: MeDep, session: ReadSessionDep) -> Me:
    return Me.model_validate(await service.me(session, affiliate_id))


@router.get("/links", summary="My links", description="Newest first, cursor-paginated.", responses=_RESPONSES)
async def my_links(
    request: Request,
    response: Response,
    affiliate_id: MeDep,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(LINKS_NEWEST_FIRST))],
) -> Page[MyLink]:
    found = await MyRows(session, affiliate_id).page(Link, LINKS_NEWEST_FIRST, page)
    return paginated(request, response, found, MyLink.model_validate)


@router.get(
    "/links/{link_id}",
    summary="One of my links",
    description="404 when the id is no link of mine, whoever's it is.",
    responses=_not_found("link"),
)
async def my_link(link_id: uuid.UUID, affiliate_id: MeDep, session: ReadSessionDep) -> MyLink:
    link = await MyRows(session, affiliate_id).one(Link, link_id)
    if link is None:
        raise NotFound("Link", link_id)
    return MyLink.model_validate(link)


@router.get(
    "/clicks",
    summary="My clicks",
    description="Clicks on my links, newest first, cursor-paginated; bots are listed, flagged `is_bot`.",
    responses=_RESPONSES,
)
async def my_clicks(
    request: Request,
    response: Response,
    affiliate_id: MeDep,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(CLICKS_NEWEST_FIRST))],
) -> Page[MyClick]:
    found = await MyRows(session, affiliate_id).page(Click, CLICKS_NEWEST_FIRST, page)
    return paginated(request, response, found, MyClick.model_validate)


@router.get(
    "/clicks/{click_id}",
    summary="One of my clicks",
    description="404 when the id is no click of mine, whoever's it is.",
    responses=_not_found("click"),
)
async def my_click(click_id: str, affiliate_id: MeDep, session: ReadSessionDep) -> MyClick:
    click = await MyRows(session, affiliate_id).one(Click, click_id)
    if click is None:
        raise NotFound("Click", click_id)
    return MyClick.model_validate(click)


@router.get(
    "/conversions",
    summary="My conversions",
    description="Conversions credited to me, by when they occurred, newest first, cursor-paginated.",
    responses=_RESPONSES,
)
async def my_conversions(
    request: Request,
    response: Response,
    affiliate_id: MeDep,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(CONVERSIONS_NEWEST_FIRST))],
) -> Page[MyConversion]:
    found = await MyRows(session, affiliate_id).page(Conversion, CONVERSIONS_NEWEST_FIRST, page)
    return paginated(request, response, found, MyConversion.model_validate)


@router.get(
    "/conversions/{conversion_id}",
    summary="One of my conversions",
    description="404 when the id is no conversion of mine, whoever's it is.",
    responses=_not_found("conversion"),
)
async def my_conversion(
    conversion_id: uuid.UUID, affiliate_id: MeDep, session: ReadSessionDep
) -> MyConversion:
    conversion = await MyRows(session, affiliate_id).one(Conversion, conversion_id)
    if conversion is None:
        raise NotFound("Conversion", conversion_id)
    return MyConversion.model_validate(conversion)


@router.get(
    "/commissions",
    summary="My commissions and rewards",
    description="Newest first, cursor-paginated; `status` and `kind` filter. A referee reward is mine "
    "when I am the new customer and an affiliate too.",
    responses=_RESPONSES,
)
async def my_commissions(
    request: Request,
    response: Response,
    affiliate_id: MeDep,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(NEWEST_FIRST))],
    status: CommissionStatus | None = None,
    kind: CommissionKind | None = None,
) -> Page[CommissionRead]:
    where = CommissionFilter(affiliate_id=affiliate_id, status=status, kind=kind)
    found = await commissions.list_commissions(session, where, page)
    return paginated(request, response, found, commission_read)


@router.get(
    "/commissions/{commission_id}",
    summary="One of my commissions, with its ledger",
    description="Every change to it, oldest first; 404 when it is not mine.",
    responses=_not_found("commission"),
)
async def my_commission(
    commission_id: uuid.UUID, affiliate_id: MeDep, session: ReadSessionDep
) -> CommissionDetail:
    return commission_detail(
        await commissions.get_commission(session, commission_id, affiliate_id=affiliate_id)
    )


@router.get(
    "/payouts", summary="My payouts", description="Newest first, cursor-paginated.", responses=_RESPONSES
)
async def my_payouts(
    request: Request,
    response: Response,
    affiliate_id: MeDep,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(PAYOUTS_NEWEST_FIRST))],
) -> Page[PayoutRead]:
    found = await payouts.list_payouts(session, affiliate_id, page)
    return paginated(request, response, found, PayoutRead.model_validate)


@router.get(
    "/payouts/{payout_id}",
    summary="One of my payouts",
    description="404 when the id is no payout of mine, whoever's it is.",
    responses=_not_found("payout"),
)
async def my_payout(payout_id: uuid.UUID, affiliate_id: MeDep, session: ReadSessionDep) -> PayoutRead:
    return PayoutRead.model_validate(await payouts.get_payout(session, payout_id, affiliate_id=affiliate_id))


@router.get(
    "/stats",
    summary="My stats",
    description="Over [`since`, `until`) (default: the last 30 days; at most 366): clicks on my links "
    "(bots left out), conversions credited to me (rejected ones left out), the conversion rate, and my "
    "earnings (commissions and rewards not reversed, counted at their conversion's time) per currency, "
    "with EPC (earnings per click, minor units) and per UTC day.",
    responses=_RESPONSES,
)
async def my_stats(
    affiliate_id: MeDep,
    session: ReadSessionDep,
    since: Annotated[
        AwareDatetime | None, Query(description="ISO 8601 with a zone; default `until` - 30 days.")
    ] = None,
    until: Annotated[AwareDatetime | None, Query(description="ISO 8601 with a zone; default now.")] = None,
) -> Stats:
    end = (until or datetime.now(UTC)).astimezone(UTC)
    start = (since or end - timedelta(days=DEFAULT_STATS_DAYS)).astimezone(UTC)
    if end <= start:
        raise RequestValidationError(
            [{"type": "period_empty", "loc": ("query", "until"), "msg": "until must be later than since"}]
        )
    if end - start > timedelta(days=MAX_STATS_DAYS):
        raise RequestValidationError(
            [{"type": "period_too_long", "loc": ("query", "since"), "msg": f"at most {MAX_STATS_DAYS} days"}]
        )
    figures = await service.stats(session, affiliate_id, start, end)
    return Stats(
        since=start,
        until=end,
        clicks=figures.clicks,
        conversions=figures.conversions,
        conversion_rate=figures.conversion_rate,
        earnings=[
            Earnings(currency=currency, amount=amount, epc=figures.epc(currency))
            for currency, amount in figures.earnings.items()
        ],
        earnings_per_day=[
            DayEarnings(day=day, currency=currency, amount=amount)
            for day, currency, amount in figures.per_day
        ],
    )
