"""Which CSV column feeds which contact field, and a row as a batch-upsert record.

A mapping names a column and a target: `E-mail=email`, `Plan=properties.plan`, `Shop id=external_ids.shop`,
or `Notes=` for a column left out. A column named like a target maps itself (`email`, `Email`,
`properties.plan`), so a file from `GET /v1/contacts/export?format=csv` needs no mapping beyond its
read-only columns. Cells are text: list fields are split on the separator, custom properties are
converted to their type (number, bool, multi-enum), and everything else is sent as written, for the
API to check. An empty cell means "not given", never "clear".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from services.contacts.contacts.schemas import ContactFields, ExternalId

LIST_FIELDS = ("emails", "tags", "anonymous_ids")
# Every other writable field but `external_ids` and `properties` takes one value.
SCALAR_FIELDS = tuple(
    name for name in ContactFields.model_fields if name not in {*LIST_FIELDS, "external_ids", "properties"}
)
EXTERNAL_IDS = "external_ids"
PROPERTIES = "properties."
_TRUE = frozenset({"true", "yes", "y", "1"})
_FALSE = frozenset({"false", "no", "n", "0"})


class MappingError(ValueError):
    """The mapping cannot work for this file; the message says why and what to do."""


class Kind(StrEnum):
    SCALAR = "scalar"
    LIST = "list"
    EXTERNAL_IDS = "external_ids"  # `system:id` items
    EXTERNAL_ID = "external_id"  # ids of one system
    PROPERTY = "property"
    IGNORED = "ignored"


@dataclass(frozen=True)
class Target:
    """Where a column's cells go: `field` as the API names it (`properties.plan`), or nowhere."""

    field: str
    kind: Kind
    key: str = ""  # the property key, or the external system
    property_type: str = ""


IGNORED = Target("", Kind.IGNORED)


def target_names() -> str:
    return ", ".join(
        [*SCALAR_FIELDS, *LIST_FIELDS, EXTERNAL_IDS, "external_ids.<system>", "properties.<key>"]
    )


def parse_target(text: str, property_types: Mapping[str, str] | None) -> Target:
    """The target a mapping names; `property_types` maps each defined property key to its type, and is
    None when the key may not read them."""
    name = text.strip()
    if not name:
        return IGNORED
    if name in SCALAR_FIELDS:
        return Target(name, Kind.SCALAR)
    if name in LIST_FIELDS:
        return Target(name, Kind.LIST)
    if name == EXTERNAL_IDS:
        return Target(name, Kind.EXTERNAL_IDS)
    if name.startswith(EXTERNAL_IDS + "."):
        system = name.removeprefix(EXTERNAL_IDS + ".")
        try:
            ExternalId(system=system, id="-")
        except ValidationError:
            raise MappingError(
                f"{name}: an external system is lower-case letters, digits and _-. (e.g. shopify)"
            ) from None
        return Target(name, Kind.EXTERNAL_ID, key=system)
    if name.startswith(PROPERTIES):
        key = name.removeprefix(PROPERTIES)
        if property_types is None:
            raise MappingError(
                f"{name}: reading the custom property definitions needs an API key with contacts:read"
            )
        if key not in property_types:
            defined = ", ".join(sorted(property_types)) or "none"
            raise MappingError(
                f"{name}: no contact property {key!r} is defined (defined: {defined}); "
                "create it with POST /v1/properties"
            )
        return Target(name, Kind.PROPERTY, key=key, property_type=property_types[key])
    raise MappingError(f"{name}: not a contact field; map a column to one of {target_names()}, or to nothing")


def _self_target(header: str, property_types: Mapping[str, str] | None) -> Target | None:
    """The target a header names by itself (case and surrounding spaces aside), if any."""
    name = header.strip()
    lowered = name.lower()
    for known in (*SCALAR_FIELDS, *LIST_FIELDS, EXTERNAL_IDS):
        if lowered == known:
            return parse_target(known, property_types)
    if lowered.startswith((EXTERNAL_IDS + ".", PROPERTIES)):
        prefix, _, rest = name.partition(".")
        return parse_target(f"{prefix.lower()}.{rest}", property_types)
    return None


@dataclass(frozen=True)
class RowProblem:
    """A row the importer refuses before sending it: the column and field to blame, and why."""

    column: str
    field: str
    message: str


@dataclass
class Record:
    """A row as a batch-upsert record, and which column each part of it came from."""

    values: dict[str, Any] = field(default_factory=dict)
    # Record path (`email`, `emails.2`, `properties.plan`) → the column it came from.
    sources: dict[str, str] = field(default_factory=dict)

    def column_of(self, path: str | None) -> str:
        """The column behind a field the API blames (`emails.1`, `external_ids.0.system`)."""
        parts = (path or "").split(".")
        for end in range(len(parts), 0, -1):
            if (column := self.sources.get(".".join(parts[:end]))) is not None:
                return column
        return ""


def _property_value(target: Target, text: str, separator: str) -> Any:
    """A cell as the property's type takes it; a cell that does not convert goes as written, so the
    API's check names the property in that row's error."""
    if target.property_type == "number":
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return text
        return number if math.isfinite(number) else text
    if target.property_type == "bool":
        lowered = text.lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else text
    if target.property_type == "multi_enum":
        return _split(text, separator)
    return text


def _split(text: str, separator: str) -> list[str]:
    return [item.strip() for item in text.split(separator) if item.strip()]


@dataclass(frozen=True)
class ColumnMapping:
    """A target for each column of the file, in the file's order."""

    headers: tuple[str, ...]
    targets: tuple[Target, ...]
    separator: str = ";"

    @classmethod
    def build(
        cls,
        headers: Sequence[str],
        maps: Sequence[str],
        property_types: Mapping[str, str] | None,
        *,
        ignore_unmapped: bool = False,
        separator: str = ";",
    ) -> ColumnMapping:
        """From `--map "Column=target"` options; a header that names a target maps itself."""
        if not separator:
            raise MappingError("the separator of multi-valued cells cannot be empty")
        repeated = sorted({header for header in headers if headers.count(header) > 1})
        if repeated:
            raise MappingError(f"the header names these columns more than once: {', '.join(repeated)}")
        explicit: dict[str, Target] = {}
        for spec in maps:
            # The last `=`: field names never hold one, column names might.
            column, equals, named = spec.rpartition("=")
            if not equals:
                raise MappingError(
                    f'--map {spec!r}: write it as "Column=field" (or "Column=" to leave it out)'
                )
            if column not in headers:
                raise MappingError(
                    f"--map {spec!r}: the file has no column {column!r}; it has: {_listed(headers)}"
                )
            if column in explicit:
                raise MappingError(f"--map: column {column!r} is mapped twice")
            explicit[column] = parse_target(named, property_types)

        targets: list[Target] = []
        unmapped: list[str] = []
        for position, header in enumerate(headers, start=1):
            target = explicit.get(header) or _self_target(header, property_types)
            if target is None:
                unmapped.append(header or f"(column {position}, unnamed)")
                target = IGNORED
            targets.append(target)
        if unmapped and not ignore_unmapped:
            raise MappingError(
                f'no field for the columns {_listed(unmapped)}: map each with --map "Column=field", '
                'leave one out with --map "Column=", or pass --ignore-unmapped'
            )
        scalars = [t.field for t in targets if t.kind in {Kind.SCALAR, Kind.PROPERTY}]
        twice = sorted({name for name in scalars if scalars.count(name) > 1})
        if twice:
            raise MappingError(f"more than one column maps to {', '.join(twice)}, which takes one value")
        if all(target.kind is Kind.IGNORED for target in targets):
            raise MappingError("no column maps to a field: nothing to import")
        return cls(tuple(headers), tuple(targets), separator)

    def record(self, cells: Sequence[str]) -> Record | RowProblem:
        """One row as a record; empty cells are left out."""
        if len(cells) > len(self.headers):
            return RowProblem("", "", f"the row has {len(cells)} cells, the header {len(self.headers)}")
        record = Record()
        values, sources = record.values, record.sources
        for header, target, raw in zip(self.headers, self.targets, cells, strict=False):
            text = raw.strip()
            if not text or target.kind is Kind.IGNORED:
                continue
            if target.kind is Kind.SCALAR:
                values[target.field] = text
                sources[target.field] = header
            elif target.kind is Kind.PROPERTY:
                values.setdefault("properties", {})[target.key] = _property_value(
                    target, text, self.separator
                )
                sources[target.field] = header
            elif target.kind is Kind.LIST:
                self._extend(record, target.field, header, _split(text, self.separator))
            else:
                ids = self._external_ids(target, text)
                if isinstance(ids, RowProblem):
                    return RowProblem(header, ids.field, ids.message)
                self._extend(record, EXTERNAL_IDS, header, ids)
        return record

    def _external_ids(self, target: Target, text: str) -> list[dict[str, str]] | RowProblem:
        items = _split(text, self.separator)
        if target.kind is Kind.EXTERNAL_ID:
            return [{"system": target.key, "id": item} for item in items]
        ids = []
        for item in items:
            system, colon, value = item.partition(":")
            if not colon or not system.strip() or not value.strip():
                return RowProblem(
                    "", EXTERNAL_IDS, f"{item!r}: write each external id as system:id, e.g. shopify:42"
                )
            ids.append({"system": system.strip(), "id": value.strip()})
        return ids

    @staticmethod
    def _extend(record: Record, name: str, header: str, items: Sequence[Any]) -> None:
        # Several columns may feed one list (`Email 2`, `Email 3` → emails): each item remembers its own.
        existing = record.values.setdefault(name, [])
        for item in items:
            record.sources[f"{name}.{len(existing)}"] = header
            existing.append(item)
        record.sources.setdefault(name, header)


def _listed(names: Sequence[str]) -> str:
    return ", ".join(repr(name) for name in names) or "none"
