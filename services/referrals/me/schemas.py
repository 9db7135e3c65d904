"""What an affiliate sees of itself under `/v1/me`: its own rows, with nothing about other affiliates and
nothing personal about the people who clicked or bought (no IP hash, user agent, customer or contact)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


class Me(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str = Field(description="`partner`, or `customer` (a customer who refers).")
    name: str
    email: str | None
    status: str = Field(description="`active` or `suspended` (a suspended affiliate is credited nothing).")
    created_at: datetime


class MyLink(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    code: str = Field(description="As in `/r/{code}`.")
    program_id: uuid.UUID
    destination_url: str
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_term: str | None
    utm_content: str | None
    archived_at: datetime | None
    created_at: datetime


class MyClick(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="The click id appended to the destination.")
    link_id: uuid.UUID
    code: str
    program_id: uuid.UUID
    clicked_at: datetime
    is_bot: bool = Field(description="A known crawler: recorded, never counted or credited.")


class MyConversion(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    program_id: uuid.UUID
    link_id: uuid.UUID | None
    click_id: str | None
    transaction_id: str = Field(description="The advertiser's order or transaction id.")
    goal: str
    amount: int | None = Field(description="Minor units of `currency`.")
    currency: str | None
    status: str = Field(description="`pending`, `approved`, `rejected`, `refunded` or `chargeback`.")
    review: str = Field(description="`none`, or `held` (waiting for a review), `approved`, `rejected`.")
    occurred_at: datetime
    recorded_at: datetime


class Earnings(BaseModel):
    currency: str
    amount: int = Field(description="Minor units: commissions and rewards not reversed.")
    epc: float | None = Field(
        description="Earnings per click: `amount` / `clicks`, in minor units; null without clicks."
    )


class DayEarnings(BaseModel):
    day: date = Field(description="A UTC day on which earning conversions occurred.")
    currency: str
    amount: int


class Stats(BaseModel):
    since: datetime
    until: datetime
    clicks: int = Field(description="Clicks on the affiliate's links in the period, bots left out.")
    conversions: int = Field(
        description="Conversions credited to the affiliate that occurred in the period (rejected ones left "
        "out)."
    )
    conversion_rate: float | None = Field(description="`conversions` / `clicks`; null without clicks.")
    earnings: list[Earnings] = Field(
        description="Per currency: commissions and rewards (not reversed) of the period's conversions."
    )
    earnings_per_day: list[DayEarnings] = Field(
        description="The same earnings by the UTC day their conversion occurred; days without any are left "
        "out. Oldest first."
    )
