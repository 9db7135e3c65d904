"""Custom property values on a company or a deal: one write's check, merge, searchable copy and event.

A record keeps its values as JSON (`properties`) and, for search, as typed `custom_value` rows. A write
gives some keys (a merge patch: `null` removes one); each is checked against the object type's
definitions, so a key defined for another object type is refused as unknown. Contacts do the same in
their own batched path (`contacts.service._Batch`), which writes many contacts per statement.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.properties.models import PropertyDefinition
from services.contacts.properties.repository import PropertyRepository
from services.contacts.properties.schemas import ObjectType
from services.contacts.properties.service import CheckedValue, check_values
from shared.events.base import ValueChange

PREFIX = "properties."


@dataclass(frozen=True)
class PropertyWrite:
    """What one write does to one record's custom properties."""

    values: dict[str, Any]
    """The record's `properties` after the write."""
    changed: dict[str, tuple[Any, CheckedValue]]
    """Only the keys whose value changes: the old stored value and the new one."""

    @property
    def fields(self) -> dict[str, tuple[Any, Any]]:
        """The changes as `properties.<key>`: (old, new), as an update event names them."""
        return {PREFIX + key: (old, new.stored) for key, (old, new) in self.changed.items()}


class CustomProperties:
    """One object type's definitions, read once per request, however many records it writes."""

    def __init__(self, session: AsyncSession, object_type: ObjectType) -> None:
        self.session = session
        self.object_type = object_type
        self._definitions: dict[str, PropertyDefinition] | None = None

    async def _loaded(self) -> dict[str, PropertyDefinition]:
        if self._definitions is None:
            self._definitions = await PropertyRepository(self.session).of_type(self.object_type)
        return self._definitions

    async def write(self, current: Mapping[str, Any], given: Mapping[str, Any] | None) -> PropertyWrite:
        """`given` checked and merged into `current`; an `InvalidValue` naming `properties.<key>` for an
        unknown key or a bad value, before anything is written. A `null` given removes the key."""
        if not given:
            return PropertyWrite(dict(current), {})
        checked = check_values(await self._loaded(), given, self.object_type)
        merged = dict(current)
        changed: dict[str, tuple[Any, CheckedValue]] = {}
        for key, value in checked.items():
            if current.get(key) == value.stored:
                continue
            changed[key] = (current.get(key), value)
            if value.stored is None:
                merged.pop(key, None)
            else:
                merged[key] = value.stored
        return PropertyWrite(merged, changed)

    async def store(self, object_id: uuid.UUID, write: PropertyWrite) -> None:
        """Replace the searchable rows of the keys the write changed."""
        await PropertyRepository(self.session).replace_values(
            self.object_type, {object_id: {key: new.searchable for key, (_old, new) in write.changed.items()}}
        )

    async def forget(self, object_id: uuid.UUID) -> None:
        """The record goes: its searchable rows go with it."""
        await PropertyRepository(self.session).delete_values(self.object_type, object_id)

    def published(self, write: PropertyWrite) -> dict[str, ValueChange]:
        """Old and new values of the changed properties that are not personal data; the others are only
        named (in `changed_fields`), never shown: the log keeps every event for ever."""
        definitions = self._definitions or {}
        return {
            PREFIX + key: ValueChange(old=old, new=new.stored)
            for key, (old, new) in write.changed.items()
            if key in definitions and not definitions[key].personal_data
        }
