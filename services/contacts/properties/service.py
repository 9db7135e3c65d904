"""Custom properties: their definitions, and the check and conversion of a value against its definition.

Values are validated on write: an unknown property, a value of the wrong type or an option that is not
in the list is an `InvalidValue` naming `properties.<key>`, which the edge answers with a 422.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.properties.models import PropertyDefinition, fits_float
from services.contacts.properties.repository import PropertyRepository
from services.contacts.properties.schemas import ObjectType, PropertyCreate, PropertyPatch, PropertyType
from shared.errors import AlreadyExists, InvalidValue, NotFound
from shared.pagination import PageRequest, Slice

MAX_STRING = 1000


class PropertyNotFound(NotFound):
    def __init__(self, object_type: ObjectType, key: str) -> None:
        super().__init__("Property", f"{object_type.value}/{key}")


async def create_property(session: AsyncSession, data: PropertyCreate) -> PropertyDefinition:
    repository = PropertyRepository(session)
    existing = await repository.get(data.object_type, data.key)
    if existing is not None:
        raise AlreadyExists(
            f"A {data.object_type.value} property with key {data.key} already exists.",
            existing_id=existing.id,
        )
    definition = PropertyDefinition(
        id=uuid.uuid4(),
        object_type=data.object_type.value,
        key=data.key,
        label=data.label,
        description=data.description,
        type=data.type.value,
        options=list(data.options),
        personal_data=data.personal_data,
    )
    session.add(definition)
    await session.flush()
    return definition


async def get_property(session: AsyncSession, object_type: ObjectType, key: str) -> PropertyDefinition:
    definition = await PropertyRepository(session).get(object_type, key)
    if definition is None:
        raise PropertyNotFound(object_type, key)
    return definition


async def list_properties(
    session: AsyncSession, object_type: ObjectType | None, page: PageRequest
) -> Slice[PropertyDefinition]:
    return await PropertyRepository(session).page(object_type, page)


async def update_property(
    session: AsyncSession, object_type: ObjectType, key: str, patch: PropertyPatch
) -> PropertyDefinition:
    definition = await get_property(session, object_type, key)
    given = patch.model_dump(include=patch.model_fields_set)
    if "options" in given:
        options = given["options"] or []
        if not PropertyType(definition.type).has_options:
            raise InvalidValue("options", f"A {definition.type} property has no options.")
        if len(set(options)) != len(options):
            raise InvalidValue("options", "Options must be unique.")
        removed = [option for option in definition.options if option not in options]
        if removed and await PropertyRepository(session).is_in_use(object_type, key, removed):
            raise InvalidValue("options", f"Options still in use cannot be removed: {', '.join(removed)}.")
        definition.options = list(options)
    for name in ("label", "description", "personal_data"):
        if name in given and (name == "description" or given[name] is not None):
            setattr(definition, name, given[name])
    await session.flush()
    return definition


@dataclass(frozen=True)
class CheckedValue:
    """A custom property value as the record keeps it (JSON) and as its searchable rows hold it."""

    stored: Any
    searchable: list[Any]


def check_value(definition: PropertyDefinition, value: Any) -> CheckedValue:
    """`value` converted for `definition`'s type, or an `InvalidValue` naming `properties.<key>`."""
    field = f"properties.{definition.key}"
    if value is None:
        return CheckedValue(None, [])
    kind = PropertyType(definition.type)
    if kind is PropertyType.STRING:
        if not isinstance(value, str) or len(value) > MAX_STRING:
            raise InvalidValue(field, f"{definition.key} takes a string of at most {MAX_STRING} characters.")
        return CheckedValue(value, [value])
    if kind is PropertyType.NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float) or not fits_float(value):
            raise InvalidValue(field, f"{definition.key} takes a finite number within ±1.8e308.")
        return CheckedValue(value, [value])
    if kind is PropertyType.BOOL:
        if not isinstance(value, bool):
            raise InvalidValue(field, f"{definition.key} takes true or false.")
        return CheckedValue(value, [value])
    if kind is PropertyType.DATE:
        try:
            day = date.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            day = None
        if day is None:
            raise InvalidValue(field, f"{definition.key} takes a date as YYYY-MM-DD.")
        return CheckedValue(day.isoformat(), [day])
    if kind is PropertyType.ENUM:
        if value not in definition.options:
            raise InvalidValue(field, f"{definition.key} takes one of: {', '.join(definition.options)}.")
        return CheckedValue(value, [value])
    chosen = value if isinstance(value, list) else None
    if chosen is None or any(option not in definition.options for option in chosen):
        raise InvalidValue(
            field, f"{definition.key} takes a list of options from: {', '.join(definition.options)}."
        )
    ordered = [option for option in definition.options if option in chosen]
    return CheckedValue(ordered, list(ordered))


def check_values(
    definitions: Mapping[str, PropertyDefinition],
    values: Mapping[str, Any],
    object_type: ObjectType | None = None,
) -> dict[str, CheckedValue]:
    """Every given value checked; an unknown key is an `InvalidValue` naming it. `definitions` are one
    object type's (named in the message), so a key defined for another type is unknown here too."""
    checked = {}
    for key, value in values.items():
        definition = definitions.get(key)
        if definition is None:
            kind = f"{object_type.value} property" if object_type is not None else "property"
            raise InvalidValue(
                f"properties.{key}", f"No {kind} {key} is defined; create it with POST /v1/properties."
            )
        checked[key] = check_value(definition, value)
    return checked
