import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.properties.models import CustomValue, PropertyDefinition, stored_columns
from services.contacts.properties.schemas import ObjectType
from shared.pagination import Keyset, PageRequest, Slice, SortKey, fetch_page

BY_KEY = Keyset(
    SortKey(PropertyDefinition.object_type), SortKey(PropertyDefinition.key), SortKey(PropertyDefinition.id)
)


class PropertyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, object_type: ObjectType, key: str) -> PropertyDefinition | None:
        return await self.session.scalar(
            select(PropertyDefinition).where(
                PropertyDefinition.object_type == object_type.value, PropertyDefinition.key == key
            )
        )

    async def of_type(self, object_type: ObjectType) -> dict[str, PropertyDefinition]:
        rows = await self.session.scalars(
            select(PropertyDefinition).where(PropertyDefinition.object_type == object_type.value)
        )
        return {definition.key: definition for definition in rows}

    async def page(self, object_type: ObjectType | None, page: PageRequest) -> Slice[PropertyDefinition]:
        statement = select(PropertyDefinition)
        if object_type is not None:
            statement = statement.where(PropertyDefinition.object_type == object_type.value)
        return await fetch_page(self.session, statement, BY_KEY, page)

    async def is_in_use(self, object_type: ObjectType, key: str, values: Sequence[str]) -> bool:
        """Whether any record holds one of `values` for the property."""
        found = await self.session.scalar(
            select(CustomValue.object_id)
            .where(
                CustomValue.object_type == object_type.value,
                CustomValue.property_key == key,
                CustomValue.value_text.in_(values),
            )
            .limit(1)
        )
        return found is not None

    async def replace_values(
        self, object_type: ObjectType, changed: Mapping[uuid.UUID, Mapping[str, list[Any]]]
    ) -> None:
        """For each record, replace the searchable rows of the properties given (an empty list clears)."""
        pairs = [(object_id, key) for object_id, values in changed.items() for key in values]
        if not pairs:
            return
        await self.session.execute(
            delete(CustomValue).where(
                CustomValue.object_type == object_type.value,
                tuple_(CustomValue.object_id, CustomValue.property_key).in_(pairs),
            )
        )
        rows = [
            {
                "object_type": object_type.value,
                "object_id": object_id,
                "property_key": key,
                "ordinal": ordinal,
                "value_text": None,
                "value_number": None,
                "value_date": None,
                **stored_columns(value),
            }
            for object_id, values in changed.items()
            for key, typed in values.items()
            for ordinal, value in enumerate(typed)
        ]
        if rows:
            await self.session.execute(insert(CustomValue), rows)

    async def delete_values(self, object_type: ObjectType, object_id: uuid.UUID) -> None:
        """Every searchable row of one record: it goes with the record."""
        await self.session.execute(
            delete(CustomValue).where(
                CustomValue.object_type == object_type.value, CustomValue.object_id == object_id
            )
        )
