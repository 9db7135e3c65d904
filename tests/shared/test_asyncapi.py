"""The event contract generator: channels, senders and receivers, schemas, `ce_dataschema`, files."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

import jsonschema  # type: ignore[import-untyped]  # no stubs in the dev dependencies
import pytest
from pydantic import BaseModel

from shared.consumer import ConsumerSpec
from shared.events import topics
from shared.events.asyncapi import (
    build_document,
    contract_files,
    drift,
    event_schema,
    event_schemas,
    render,
    resolve_dataschema,
    schema_path,
    service_document,
    write_files,
)
from shared.events.base import Event
from shared.events.catalog import REGISTRY, ContactCreated
from shared.events.envelope import dataschema, to_message
from shared.events.registry import EventRegistry
from shared.events.topics import TopicDefinition

ORDERS = TopicDefinition(
    name="test.orders", description="Orders.", key="order id", event_types=(), producers=("shop",)
)
INVOICES = TopicDefinition(
    name="test.invoices",
    description="Invoices.",
    key="invoice id",
    event_types=(),
    producers=("billing",),
    compacted=True,
)
TOPICS = (ORDERS, INVOICES)


class Line(BaseModel):
    sku: str
    quantity: int


class OrderPlaced(Event):
    """An order was placed."""

    topic: ClassVar[str] = ORDERS.name
    type: Literal["test.order.placed"] = "test.order.placed"
    schema_version: Literal[1] = 1

    order_id: uuid.UUID
    lines: list[Line]

    @property
    def key(self) -> str:
        return str(self.order_id)


class OrderPlacedV2(Event):
    """An order was placed, now with a currency."""

    topic: ClassVar[str] = ORDERS.name
    type: Literal["test.order.placed"] = "test.order.placed"
    schema_version: Literal[2] = 2

    order_id: uuid.UUID
    lines: list[Line]
    currency: str

    @property
    def key(self) -> str:
        return str(self.order_id)


@dataclass(frozen=True)
class Svc:
    name: str
    title: str = "A service"
    consumers: Sequence[ConsumerSpec] = field(default_factory=tuple)


SHOP = Svc("shop")
BILLING = Svc(
    "billing",
    consumers=[
        ConsumerSpec(name="billing.invoicing", topics=[ORDERS]),
        ConsumerSpec(name="billing.audit", topics=[ORDERS]),
    ],
)


def _document(*services: Svc, registry: EventRegistry | None = None, **options: Any) -> dict[str, Any]:
    return build_document(
        services, topic_definitions=TOPICS, registry=registry or EventRegistry([OrderPlaced]), **options
    )


def test_ce_dataschema_is_the_schema_id_and_resolves_to_where_it_is_published() -> None:
    uri = dataschema("crm.contact.created", 1)
    assert uri == "urn:crm:schema:crm.contact.created:v1"
    assert resolve_dataschema(uri) == schema_path("crm.contact.created", 1)
    assert resolve_dataschema(uri) == "events/crm.contact.created/v1.json"
    current = ContactCreated.current_version()
    assert event_schema(ContactCreated)["$id"] == dataschema("crm.contact.created", current)
    for cls in REGISTRY.event_classes:
        assert resolve_dataschema(event_schema(cls)["$id"]) in event_schemas()


@pytest.mark.parametrize(
    "uri",
    [
        "https://schemas.example.com/crm.contact.created/v1.json",
        "urn:crm:schema:crm.contact.created",
        "urn:crm:schema:crm.contact.created:v0",
        "urn:crm:schema:../../etc/passwd:v1",
    ],
)
def test_a_foreign_dataschema_is_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="not a dataschema"):
        resolve_dataschema(uri)


def test_a_real_message_validates_against_the_schema_its_dataschema_names() -> None:
    event = ContactCreated(contact_id=uuid.uuid4(), lifecycle_stage="lead", created_at=datetime.now(UTC))
    message = to_message(event, source="/crm/contacts")
    schema = event_schemas()[resolve_dataschema(message.headers["ce_dataschema"].decode())]
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )

    data = json.loads(message.value)
    validator.validate(data)
    assert "type" not in schema["properties"], "the type travels in ce_type, not in the payload"
    assert "schema_version" in schema["required"]
    del data["contact_id"]
    assert not validator.is_valid(data)


def test_every_topic_and_its_dead_letter_topic_is_a_channel() -> None:
    document = build_document([])
    expected = {name for topic in topics.ALL for name in (topic.name, topic.dead_letter)}
    assert set(document["channels"]) == expected
    for topic in topics.ALL:
        dead = document["channels"][topic.dead_letter]
        assert dead["description"].startswith(f"Dead letters of `{topic.name}`")
        assert dead["bindings"]["kafka"]["topic"] == topic.dead_letter
        for cls in REGISTRY.event_classes:
            if cls.topic == topic.name:
                name = f"{cls.event_type()}.v{cls.current_version()}"
                assert name in document["channels"][topic.name]["messages"]
                assert name in dead["messages"]
                key = document["components"]["messages"][name]["bindings"]["kafka"]["key"]
                assert key["description"] == topic.key


def test_senders_follow_producers_and_receivers_follow_consumers() -> None:
    operations = _document(SHOP, BILLING)["operations"]
    assert set(operations) == {
        "shop.send.test.orders",
        "billing.send.test.invoices",
        "billing.receive.test.orders",
        "billing.send.test.orders.dlq",
        "billing.receive.test.orders.dlq",
    }
    receive = operations["billing.receive.test.orders"]
    assert receive["action"] == "receive"
    assert receive["channel"] == {"$ref": "#/channels/test.orders"}
    assert receive["messages"] == [{"$ref": "#/channels/test.orders/messages/test.order.placed.v1"}]
    assert receive["bindings"]["kafka"]["groupId"]["enum"] == ["billing.audit", "billing.invoicing"]
    assert operations["shop.send.test.orders"]["action"] == "send"


def test_a_services_part_holds_only_what_it_sends_or_receives() -> None:
    shop = _document(SHOP, every_channel=False)
    assert set(shop["channels"]) == {"test.orders"}
    assert set(shop["components"]["messages"]) == {"test.order.placed.v1"}
    billing = _document(BILLING, every_channel=False)
    assert set(billing["channels"]) == {"test.orders", "test.orders.dlq", "test.invoices"}
    assert "test.invoices.dlq" not in billing["channels"]
    assert service_document(SHOP)["info"]["title"] == "A service: events"


def test_nested_models_go_to_components_in_the_document_and_stay_inside_a_schema_file() -> None:
    document = _document(SHOP)
    payload = document["components"]["schemas"]["test.order.placed.v1"]
    assert payload["properties"]["lines"]["items"] == {"$ref": "#/components/schemas/Line"}
    assert "Line" in document["components"]["schemas"]

    schema = event_schema(OrderPlaced)
    assert schema["properties"]["lines"]["items"] == {"$ref": "#/$defs/Line"}
    validator = jsonschema.Draft202012Validator(schema)
    event = OrderPlaced(order_id=uuid.uuid4(), lines=[Line(sku="A-1", quantity=2)])
    validator.validate(event.payload())
    assert not validator.is_valid({**event.payload(), "lines": [{"sku": "A-1"}]})


def test_output_is_deterministic_and_ends_with_a_newline() -> None:
    first, second = render(_document(SHOP, BILLING)), render(_document(BILLING, SHOP))
    assert first == second
    assert first.endswith("}\n")
    assert render(json.loads(first)) == first


def test_a_new_schema_version_keeps_the_file_of_the_older_one(tmp_path: Path) -> None:
    v1 = contract_files(_document(SHOP), registry=EventRegistry([OrderPlaced]))
    assert write_files(tmp_path, v1) == ["asyncapi.json", "events/test.order.placed/v1.json"]
    older = (tmp_path / "events/test.order.placed/v1.json").read_text()

    v2_registry = EventRegistry([OrderPlacedV2])
    v2 = contract_files(_document(SHOP, registry=v2_registry), registry=v2_registry)
    report = drift(tmp_path, v2)
    assert report is not None
    assert "events/test.order.placed/v2.json (missing)" in report
    assert "v1.json" not in report, "an older version's file is never stale"

    assert write_files(tmp_path, v2) == ["asyncapi.json", "events/test.order.placed/v2.json"]
    assert (tmp_path / "events/test.order.placed/v1.json").read_text() == older
    assert json.loads(older)["$id"] == "urn:crm:schema:test.order.placed:v1"
    assert drift(tmp_path, v2) is None


def test_drift_names_the_stale_files_and_the_command_that_fixes_them(tmp_path: Path) -> None:
    files = contract_files(_document(SHOP), registry=EventRegistry([OrderPlaced]))
    write_files(tmp_path, files)
    assert drift(tmp_path, files) is None
    schema_file = tmp_path / "events/test.order.placed/v1.json"
    schema_file.write_text(schema_file.read_text().replace("order_id", "order"))
    report = drift(tmp_path, files)
    assert report is not None
    assert f"{schema_file} (differs)" in report
    assert "Run `crm asyncapi` (.venv/bin/crm asyncapi)" in report
    assert "raise the event's schema_version" in report
