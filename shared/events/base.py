"""Base class for every event's data.

An event class names its CloudEvents `type` (a `Literal` field, the union's discriminator), the topic it
travels on, and its schema version. Older versions are upcast on read by `upcasters`, a map from a
version to the function that lifts a payload of that version to the next one; old payloads stay valid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, JsonValue

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]


class Event(BaseModel):
    # Unknown fields are ignored so an older consumer keeps reading a newer, additive producer.
    model_config = ConfigDict(frozen=True, extra="ignore")

    topic: ClassVar[str]
    upcasters: ClassVar[Mapping[int, Upcaster]] = {}

    type: str
    schema_version: int

    @classmethod
    def event_type(cls) -> str:
        default = cls.model_fields["type"].default
        assert isinstance(default, str), f"{cls.__name__}.type needs a Literal default"
        return default

    @classmethod
    def current_version(cls) -> int:
        default = cls.model_fields["schema_version"].default
        assert isinstance(default, int), f"{cls.__name__}.schema_version needs a Literal default"
        return default

    @property
    def key(self) -> str:
        """Partition key: the aggregate id, so events of one aggregate stay in order."""
        raise NotImplementedError

    @property
    def subject(self) -> str | None:
        """CloudEvents `subject`: the aggregate the event is about."""
        return self.key

    def payload(self) -> Payload:
        """The JSON `data` as it goes on the wire; the type travels in the envelope."""
        return self.model_dump(mode="json", exclude={"type"})


class FieldChange(BaseModel):
    """A field's value before and after an update."""

    model_config = ConfigDict(frozen=True)

    old: str | None
    new: str | None


class ValueChange(BaseModel):
    """A field's value before and after an update, as JSON (a custom property may be a number or a list)."""

    model_config = ConfigDict(frozen=True)

    old: JsonValue
    new: JsonValue


def string_changes_are_json(payload: Payload) -> Payload:
    """Upcaster of an update event whose `changes` went from `FieldChange` to `ValueChange`: v1 carried
    strings only, and a string is a JSON value, so v1 data is valid v2 data."""
    return payload
