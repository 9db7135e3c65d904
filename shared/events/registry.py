"""The one registry that parses every event: a discriminated union over all event classes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError

from shared.events.base import Event, Payload


class NotUnderstoodYet(Exception):
    """The event comes from a newer build than this reader: never acknowledge it as handled.

    A producer that rolls out before its consumers sends types or versions they do not know yet. Their
    effects must not be dropped, so a consumer waits for its upgrade instead (see `shared.consumer`).
    """


class UnknownEventType(NotUnderstoodYet, LookupError):
    """The registry has no class for this CloudEvents type."""


class NewerSchemaVersion(NotUnderstoodYet):
    """The event's schema version is newer than the one this build knows."""


class EventParseError(ValueError):
    """The payload does not match its event's schema (after upcasting)."""


class EventRegistry:
    def __init__(self, event_classes: Iterable[type[Event]]) -> None:
        classes = tuple(event_classes)
        self._by_type: dict[str, type[Event]] = {}
        for cls in classes:
            name = cls.event_type()
            if name in self._by_type:
                raise ValueError(f"event type {name} registered twice")
            self._by_type[name] = cls
        union: Any = Annotated[Union[classes], Field(discriminator="type")]  # noqa: UP007
        self._adapter: TypeAdapter[Event] = TypeAdapter(union)

    @property
    def event_classes(self) -> tuple[type[Event], ...]:
        return tuple(self._by_type.values())

    def __contains__(self, event_type: str) -> bool:
        return event_type in self._by_type

    def class_for(self, event_type: str) -> type[Event]:
        try:
            return self._by_type[event_type]
        except KeyError:
            raise UnknownEventType(event_type) from None

    def parse(self, event_type: str, payload: Payload) -> Event:
        cls = self.class_for(event_type)
        data = dict(payload)
        try:
            version = int(data.get("schema_version", 1))
        except (TypeError, ValueError):
            raise EventParseError(f"{event_type}: schema_version is not a number") from None
        while version < cls.current_version():
            upcast = cls.upcasters.get(version)
            if upcast is None:
                raise EventParseError(f"{event_type}: no upcaster from schema version {version}")
            try:
                data = upcast(data)
            except Exception as exc:
                raise EventParseError(
                    f"{event_type}: upcasting from version {version} failed: {exc!r}"
                ) from exc
            version += 1
            data["schema_version"] = version
        if version > cls.current_version():
            raise NewerSchemaVersion(
                f"{event_type}: schema version {version} is newer than this reader ({cls.current_version()})"
            )
        data["type"] = event_type
        try:
            return self._adapter.validate_python(data)
        except ValidationError as exc:
            raise EventParseError(f"{event_type}: {exc}") from exc
