"""Contact events as the contacts service emits them, for scenarios that feed the bus or the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from shared.bus.base import EventBus, Message
from shared.events.catalog import ContactCreated
from shared.events.envelope import to_message

CONTACTS_SOURCE = "/crm/contacts"
CONTACTS_TOPIC: str = ContactCreated.topic


def contact_created(source: str = "bench") -> ContactCreated:
    return ContactCreated(
        contact_id=uuid.uuid4(), lifecycle_stage="subscriber", source=source, created_at=datetime.now(UTC)
    )


def contact_messages(count: int, *, topic: str = CONTACTS_TOPIC) -> list[Message]:
    messages = [to_message(contact_created(), source=CONTACTS_SOURCE) for _ in range(count)]
    if topic == CONTACTS_TOPIC:
        return messages
    return [Message(topic, message.key, message.value, message.headers) for message in messages]


def event_id(headers: Mapping[str, bytes]) -> str:
    """The CloudEvents id a message or record carries."""
    return headers["ce_id"].decode()


async def publish_in_batches(bus: EventBus, messages: list[Message], batch_size: int) -> None:
    for start in range(0, len(messages), batch_size):
        await bus.publish(messages[start : start + batch_size])
