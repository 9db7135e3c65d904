"""How content and campaigns perform: the touchpoints they drew and the purchases that followed.

A content id may hold slashes (`/blog/why`): the single-subject routes take the rest of the path up to
`/performance`, so it may be sent as it is or percent-encoded (`%2Fblog%2Fwhy`).
"""

from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime

from services.journeys.performance import service
from services.journeys.performance.schemas import (
    DEFAULT_WINDOW_DAYS,
    MAX_WINDOW_DAYS,
    CampaignRanking,
    CampaignReport,
    ContentRanking,
    ContentReport,
    campaign_of,
    campaign_report,
    content_of,
    content_report,
    period_read,
)
from services.journeys.performance.service import Dimension, Order, Period
from shared.web.auth import requires
from shared.web.deps import ReadSessionDep
from shared.web.pagination import DEFAULT_LIMIT, PageCursor, PageLimit, link_next, page_from
from shared.web.problems import PROBLEM_RESPONSES
from shared.web.routing import api_router

router = api_router(tags=["performance"], dependencies=[requires("journeys:read")])

_RULES = (
    "Touchpoints count when they name the subject and occurred in [`since`, `until`). A conversion is a "
    "purchase (a touchpoint of channel `purchase`, or any touchpoint with a revenue) by a contact reached, "
    "at or after that contact's first touchpoint of the subject in the period and at most `window_days` "
    "days after it (it may fall after `until`). Attribution is any-touch: each subject a buyer touched "
    "gets the whole purchase, so the figures of different subjects overlap. Revenue is per currency, "
    "never converted."
)


def period_of(
    since: Annotated[
        AwareDatetime | None,
        Query(description="ISO 8601 with a zone: touchpoints that occurred at or after it. Default: all."),
    ] = None,
    until: Annotated[
        AwareDatetime | None,
        Query(description="ISO 8601 with a zone: touchpoints that occurred before it. Later than `since`."),
    ] = None,
    window_days: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_WINDOW_DAYS,
            description="Attribution window: days (of 24 hours) after a contact's first touchpoint of the "
            f"subject in which a purchase counts, 1 to {MAX_WINDOW_DAYS}.",
        ),
    ] = DEFAULT_WINDOW_DAYS,
) -> Period:
    if since is not None and until is not None and until <= since:
        raise RequestValidationError(
            [{"type": "period_empty", "loc": ("query", "until"), "msg": "until must be later than since"}]
        )
    return Period(since=since, until=until, window_days=window_days)


PeriodDep = Annotated[Period, Depends(period_of)]
OrderBy = Annotated[
    Order,
    Query(
        description="`touchpoints` (the most drawn first) or `conversions` (the most converted contacts "
        "first); ties go by the other figure, then by name."
    ),
]
Subject = Path(min_length=1, max_length=200)


@router.get(
    "/v1/content/{content_id:path}/performance",
    summary="How a content id performs",
    description=f"What the content drew and the purchases that followed. {_RULES} A content id no "
    "touchpoint names answers zeros.",
    responses=PROBLEM_RESPONSES,
)
async def content_performance(
    content_id: Annotated[str, Subject], period: PeriodDep, session: ReadSessionDep
) -> ContentReport:
    figures = await service.performance(session, Dimension.CONTENT, content_id, period)
    return content_report(figures, period)


@router.get(
    "/v1/campaigns/{campaign:path}/performance",
    summary="How a campaign performs",
    description=f"What the campaign drew and the purchases that followed. {_RULES} A campaign no "
    "touchpoint names answers zeros.",
    responses=PROBLEM_RESPONSES,
)
async def campaign_performance(
    campaign: Annotated[str, Subject], period: PeriodDep, session: ReadSessionDep
) -> CampaignReport:
    figures = await service.performance(session, Dimension.CAMPAIGN, campaign, period)
    return campaign_report(figures, period)


_RANKING = (
    'Cursor-paginated: follow `next_cursor`, or the `Link` header\'s `rel="next"` URL, until it is null. '
    "A cursor belongs to its `order_by`. Figures move as touchpoints arrive, so a walk through the pages "
    "meanwhile may see a subject twice or not at all."
)


@router.get(
    "/v1/performance/content",
    summary="Content ids ranked",
    description=f"Every content id that drew touchpoints in the period, best first. {_RULES} {_RANKING}",
    responses=PROBLEM_RESPONSES,
)
async def rank_content(
    period: PeriodDep,
    session: ReadSessionDep,
    request: Request,
    response: Response,
    order_by: OrderBy = Order.TOUCHPOINTS,
    limit: PageLimit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> ContentRanking:
    page = page_from(service.KEYSETS[order_by], limit, cursor)
    found = await service.ranking(session, Dimension.CONTENT, period, order_by, page)
    link_next(request, response, found.next_cursor)
    return ContentRanking(
        items=[content_of(figures) for figures in found.items],
        next_cursor=found.next_cursor,
        period=period_read(period),
        order_by=order_by,
    )


@router.get(
    "/v1/performance/campaigns",
    summary="Campaigns ranked",
    description=f"Every campaign that drew touchpoints in the period, best first. {_RULES} {_RANKING}",
    responses=PROBLEM_RESPONSES,
)
async def rank_campaigns(
    period: PeriodDep,
    session: ReadSessionDep,
    request: Request,
    response: Response,
    order_by: OrderBy = Order.TOUCHPOINTS,
    limit: PageLimit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> CampaignRanking:
    page = page_from(service.KEYSETS[order_by], limit, cursor)
    found = await service.ranking(session, Dimension.CAMPAIGN, period, order_by, page)
    link_next(request, response, found.next_cursor)
    return CampaignRanking(
        items=[campaign_of(figures) for figures in found.items],
        next_cursor=found.next_cursor,
        period=period_read(period),
        order_by=order_by,
    )
