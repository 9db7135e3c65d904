import math
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Float, Index, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from services.contacts.contacts.models import JSONDocument
from services.contacts.db import Base
from shared.db import UTCDateTime, utc_now


class PropertyDefinition(Base):
    """A custom property of contacts, companies or deals: its key, its type, the options of an enum."""

    __tablename__ = "property_definition"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    object_type: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(1000))
    type: Mapped[str] = mapped_column(String(20))
    # The allowed values of an enum or multi-enum, in display order; empty for other types.
    options: Mapped[list[str]] = mapped_column(JSONDocument, default=list, server_default=text("'[]'"))
    # Personal data never goes on the stream: only values of properties marked otherwise do.
    personal_data: Mapped[bool] = mapped_column(default=True, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, onupdate=utc_now)

    __table_args__ = (Index("uq_property_definition_object_type_key", "object_type", "key", unique=True),)


class CustomValue(Base):
    """The searchable copy of one custom property value (an entity-attribute-value row).

    The record itself keeps its values in a JSON column for reading; these rows exist so that a filter
    or a sort on any custom property is an index range scan, on SQLite as on PostgreSQL, without a
    schema change per property. Each value sits in the column of its type; a multi-enum has one row per
    chosen option. The indexes lead with the property, so `amount > 100` reads only that property's
    rows, already in order.
    """

    __tablename__ = "custom_value"
    __table_args__ = (
        Index("ix_custom_value_text", "object_type", "property_key", "value_text", "object_id"),
        Index("ix_custom_value_number", "object_type", "property_key", "value_number", "object_id"),
        Index("ix_custom_value_date", "object_type", "property_key", "value_date", "object_id"),
        Index("ix_custom_value_object", "object_type", "object_id"),
    )

    object_type: Mapped[str] = mapped_column(String(20), primary_key=True)
    object_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    property_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    # 0 for a single value; 0..n-1 for the options of a multi-enum.
    ordinal: Mapped[int] = mapped_column(primary_key=True, default=0)
    value_text: Mapped[str | None] = mapped_column(String(1000))
    value_number: Mapped[float | None] = mapped_column(Float)
    value_date: Mapped[date | None] = mapped_column(Date)


def fits_float(value: float) -> bool:
    """Whether a number fits `value_number`: JSON allows integers of any size, a float column does not."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def stored_columns(value: Any) -> dict[str, Any]:
    """Which typed column holds `value` (already validated and converted by its definition)."""
    if isinstance(value, bool):
        return {"value_text": "true" if value else "false"}
    if isinstance(value, int | float):
        return {"value_number": float(value)}
    if isinstance(value, date):
        return {"value_date": value}
    return {"value_text": str(value)}
