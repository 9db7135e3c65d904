"""The filter language of `POST /v1/<records>/search` and of segments.

    {"filter": {"and": [
        {"field": "lifecycle_stage", "op": "in", "value": ["lead", "customer"]},
        {"or": [{"field": "properties.plan", "op": "eq", "value": "pro"},
                {"field": "tags", "op": "contains", "value": "vip"}]},
        {"field": "created_at", "op": "between", "value": ["2026-01-01", "2026-06-30T23:59:59Z"]}]},
     "sort": {"field": "properties.score", "direction": "desc"}, "limit": 100}

A filter is a condition or a group, `{"and": [...]}` or `{"or": [...]}`, nested up to a depth of 6 with
at most 100 conditions in all. Custom properties are `properties.<key>`. What each field means and which
operators it takes is the record type's (`FieldCatalog` in `compiler`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from shared.web.pagination import DEFAULT_LIMIT, MAX_LIMIT

MAX_DEPTH = 6
MAX_CONDITIONS = 100


class Operator(StrEnum):
    EQ = "eq"
    NEQ = "neq"
    LT = "lt"
    LTE = "lte"
    GT = "gt"
    GTE = "gte"
    IN = "in"
    NOT_IN = "not_in"
    CONTAINS = "contains"
    EXISTS = "exists"
    NOT_EXISTS = "not_exists"
    BETWEEN = "between"


class Filter(BaseModel):
    """A condition (`field`, `op`, `value`) or a group (`and` or `or`, a list of filters), not both.

    A condition compares `field` with `value` by `op`. `in`/`not_in` take a list, `between` two bounds
    (both included), `exists`/`not_exists` no value. `contains` is a case-insensitive substring on text,
    and membership on lists (`tags`, `emails`, multi-enum properties). `neq` and `not_in` also match
    records without a value.
    """

    # One model rather than a union of three, so an error's path reads `filter.and.0.op`.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    field: str | None = Field(None, min_length=1, max_length=200, examples=["properties.plan"])
    op: Operator | None = None
    value: Any = None
    all_of: list[Filter] | None = Field(None, alias="and", min_length=1, max_length=MAX_CONDITIONS)
    any_of: list[Filter] | None = Field(None, alias="or", min_length=1, max_length=MAX_CONDITIONS)

    @model_validator(mode="after")
    def _one_form(self) -> Filter:
        forms = [
            self.all_of is not None,
            self.any_of is not None,
            self.field is not None or self.op is not None,
        ]
        if sum(forms) != 1:
            raise ValueError("give either `field` and `op`, or `and`, or `or`")
        if forms[2] and (self.field is None or self.op is None):
            raise ValueError("a condition needs both `field` and `op`")
        return self

    @model_serializer(mode="wrap")
    def _without_unused_keys(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A condition has no `and`, a group no `field`: written back as it is written.
        written: dict[str, Any] = handler(self)
        return {key: value for key, value in written.items() if value is not None}

    @property
    def children(self) -> list[Filter]:
        return self.all_of or self.any_of or []


class SortDirection(StrEnum):
    ASC = "asc"
    DESC = "desc"


class Sort(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = Field(min_length=1, max_length=200)
    direction: SortDirection = SortDirection.ASC


class SearchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "filter": {
                        "and": [
                            {"field": "lifecycle_stage", "op": "in", "value": ["lead", "customer"]},
                            {
                                "or": [
                                    {"field": "properties.plan", "op": "eq", "value": "pro"},
                                    {"field": "tags", "op": "contains", "value": "vip"},
                                ]
                            },
                            {"field": "created_at", "op": "between", "value": ["2026-01-01", "2026-06-30"]},
                        ]
                    },
                    "sort": {"field": "last_name", "direction": "asc"},
                    "limit": 100,
                }
            ]
        },
    )

    filter: Filter | None = Field(None, description="Leave out to match every record.")
    sort: Sort | None = Field(None, description="One field; ties go by id. Default: newest first.")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(None, description="`next_cursor` of the previous page, with the same sort.")
    with_total: bool = Field(False, description="Also count every match (costs a second query).")

    @field_validator("filter")
    @classmethod
    def _bounded(cls, node: Filter | None) -> Filter | None:
        # On the field, so the error names `filter`.
        if node is not None:
            depth, conditions = measure(node)
            if depth > MAX_DEPTH:
                raise ValueError(f"a filter may nest at most {MAX_DEPTH} levels")
            if conditions > MAX_CONDITIONS:
                raise ValueError(f"a filter may hold at most {MAX_CONDITIONS} conditions")
        return node


def measure(node: Filter) -> tuple[int, int]:
    """(depth, number of conditions) of a filter."""
    if not node.children:
        return 1, 1
    children = [measure(child) for child in node.children]
    return 1 + max(depth for depth, _ in children), sum(count for _, count in children)
