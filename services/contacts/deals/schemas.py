import uuid
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.iso_codes import CurrencyCode

# Postgres `bigint`: a larger amount must be a 422, not a failed INSERT.
_INT64 = 2**63 - 1

StageKey = Annotated[
    str, Field(pattern=r"^[a-z0-9_]{1,64}$", description="A stage key of the deal's pipeline.")
]
ReasonCode = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9_]{1,64}$",
        description="Why the deal moved, as a short code (`price`, `competitor`, `no_budget`); required "
        "into a won or lost stage. Goes on the stream, so it holds no names: put those in `note`.",
        examples=["competitor"],
    ),
]
Note = Annotated[
    str, Field(max_length=4000, description="Free text kept with the stage change; never on the stream.")
]
Name = Annotated[str, Field(min_length=1, max_length=300)]
Amount = Annotated[int, Field(ge=0, le=_INT64, description="In minor units of `currency` (cents for EUR).")]


class DealFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    amount: Amount | None = None
    currency: CurrencyCode | None = Field(None, description="ISO 4217 currency of `amount`.")
    owner: str | None = Field(None, max_length=100, description="Id of the sales person who owns the deal.")
    expected_close_date: date | None = None
    external_id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Your own id for the deal; unique. Batch upserts match on it.",
    )
    properties: dict[str, Any] | None = Field(
        None,
        description="Custom property values by key, as defined in `/v1/properties` for `deal`; merged key "
        "by key, and `null` clears one.",
        examples=[{"forecast_category": "commit", "seats": 250}],
    )


class DealCreate(DealFields):
    """`amount` needs a `currency` (checked by the service, which sees a patch merged too)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Acme: 250 seats",
                    "stage": "qualification",
                    "amount": 1_500_000,
                    "currency": "EUR",
                    "owner": "rep-7",
                    "expected_close_date": "2026-12-31",
                    "external_id": "shop-order-8812",
                    "properties": {"forecast_category": "commit", "seats": 250},
                }
            ]
        }
    )

    name: Name
    pipeline_id: uuid.UUID | None = Field(None, description="Leave out for the default `sales` pipeline.")
    stage: StageKey | None = Field(
        None, description="An open stage of the pipeline; leave out for its first stage."
    )


class DealPatch(DealFields):
    """A JSON merge patch (RFC 7396): a field left out stays as it is, `null` clears it. The stage moves
    through `POST /v1/deals/{id}/stage`, so that every move is in the history."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"amount": 1_800_000, "owner": "rep-9", "properties": {"forecast_category": "best_case"}}
            ]
        }
    )

    name: Name | None = Field(None, description="Cannot be cleared.")

    @field_validator("name")
    @classmethod
    def _name_is_not_cleared(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("name cannot be null; leave it out to keep it")
        return value

    def given(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class DealUpsert(DealFields):
    """A record of `POST /v1/deals/batch/upsert`, matched to a deal by `external_id`. For a deal that
    exists it is a merge patch, and a `stage` other than the deal's is a move (with its `reason`)."""

    external_id: str = Field(min_length=1, max_length=200)
    name: Name | None = Field(None, description="Needed to create a deal.")
    pipeline_id: uuid.UUID | None = Field(None, description="Only when creating; a deal's pipeline is fixed.")
    stage: StageKey | None = None
    reason: ReasonCode | None = None
    note: Note | None = None

    @field_validator("name")
    @classmethod
    def _name_is_not_cleared(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("name cannot be null; leave it out to keep it")
        return value

    def fields(self) -> dict[str, Any]:
        """The deal's own fields the record sets (not the pipeline, stage and move)."""
        moving = {"pipeline_id", "stage", "reason", "note"}
        return {name: getattr(self, name) for name in self.model_fields_set - moving}


class StageMove(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [{"stage": "lost", "reason": "competitor", "note": "Went with the incumbent."}]
        },
    )

    stage: StageKey
    reason: ReasonCode | None = None
    note: Note | None = None


class DealRead(BaseModel):
    id: uuid.UUID
    name: str
    pipeline_id: uuid.UUID
    stage: str
    amount: int | None
    currency: str | None
    owner: str | None
    expected_close_date: date | None
    external_id: str | None
    properties: dict[str, Any] = Field(description="Custom property values by key.")
    closed_at: datetime | None = Field(description="When the deal entered a won or lost stage; else null.")
    close_reason: str | None = Field(description="The `reason` it was closed with; null while open.")
    contact_ids: list[uuid.UUID] = Field(description="Associated contacts, in the order they were added.")
    company_ids: list[uuid.UUID] = Field(description="Associated companies, in the order they were added.")
    created_at: datetime
    updated_at: datetime


class StageChangeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="Increases with every change: the history's order.")
    changed_at: datetime
    actor: str = Field(description="Id of the API key that made the change.")
    from_stage: str | None = Field(description="Null for the stage the deal was created in.")
    to_stage: str
    reason: str | None
    note: str | None
