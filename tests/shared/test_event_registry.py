"""The registry parses every event through one discriminated union and upcasts old versions."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pytest

from shared.events.base import Event, Payload, Upcaster
from shared.events.catalog import REGISTRY, ContactCreated
from shared.events.registry import (
    EventParseError,
    EventRegistry,
    NewerSchemaVersion,
    NotUnderstoodYet,
    UnknownEventType,
)


def _split_name(payload: Payload) -> Payload:
    first, _, last = payload.pop("name").partition(" ")
    return {**payload, "first_name": first, "last_name": last}


class PersonRenamed(Event):
    """Test event at schema version 2; version 1 carried one `name` field."""

    topic = "test.people"
    upcasters: ClassVar[dict[int, Upcaster]] = {1: _split_name}
    type: Literal["test.person.renamed"] = "test.person.renamed"
    schema_version: Literal[2] = 2
    person_id: str
    first_name: str
    last_name: str

    @property
    def key(self) -> str:
        return self.person_id


registry = EventRegistry([PersonRenamed, ContactCreated])


def test_an_old_version_is_upcast_on_read() -> None:
    event = registry.parse(
        "test.person.renamed", {"schema_version": 1, "person_id": "p1", "name": "Ada Lovelace"}
    )
    assert event == PersonRenamed(person_id="p1", first_name="Ada", last_name="Lovelace")


def test_the_current_version_parses_as_is_and_unknown_fields_are_ignored() -> None:
    payload: dict[str, Any] = {
        "schema_version": 2,
        "person_id": "p1",
        "first_name": "A",
        "last_name": "B",
        "x": 1,
    }
    assert registry.parse("test.person.renamed", payload).key == "p1"


def test_a_version_newer_than_the_reader_is_not_understood_yet_rather_than_invalid() -> None:
    with pytest.raises(NewerSchemaVersion, match="newer") as raised:
        registry.parse("test.person.renamed", {"schema_version": 3, "person_id": "p1"})
    assert not isinstance(raised.value, EventParseError), "a newer version must not be dead-lettered"
    assert isinstance(raised.value, NotUnderstoodYet)


def test_an_invalid_payload_and_an_unknown_type_are_told_apart() -> None:
    with pytest.raises(EventParseError):
        registry.parse("crm.contact.created", {"schema_version": 1, "contact_id": "not-a-uuid"})
    with pytest.raises(UnknownEventType):
        registry.parse("crm.nothing.happened", {})


def test_a_type_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        EventRegistry([ContactCreated, ContactCreated])


def test_the_platform_registry_knows_contact_created() -> None:
    assert "crm.contact.created" in REGISTRY
    assert REGISTRY.class_for("crm.contact.created") is ContactCreated


def test_a_failing_upcaster_or_a_malformed_version_is_a_parse_error() -> None:
    with pytest.raises(EventParseError, match="upcasting"):
        registry.parse("test.person.renamed", {"schema_version": 1, "person_id": "p1"})  # no `name`
    with pytest.raises(EventParseError, match="schema_version"):
        registry.parse("test.person.renamed", {"schema_version": "two", "person_id": "p1"})
