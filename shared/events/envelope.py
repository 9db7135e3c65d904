"""CloudEvents 1.0 in Kafka binary content mode, via the maintained `cloudevents` SDK.

Attributes travel as `ce_*` headers, the record key is the aggregate id, the value is the JSON `data`.
This module is the only place that serializes or parses events.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary, to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from shared.bus.base import Message, Record
from shared.events.base import Event
from shared.events.catalog import REGISTRY
from shared.events.registry import EventParseError, EventRegistry

_FORMAT = JSONFormat()
_CONTENT_TYPE = "application/json"


def dataschema(event_type: str, version: int) -> str:
    """Where the JSON Schema of one event version is published (see `crm asyncapi`)."""
    return f"urn:crm:schema:{event_type}:v{version}"


@dataclass(frozen=True)
class Envelope:
    """The CloudEvents attributes of a received event plus its parsed data."""

    id: str
    type: str
    source: str
    time: datetime
    subject: str | None
    event: Event


def to_message(
    event: Event, *, source: str, event_id: str | None = None, time: datetime | None = None
) -> Message:
    attributes: dict[str, Any] = {
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": event.event_type(),
        "time": time or datetime.now(UTC),
        "datacontenttype": _CONTENT_TYPE,
        "dataschema": dataschema(event.event_type(), event.current_version()),
        "partitionkey": event.key,
    }
    if event.subject is not None:
        attributes["subject"] = event.subject
    kafka_message = to_binary(CloudEvent(attributes, event.payload()), _FORMAT)
    return Message(
        topic=event.topic,
        key=event.key,
        value=kafka_message.value,
        headers=dict(kafka_message.headers),
    )


def from_record(record: Record, registry: EventRegistry = REGISTRY) -> Envelope:
    try:
        cloud_event = from_binary(
            KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value), _FORMAT
        )
    except Exception as exc:  # the SDK raises several types for malformed envelopes
        raise EventParseError(f"not a CloudEvent in binary mode: {exc}") from exc
    data = cloud_event.get_data()
    if not isinstance(data, dict):
        raise EventParseError("event data is not a JSON object")
    time = cloud_event.get_time() or datetime.now(UTC)
    return Envelope(
        id=cloud_event.get_id(),
        type=cloud_event.get_type(),
        source=cloud_event.get_source(),
        time=time,
        subject=cloud_event.get_subject(),
        event=registry.parse(cloud_event.get_type(), data),
    )
