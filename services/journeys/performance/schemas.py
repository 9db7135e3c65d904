"""What the performance API answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from services.journeys.performance.service import Figures, Order, Period
from shared.web.pagination import Page

DEFAULT_WINDOW_DAYS = 30
MAX_WINDOW_DAYS = 365


class PeriodRead(BaseModel):
    since: datetime | None = Field(
        description="Touchpoints that occurred at or after it; null: from the first."
    )
    until: datetime | None = Field(description="Touchpoints that occurred before it; null: up to now.")
    window_days: int = Field(
        description="How long after a contact's first touchpoint of the subject a purchase still counts, "
        "in days of 24 hours."
    )


class Reach(BaseModel):
    count: int = Field(description="Touchpoints that name the subject and occurred in the period.")
    contacts: int = Field(description="Distinct contacts among them.")
    unresolved: int = Field(description="Of them, touchpoints whose person is not known (yet).")
    by_channel: dict[str, int] = Field(description="Touchpoints per channel; channels without any left out.")


class Conversions(BaseModel):
    contacts: int = Field(description="Contacts reached who bought within the window.")
    rate: float | None = Field(
        description="`contacts` of the contacts reached, 0 to 1; null when no known contact was reached."
    )
    orders: int = Field(
        description="Purchases that count: touchpoints of channel `purchase` or with a revenue."
    )
    revenue: dict[str, int] = Field(
        description="Revenue of those purchases in minor units, per ISO 4217 currency; never converted or "
        "added across currencies."
    )


class Performance(BaseModel):
    touchpoints: Reach
    conversions: Conversions


class ContentPerformance(Performance):
    content_id: str


class CampaignPerformance(Performance):
    campaign: str


class ContentReport(ContentPerformance):
    period: PeriodRead


class CampaignReport(CampaignPerformance):
    period: PeriodRead


class ContentRanking(Page[ContentPerformance]):
    """A page of content ids, best first."""

    period: PeriodRead
    order_by: Order


class CampaignRanking(Page[CampaignPerformance]):
    """A page of campaigns, best first."""

    period: PeriodRead
    order_by: Order


def reach_of(figures: Figures) -> Reach:
    return Reach(
        count=figures.touchpoints,
        contacts=figures.contacts,
        unresolved=figures.unresolved,
        by_channel=dict(sorted(figures.by_channel.items())),
    )


def conversions_of(figures: Figures) -> Conversions:
    return Conversions(
        contacts=figures.converted,
        rate=figures.conversion_rate,
        orders=figures.orders,
        revenue=dict(sorted(figures.revenue.items())),
    )


def content_of(figures: Figures) -> ContentPerformance:
    return ContentPerformance(
        content_id=figures.subject, touchpoints=reach_of(figures), conversions=conversions_of(figures)
    )


def campaign_of(figures: Figures) -> CampaignPerformance:
    return CampaignPerformance(
        campaign=figures.subject, touchpoints=reach_of(figures), conversions=conversions_of(figures)
    )


def content_report(figures: Figures, period: Period) -> ContentReport:
    return ContentReport(**dict(content_of(figures)), period=period_read(period))


def campaign_report(figures: Figures, period: Period) -> CampaignReport:
    return CampaignReport(**dict(campaign_of(figures)), period=period_read(period))


def period_read(period: Period) -> PeriodRead:
    return PeriodRead(since=period.since, until=period.until, window_days=period.window_days)
