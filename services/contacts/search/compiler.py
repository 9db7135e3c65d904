"""Filters and sorts of the search language (`schemas`), turned into SQL for one record type.

A record type describes its searchable fields in a `FieldCatalog`: plain columns, sets of values kept in
another table (a contact's tags and emails), and its custom properties, whose values are searched in
`custom_value` through subqueries that lead with the property's key, so each condition is an index range
scan whatever the number of records. `in` lists are bound as one parameter, whatever their length (see
`lists`). Every value is checked against its field's type; a bad one is an `InvalidValue` naming where it
is in the request (`filter.and.1.value`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, not_, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute, aliased

from services.contacts.properties.models import CustomValue, PropertyDefinition, fits_float
from services.contacts.properties.schemas import ObjectType, PropertyType
from services.contacts.search.lists import one_of, utc_day
from services.contacts.search.schemas import Filter, Operator, Sort, SortDirection
from shared.errors import InvalidValue
from shared.pagination import Keyset, SortKey

PROPERTIES_PREFIX = "properties."
MAX_TEXT = 1000
MAX_LIST = 500
_RANGES = (Operator.LT, Operator.LTE, Operator.GT, Operator.GTE, Operator.BETWEEN)


class Kind(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"
    DATETIME = "datetime"
    BOOL = "bool"
    ID = "id"
    """A UUID: another record's id (a deal's pipeline, a company's contacts). Equality only."""


@dataclass(frozen=True)
class ColumnField:
    """A column of the record's own table."""

    column: InstrumentedAttribute[Any]
    kind: Kind
    choices: tuple[str, ...] = ()
    """The only values it holds (an enum): others are refused rather than matching nothing."""
    lower: bool = False
    """Stored lower-cased (emails): values are lower-cased before comparing."""


@dataclass(frozen=True)
class SetField:
    """Values kept in another table, several per record (tags, emails): `contains` and `in` test
    membership, `exists` whether there is any."""

    value: InstrumentedAttribute[Any]
    owner: InstrumentedAttribute[Any]
    where: tuple[ColumnElement[bool], ...] = ()
    lower: bool = False
    kind: Kind = Kind.TEXT


@dataclass(frozen=True)
class FieldCatalog:
    object_type: ObjectType
    id_column: InstrumentedAttribute[uuid.UUID]
    columns: Mapping[str, ColumnField]
    sets: Mapping[str, SetField] = field(default_factory=dict)

    def names(self) -> list[str]:
        return sorted([*self.columns, *self.sets])


_CUSTOM_KINDS = {
    PropertyType.STRING: Kind.TEXT,
    PropertyType.ENUM: Kind.TEXT,
    PropertyType.MULTI_ENUM: Kind.TEXT,
    PropertyType.BOOL: Kind.BOOL,
    PropertyType.NUMBER: Kind.NUMBER,
    PropertyType.DATE: Kind.DATE,
}


def _custom_column(kind: Kind) -> InstrumentedAttribute[Any]:
    if kind is Kind.NUMBER:
        return CustomValue.value_number
    if kind is Kind.DATE:
        return CustomValue.value_date
    return CustomValue.value_text


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class _Bound:
    """A compared value. A bare date given for a timestamp stands for the whole day: [start, end)."""

    start: Any
    end: Any

    @property
    def is_day(self) -> bool:
        return bool(self.start != self.end)


class FilterCompiler:
    def __init__(self, catalog: FieldCatalog, definitions: Mapping[str, PropertyDefinition]) -> None:
        self.catalog = catalog
        self.definitions = definitions

    # --- values ---------------------------------------------------------------------------------

    def _value(
        self, kind: Kind, raw: Any, path: str, *, choices: Sequence[str] = (), lower: bool = False
    ) -> _Bound:
        if kind is Kind.TEXT:
            if not isinstance(raw, str) or len(raw) > MAX_TEXT:
                raise InvalidValue(path, f"Expected a string of at most {MAX_TEXT} characters.")
            if choices and raw not in choices:
                raise InvalidValue(path, f"Expected one of: {', '.join(choices)}.")
            text = raw.lower() if lower else raw
            return _Bound(text, text)
        if kind is Kind.NUMBER:
            if isinstance(raw, bool) or not isinstance(raw, int | float) or not fits_float(raw):
                raise InvalidValue(path, "Expected a finite number within ±1.8e308.")
            return _Bound(float(raw), float(raw))
        if kind is Kind.BOOL:
            if not isinstance(raw, bool):
                raise InvalidValue(path, "Expected true or false.")
            text = "true" if raw else "false"
            return _Bound(text, text)
        if kind is Kind.ID:
            try:
                identifier = uuid.UUID(raw) if isinstance(raw, str) else None
            except ValueError:
                identifier = None
            if identifier is None:
                raise InvalidValue(path, "Expected an id (a UUID).")
            return _Bound(identifier, identifier)
        if not isinstance(raw, str):
            raise InvalidValue(path, "Expected a date (YYYY-MM-DD) or, for a time, an ISO 8601 timestamp.")
        try:
            if kind is Kind.DATE:
                day = date.fromisoformat(raw)
                return _Bound(day, day)
            if len(raw) == 10:
                start = datetime.combine(date.fromisoformat(raw), time(), UTC)
                return _Bound(start, start + timedelta(days=1))
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidValue(path, "Expected a date (YYYY-MM-DD) or an ISO 8601 timestamp.") from exc
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        return _Bound(moment, moment)

    def _values(self, kind: Kind, raw: Any, path: str, **options: Any) -> list[_Bound]:
        if not isinstance(raw, list) or not raw or len(raw) > MAX_LIST:
            raise InvalidValue(path, f"Expected a list of 1 to {MAX_LIST} values.")
        return [self._value(kind, item, f"{path}.{index}", **options) for index, item in enumerate(raw)]

    # --- comparisons ----------------------------------------------------------------------------

    @staticmethod
    def _compare(column: Any, op: Operator, bounds: list[_Bound]) -> ColumnElement[bool]:
        """`column op bounds`, for a value that is there (absence is the caller's business)."""
        first = bounds[0]
        condition: ColumnElement[bool]
        if op in (Operator.EQ, Operator.NEQ):
            condition = (
                and_(column >= first.start, column < first.end) if first.is_day else column == first.start
            )
        elif op in (Operator.IN, Operator.NOT_IN):
            # One list parameter, not a term per value (see `lists`); whole days as a list of days.
            days = [bound.start.date() for bound in bounds if bound.is_day]
            values = [bound.start for bound in bounds if not bound.is_day]
            condition = or_(
                *([one_of(column, values)] if values else []),
                *([one_of(utc_day(column), days)] if days else []),
            )
        elif op is Operator.LT:
            condition = column < first.start
        elif op is Operator.LTE:
            condition = column < first.end if first.is_day else column <= first.end
        elif op is Operator.GT:
            condition = column >= first.end if first.is_day else column > first.end
        elif op is Operator.GTE:
            condition = column >= first.start
        else:
            low, high = bounds
            condition = and_(column >= low.start, column < high.end if high.is_day else column <= high.end)
        return condition

    def _bounds(self, node: Filter, kind: Kind, path: str, **options: Any) -> list[_Bound]:
        op = node.op
        value_path = f"{path}.value"
        if op in (Operator.EXISTS, Operator.NOT_EXISTS):
            if node.value is not None:
                raise InvalidValue(value_path, f"`{op}` takes no value.")
            return []
        if op in (Operator.IN, Operator.NOT_IN):
            return self._values(kind, node.value, value_path, **options)
        if op is Operator.BETWEEN:
            if not isinstance(node.value, list) or len(node.value) != 2:
                raise InvalidValue(value_path, "`between` takes two bounds: [low, high].")
            bounds = self._values(kind, node.value, value_path, **options)
        else:
            bounds = [self._value(kind, node.value, value_path, **options)]
        if op in _RANGES and kind is Kind.BOOL:
            raise InvalidValue(f"{path}.op", f"`{op}` does not apply to true/false values.")
        if op in _RANGES and kind is Kind.ID:
            raise InvalidValue(f"{path}.op", f"`{op}` does not apply to ids.")
        return bounds

    def _column_condition(self, spec: ColumnField, node: Filter, path: str) -> ColumnElement[bool]:
        column, op = spec.column, node.op
        assert op is not None
        if op is Operator.EXISTS:
            self._bounds(node, spec.kind, path)
            return column.is_not(None)
        if op is Operator.NOT_EXISTS:
            self._bounds(node, spec.kind, path)
            return column.is_(None)
        if op is Operator.CONTAINS:
            if spec.kind is not Kind.TEXT:
                raise InvalidValue(f"{path}.op", "`contains` applies to text.")
            text = self._value(Kind.TEXT, node.value, f"{path}.value").start
            return column.ilike(f"%{_escape_like(text)}%", escape="\\")
        bounds = self._bounds(
            node, spec.kind, path, choices=spec.choices if op not in _RANGES else (), lower=spec.lower
        )
        compared = self._compare(column, op, bounds)
        if op in (Operator.NEQ, Operator.NOT_IN):
            return or_(column.is_(None), not_(compared))
        return compared

    def _set_condition(self, spec: SetField, node: Filter, path: str) -> ColumnElement[bool]:
        op = node.op
        assert op is not None

        def having(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
            return exists().where(spec.owner == self.catalog.id_column, *spec.where, *conditions)

        if op is Operator.EXISTS:
            self._bounds(node, spec.kind, path)
            return having()
        if op is Operator.NOT_EXISTS:
            self._bounds(node, spec.kind, path)
            return not_(having())
        if op in (Operator.EQ, Operator.CONTAINS, Operator.NEQ):
            bound = self._value(spec.kind, node.value, f"{path}.value", lower=spec.lower)
            found = having(spec.value == bound.start)
            return not_(found) if op is Operator.NEQ else found
        if op in (Operator.IN, Operator.NOT_IN):
            bounds = self._values(spec.kind, node.value, f"{path}.value", lower=spec.lower)
            found = having(one_of(spec.value, [bound.start for bound in bounds]))
            return not_(found) if op is Operator.NOT_IN else found
        raise InvalidValue(f"{path}.op", f"`{op}` does not apply to a list; use contains, in or exists.")

    def _custom_condition(
        self, definition: PropertyDefinition, node: Filter, path: str
    ) -> ColumnElement[bool]:
        op = node.op
        assert op is not None
        kind = _CUSTOM_KINDS[PropertyType(definition.type)]
        column = _custom_column(kind)

        of_property = (
            CustomValue.object_type == self.catalog.object_type.value,
            CustomValue.property_key == definition.key,
        )

        def having(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
            # `id IN (SELECT object_id …)`: the database reads the matching values once, along the
            # property's index, and keeps the records among them. A correlated EXISTS makes SQLite look
            # up each record in turn instead: all of them, however few match.
            matching = select(CustomValue.object_id).where(*of_property, *conditions)
            return self.catalog.id_column.in_(matching)

        def lacking(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
            # A negation keeps most records, which are read anyway; NOT EXISTS is an anti-join on
            # PostgreSQL (NOT IN cannot be, for NULL's sake) and a primary-key probe per record on SQLite.
            return not_(
                exists().where(*of_property, CustomValue.object_id == self.catalog.id_column, *conditions)
            )

        if op is Operator.EXISTS:
            self._bounds(node, kind, path)
            return having()
        if op is Operator.NOT_EXISTS:
            self._bounds(node, kind, path)
            return lacking()
        choices = tuple(definition.options) if op not in _RANGES else ()
        if op is Operator.CONTAINS:
            if PropertyType(definition.type) is PropertyType.MULTI_ENUM:
                option = self._value(Kind.TEXT, node.value, f"{path}.value", choices=choices).start
                return having(column == option)
            if kind is not Kind.TEXT:
                raise InvalidValue(f"{path}.op", "`contains` applies to text and multi-enum properties.")
            text = self._value(Kind.TEXT, node.value, f"{path}.value").start
            return having(column.ilike(f"%{_escape_like(text)}%", escape="\\"))
        bounds = self._bounds(node, kind, path, choices=choices)
        if op is Operator.NEQ:
            return lacking(self._compare(column, Operator.EQ, bounds))
        if op is Operator.NOT_IN:
            return lacking(self._compare(column, Operator.IN, bounds))
        return having(self._compare(column, op, bounds))

    # --- the tree -------------------------------------------------------------------------------

    def _definition(self, name: str, path: str) -> PropertyDefinition:
        key = name.removeprefix(PROPERTIES_PREFIX)
        definition = self.definitions.get(key)
        if definition is None:
            raise InvalidValue(path, f"No {self.catalog.object_type.value} property {key} is defined.")
        return definition

    def where(self, node: Filter | None, path: str = "filter") -> ColumnElement[bool]:
        if node is None:
            return true()
        if node.all_of is not None:
            return and_(*(self.where(child, f"{path}.and.{i}") for i, child in enumerate(node.all_of)))
        if node.any_of is not None:
            return or_(*(self.where(child, f"{path}.or.{i}") for i, child in enumerate(node.any_of)))
        name = node.field
        assert name is not None
        if name.startswith(PROPERTIES_PREFIX):
            return self._custom_condition(self._definition(name, f"{path}.field"), node, path)
        if name in self.catalog.columns:
            return self._column_condition(self.catalog.columns[name], node, path)
        if name in self.catalog.sets:
            return self._set_condition(self.catalog.sets[name], node, path)
        raise InvalidValue(
            f"{path}.field",
            f"No field {name}. Fields: {', '.join(self.catalog.names())}, or properties.<key>.",
        )

    def sorted(
        self, statement: Select[Any], sort: Sort | None, default: Keyset, *, within: Filter | None = None
    ) -> tuple[Select[Any], Keyset]:
        """`statement` ready to be sorted as asked, and the keyset of that sort (ties go by id).

        A custom property is joined (its first value, for a multi-enum); its sort key is that value,
        labelled with the field's name. Records without the value come last. When `within`, the filter
        `statement` applies, already requires the value, the join is an inner one and the sort has no
        NULLs to place: the database can then read the records in order along the property's index
        and stop after a page, instead of sorting every match."""
        if sort is None:
            return statement, default
        descending = sort.direction is SortDirection.DESC
        tiebreak = SortKey(self.catalog.id_column, descending=descending)
        if sort.field in self.catalog.columns:
            column = self.catalog.columns[sort.field].column
            nullable = bool(getattr(column.expression, "nullable", True))
            return statement, Keyset(SortKey(column, descending=descending, nullable=nullable), tiebreak)
        if not sort.field.startswith(PROPERTIES_PREFIX):
            raise InvalidValue("sort.field", f"Cannot sort by {sort.field}.")
        definition = self._definition(sort.field, "sort.field")
        value = aliased(CustomValue)
        sort_column = getattr(value, _custom_column(_CUSTOM_KINDS[PropertyType(definition.type)]).key)
        on = and_(
            value.object_type == self.catalog.object_type.value,
            value.object_id == self.catalog.id_column,
            value.property_key == definition.key,
            value.ordinal == 0,
        )
        required = requires_value(within, sort.field)
        joined = statement.join(value, on) if required else statement.outerjoin(value, on)
        # Labelled with the field's name, so a cursor names the sort it belongs to.
        label = sort_column.label(sort.field)
        return joined, Keyset(SortKey(label, descending=descending, nullable=not required), tiebreak)


# Conditions only a record with a value meets (`neq`, `not_in` and `not_exists` also meet the others).
_NEEDS_A_VALUE = frozenset(
    {
        Operator.EQ,
        Operator.IN,
        Operator.LT,
        Operator.LTE,
        Operator.GT,
        Operator.GTE,
        Operator.BETWEEN,
        Operator.CONTAINS,
        Operator.EXISTS,
    }
)


def requires_value(node: Filter | None, name: str) -> bool:
    """Whether every record `node` matches has a value for the field `name`."""
    if node is None:
        return False
    if node.all_of is not None:
        return any(requires_value(child, name) for child in node.all_of)
    if node.any_of is not None:
        return all(requires_value(child, name) for child in node.any_of)
    return node.field == name and node.op in _NEEDS_A_VALUE
