"""The event contract: an AsyncAPI 3.0 document and a JSON Schema per event type and version.

Both are generated from what the code already says, so they cannot drift from it: the topics
(`shared.events.topics`: name, key, retention, dead-letter topic, event types, producers), the event
models in the catalog (their JSON Schemas) and the services' consumers (who receives what). `shared` may
not import `services`, so the services are handed in; `services.asyncapi` does that wiring.

Every record carries `ce_dataschema`, a URN naming its type and schema version (an absolute URI that
names no host, since the log outlives any deployment). `resolve_dataschema` maps it to the relative path
under which that schema is published: `docs/<path>` in the repository and `/schemas/<path>` on every
service. A schema, once published for a version, never changes: a change to an event's data raises its
`schema_version`, and the file of the older version stays, because old records on the log still point
at it. So writing the contract adds or rewrites the current versions' files and never deletes a file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from shared.bus.base import TopicConfig
from shared.events import topics
from shared.events.base import Event
from shared.events.catalog import REGISTRY
from shared.events.envelope import dataschema
from shared.events.registry import EventRegistry
from shared.events.topics import TopicDefinition

if TYPE_CHECKING:
    from shared.consumer import ConsumerSpec

JSON = dict[str, Any]


class Service(Protocol):
    """What the document needs of a service; `shared.runtime.ServiceDefinition` is one."""

    @property
    def name(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def consumers(self) -> Sequence[ConsumerSpec]: ...


ASYNCAPI_VERSION = "3.0.0"
DOCUMENT_FILE = "asyncapi.json"
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
KAFKA_BINDING_VERSION = "0.5.0"
CLOUDEVENTS_SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
UNREADABLE_MESSAGE = "crm.dead-letter.unreadable"

_DATASCHEMA = re.compile(r"^urn:crm:schema:(?P<type>[a-z0-9_.]+):v(?P<version>[1-9][0-9]*)$")


# --- schemas ----------------------------------------------------------------------------------------


def message_name(event_type: str, version: int) -> str:
    """The key of one event version among the document's messages and schemas."""
    return f"{event_type}.v{version}"


def schema_path(event_type: str, version: int) -> str:
    """Where one event version's schema is published, relative to `docs/` and to `/schemas/`."""
    return f"events/{event_type}/v{version}.json"


def resolve_dataschema(uri: str) -> str:
    """The published schema's path (see `schema_path`) for a record's `ce_dataschema`."""
    match = _DATASCHEMA.match(uri)
    if match is None:
        raise ValueError(f"{uri!r} is not a dataschema of this platform (urn:crm:schema:<type>:v<n>)")
    return schema_path(match["type"], int(match["version"]))


def _payload_schema(cls: type[Event], ref_template: str) -> JSON:
    """The JSON Schema of `Event.payload()`: the model without `type`, which travels in `ce_type`."""
    schema = cls.model_json_schema(mode="serialization", ref_template=ref_template)
    schema["properties"].pop("type", None)
    # The payload always carries its version (it picks the upcasters), though the model defaults it.
    required = [name for name in schema.get("required", []) if name != "type"]
    schema["required"] = ["schema_version", *[name for name in required if name != "schema_version"]]
    return schema


def event_schema(cls: type[Event]) -> JSON:
    """The published, self-contained schema of the current version of `cls`; `$id` is its dataschema."""
    schema = _payload_schema(cls, "#/$defs/{model}")
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": dataschema(cls.event_type(), cls.current_version()),
        **schema,
    }


def event_schemas(registry: EventRegistry = REGISTRY) -> dict[str, JSON]:
    """Every current event version's schema, by its path (see `schema_path`)."""
    return {
        schema_path(cls.event_type(), cls.current_version()): event_schema(cls)
        for cls in registry.event_classes
    }


# --- the document -----------------------------------------------------------------------------------


def _ref(*parts: str) -> JSON:
    """A JSON Reference into this document (RFC 6901 escaping: names here may hold neither ~ nor /)."""
    return {"$ref": "#/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)}


def _string(description: str, **more: Any) -> JSON:
    return {"type": "string", "description": description, **more}


def _cloudevents_headers(cls: type[Event]) -> tuple[JSON, list[str]]:
    """The `ce_*` headers of binary content mode, as `shared.events.envelope.to_message` sets them."""
    event_type, version = cls.event_type(), cls.current_version()
    properties = {
        "ce_specversion": _string("CloudEvents version.", const=CLOUDEVENTS_SPECVERSION),
        "ce_id": _string("Event id; the same event published twice keeps it, so a reader drops repeats."),
        "ce_source": _string("The producing service, `/crm/<service>`.", format="uri-reference"),
        "ce_type": _string("Event type; the payload carries no `type` field.", const=event_type),
        "ce_time": _string("When the change happened.", format="date-time"),
        "ce_subject": _string("The aggregate the event is about (its id)."),
        "ce_dataschema": _string(
            f"The payload's JSON Schema; served at `/schemas/{schema_path(event_type, version)}`.",
            format="uri",
            const=dataschema(event_type, version),
        ),
        "ce_partitionkey": _string("Partition key: the aggregate id, the same as the record key."),
        "content-type": _string("Media type of the payload.", const=CONTENT_TYPE),
    }
    required = sorted(name for name in properties if name != "ce_subject")
    return properties, required


def _dead_letter_headers() -> JSON:
    """Headers a consumer adds when it gives up on a record (`shared.consumer`)."""
    return {
        "crm_error": _string("The error, cut to 2000 characters; left out if the record would be too big."),
        "crm_error_type": _string("The error's class name; left out with `crm_error`."),
        "crm_consumer": _string("The consumer (its group id) that gave up."),
        "crm_attempts": _string("How many times it was tried, as a decimal number."),
        "crm_original_topic": _string("The topic the record was read from."),
        "crm_original_partition": _string("Its partition there, as a decimal number."),
        "crm_original_offset": _string("Its offset there, as a decimal number."),
        "crm_failed_at": _string("When the consumer gave up.", format="date-time"),
    }


_DEAD_LETTER_REQUIRED = sorted(
    name for name in _dead_letter_headers() if name not in ("crm_error", "crm_error_type")
)


def _key_binding(topic: TopicDefinition) -> JSON:
    return {"kafka": {"key": _string(topic.key), "bindingVersion": KAFKA_BINDING_VERSION}}


def _event_message(cls: type[Event], topic: TopicDefinition, *, dead_letter: bool) -> JSON:
    event_type, version = cls.event_type(), cls.current_version()
    properties, required = _cloudevents_headers(cls)
    if dead_letter:
        properties = {**properties, **_dead_letter_headers()}
        required = sorted([*required, *_DEAD_LETTER_REQUIRED])
    summary = (cls.__doc__ or event_type).strip().splitlines()[0]
    message: JSON = {
        "name": event_type,
        "title": f"{event_type}, schema version {version}",
        "summary": summary,
        "contentType": CONTENT_TYPE,
        "headers": {"type": "object", "properties": properties, "required": required},
        "payload": _ref("components", "schemas", message_name(event_type, version)),
        "correlationId": {
            "description": "The CloudEvents id of the event.",
            "location": "$message.header#/ce_id",
        },
        "bindings": _key_binding(topic),
    }
    if dead_letter:
        message["description"] = (
            f"A `{event_type}` record a consumer of `{topic.name}` gave up on: value, key and headers as "
            "they were, plus the `crm_*` headers saying why."
        )
    return message


def _unreadable_message() -> JSON:
    return {
        "name": UNREADABLE_MESSAGE,
        "title": "An unreadable record",
        "summary": "A record that was not a readable CloudEvent, dead-lettered as it was.",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "properties": _dead_letter_headers(),
            "required": _DEAD_LETTER_REQUIRED,
        },
        "payload": {"description": "The record's value, unchanged: any bytes."},
    }


def _topic_binding(topic: TopicConfig) -> JSON:
    """The Kafka channel binding: the topic's configuration as the bus creates it."""
    configuration: JSON = {"cleanup.policy": topic.config["cleanup.policy"].split(",")}
    for name in ("retention.ms", "retention.bytes"):
        if name in topic.config:
            configuration[name] = int(topic.config[name])
    binding = {"topic": topic.name, "topicConfiguration": configuration}
    return {"kafka": {**binding, "bindingVersion": KAFKA_BINDING_VERSION}}


def _channels(topic: TopicDefinition, classes: Sequence[type[Event]]) -> dict[str, JSON]:
    main, dead = topic.bus_topics()
    keeps = "the latest record per key (compacted)" if topic.compacted else "every record, for ever"
    names = sorted(message_name(cls.event_type(), cls.current_version()) for cls in classes)
    return {
        topic.name: {
            "address": topic.name,
            "title": topic.name,
            "description": f"{topic.description}\n\nRecord key: {topic.key}. Keeps {keeps}.",
            "messages": {name: _ref("components", "messages", name) for name in names},
            "bindings": _topic_binding(main),
        },
        topic.dead_letter: {
            "address": topic.dead_letter,
            "title": topic.dead_letter,
            "description": (
                f"Dead letters of `{topic.name}`: records a consumer of it gave up on after bounded "
                "retries, or could not read at all, with the failure in `crm_*` headers. Kept for ever; "
                "`crm dlq list` shows them and `crm dlq redrive` applies them again once the cause is "
                f"fixed.\n\nRecord key: {topic.key}, as on `{topic.name}`."
            ),
            "messages": {
                **{name: _ref("components", "messages", f"{name}.dead-letter") for name in names},
                UNREADABLE_MESSAGE: _ref("components", "messages", UNREADABLE_MESSAGE),
            },
            "bindings": _topic_binding(dead),
        },
    }


def _operation(action: str, channel: JSON, summary: str, bindings: JSON | None = None) -> tuple[str, JSON]:
    address: str = channel["address"]
    operation: JSON = {
        "action": action,
        "channel": _ref("channels", address),
        "summary": summary,
        "messages": [_ref("channels", address, "messages", name) for name in sorted(channel["messages"])],
    }
    if bindings is not None:
        operation["bindings"] = {"kafka": {**bindings, "bindingVersion": KAFKA_BINDING_VERSION}}
    return address, operation


def _enum(*values: str) -> JSON:
    return {"type": "string", "enum": sorted(values)}


def _operations(
    service: Service, topic_definitions: Sequence[TopicDefinition], channels: Mapping[str, JSON]
) -> dict[str, JSON]:
    name = service.name
    client = {"clientId": _enum(f"crm-{name}")}
    groups: dict[str, set[str]] = {}
    for spec in service.consumers:
        for topic in spec.topics:
            groups.setdefault(topic.name, set()).add(spec.name)
    operations: dict[str, JSON] = {}
    for topic in topic_definitions:
        if name in topic.producers:
            address, operation = _operation(
                "send",
                channels[topic.name],
                f"{name} publishes these events from its transactional outbox.",
                client,
            )
            operations[f"{name}.send.{address}"] = operation
        if topic.name in groups:
            consumers = ", ".join(f"`{group}`" for group in sorted(groups[topic.name]))
            address, operation = _operation(
                "receive",
                channels[topic.name],
                f"{name} builds its views from these events (consumer groups {consumers}).",
                {**client, "groupId": _enum(*groups[topic.name])},
            )
            operations[f"{name}.receive.{address}"] = operation
            address, operation = _operation(
                "send",
                channels[topic.dead_letter],
                f"{name}'s consumers ({consumers}) dead-letter here the records they give up on.",
            )
            operations[f"{name}.send.{address}"] = operation
            address, operation = _operation(
                "receive",
                channels[topic.dead_letter],
                f"`crm dlq list {name}` and `crm dlq redrive {name}` read {name}'s dead letters back.",
            )
            operations[f"{name}.receive.{address}"] = operation
    return operations


def _hoist(schema: JSON, into: dict[str, JSON]) -> JSON:
    """Move a payload schema's nested model definitions into the document's components."""
    for model, definition in schema.pop("$defs", {}).items():
        if into.setdefault(model, definition) != definition:
            raise ValueError(f"two event models define different nested models named {model}")
    return schema


def build_document(
    services: Iterable[Service],
    *,
    title: str = "CRM event stream",
    every_channel: bool = True,
    topic_definitions: Sequence[TopicDefinition] = topics.ALL,
    registry: EventRegistry = REGISTRY,
) -> JSON:
    """The AsyncAPI 3.0 document of the topics and of what `services` send and receive on them.

    With `every_channel`, it holds every topic and dead-letter topic; without, only those the services'
    operations use (a service's own part, as it serves it at `/asyncapi.json`).
    """
    by_topic: dict[str, list[type[Event]]] = {}
    for cls in registry.event_classes:
        by_topic.setdefault(cls.topic, []).append(cls)
    channels: dict[str, JSON] = {}
    for topic in topic_definitions:
        channels.update(_channels(topic, by_topic.get(topic.name, [])))
    operations: dict[str, JSON] = {}
    for service in services:
        operations.update(_operations(service, topic_definitions, channels))
    if not every_channel:
        used = {operation["channel"]["$ref"].rsplit("/", 1)[1] for operation in operations.values()}
        channels = {address: channel for address, channel in channels.items() if address in used}

    messages: dict[str, JSON] = {}
    schemas: dict[str, JSON] = {}
    for topic in topic_definitions:
        for cls in by_topic.get(topic.name, []):
            name = message_name(cls.event_type(), cls.current_version())
            if topic.name in channels:
                messages[name] = _event_message(cls, topic, dead_letter=False)
            if topic.dead_letter in channels:
                messages[f"{name}.dead-letter"] = _event_message(cls, topic, dead_letter=True)
            if name in messages or f"{name}.dead-letter" in messages:
                schemas[name] = _hoist(_payload_schema(cls, "#/components/schemas/{model}"), schemas)
    if any(address.endswith(".dlq") for address in channels):
        messages[UNREADABLE_MESSAGE] = _unreadable_message()

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": title,
            "version": "1.0.0",
            "description": (
                "The CRM's Kafka topics, a public contract. Every record is a CloudEvents 1.0 event in "
                "binary content mode: attributes in `ce_*` headers, the aggregate id as the record key, "
                "the JSON data as the value. Each payload names its `schema_version`; readers upcast "
                "older versions, and a schema once published never changes."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "The deployment's Kafka cluster (`CRM_KAFKA_BOOTSTRAP_SERVERS`).",
                "variables": {
                    "bootstrap": {
                        "default": "localhost:9092",
                        "description": "A bootstrap server, `host:port`.",
                    }
                },
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def service_document(service: Service) -> JSON:
    """One service's part: the channels, operations and messages it sends or receives."""
    return build_document([service], title=f"{service.title}: events", every_channel=False)


# --- files ------------------------------------------------------------------------------------------


def render(document: Mapping[str, Any]) -> str:
    """Deterministic JSON: sorted keys, two-space indent, a trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def contract_files(
    document: Mapping[str, Any], *, document_file: str = DOCUMENT_FILE, registry: EventRegistry = REGISTRY
) -> dict[str, str]:
    """The document and every current event version's schema, by path relative to the docs folder."""
    files = {document_file: render(document)}
    files.update({path: render(schema) for path, schema in event_schemas(registry).items()})
    return files


def stale_files(directory: Path, files: Mapping[str, str]) -> list[str]:
    """Paths of `files` missing from `directory` or different there. Files not in `files` (the
    schemas of older versions) are not looked at."""
    return sorted(
        path
        for path, text in files.items()
        if not (directory / path).is_file() or (directory / path).read_text(encoding="utf-8") != text
    )


def write_files(directory: Path, files: Mapping[str, str]) -> list[str]:
    """Write the stale ones of `files` under `directory`; never deletes. Returns what it wrote."""
    written = stale_files(directory, files)
    for path in written:
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(files[path], encoding="utf-8")
    return written


def drift(directory: Path, files: Mapping[str, str], *, command: str = "crm asyncapi") -> str | None:
    """What is out of date in `directory` and how to fix it, or None when every file is current."""
    stale = stale_files(directory, files)
    if not stale:
        return None
    lines = [f"The event contract in {directory} does not match the code:"]
    lines += [
        f"  {directory / path} ({'differs' if (directory / path).exists() else 'missing'})" for path in stale
    ]
    lines.append(f"Run `{command}` (.venv/bin/{command}) and commit the result.")
    if any(path.startswith("events/") and (directory / path).exists() for path in stale):
        lines.append(
            "A current schema version differs from its committed file. If that version was ever "
            "released, raise the event's schema_version (with an upcaster) instead of rewriting it: "
            "records on the log still point at the published schema."
        )
    return "\n".join(lines)
