"""How fast the outbox relay publishes staged events, against a raw producer sending the same messages."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer

from services.bench.events import CONTACTS_SOURCE, contact_created, publish_in_batches
from services.bench.model import Figure, Target
from services.bench.scenarios.base import ModeContext, Scenario
from services.contacts.db import outbox
from services.registry import SERVICES
from shared.bus.base import Message
from shared.bus.embedded import EmbeddedBus
from shared.db import session_scope
from shared.events.envelope import to_message
from shared.runtime import ServiceRuntime

NAME = "relay"
TARGET = Target("ratio_at_least", 0.3)
STAGE_TRANSACTIONS = 5
WARMUP_TOPIC = "bench.round-trip"


async def _raw_kafka(bootstrap: str, messages: list[Message]) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        started = time.perf_counter()
        pending = [
            await producer.send(
                message.topic,
                value=message.value,
                key=message.key.encode(),
                headers=list(message.headers.items()),
            )
            for message in messages
        ]
        await asyncio.gather(*pending)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def _raw_embedded(path: Path, messages: list[Message], batch_size: int) -> float:
    bus = EmbeddedBus(path)
    await bus.start()
    try:
        started = time.perf_counter()
        await publish_in_batches(bus, messages, batch_size)
        return time.perf_counter() - started
    finally:
        await bus.stop()


async def run(ctx: ModeContext) -> list[Figure]:
    count = ctx.settings.events
    deployment = ctx.deployment
    definition = SERVICES["contacts"]
    bus = deployment.fresh_bus(NAME)
    settings = definition.settings_class(database_url=await deployment.fresh_database_url("contacts", NAME))
    runtime = ServiceRuntime(
        definition, platform=deployment.platform(deployment.fresh_dir(NAME)), settings=settings, bus=bus
    )
    events = [contact_created() for _ in range(count)]
    # The raw producer sends what the relay will: the same kind of message, the same sizes.
    messages = [to_message(event, source=CONTACTS_SOURCE) for event in events]
    relay = runtime.relay()
    await bus.start()
    try:
        with ctx.steps.step(f"{NAME}: stage {count} events in a fresh contacts outbox"):
            await runtime.migrate()
            # An empty batch creates the topics, and a message of the benchmark's own connects the
            # producer: neither is part of the timed publishing.
            await relay.publish_batch()
            await bus.ensure_topics([WARMUP_TOPIC])
            await bus.publish(
                [Message(WARMUP_TOPIC, messages[0].key, messages[0].value, messages[0].headers)]
            )
            per_transaction = -(-count // STAGE_TRANSACTIONS)
            for start in range(0, count, per_transaction):
                async with session_scope(runtime.database) as session:
                    for event in events[start : start + per_transaction]:
                        await outbox.add(session, event)
        with ctx.steps.step(f"{NAME}: raw producer sends {count} messages"):
            if deployment.kafka_bootstrap is not None:
                raw_s = await _raw_kafka(deployment.kafka_bootstrap, messages)
            else:
                raw_path = deployment.fresh_dir(f"{NAME}-raw") / "events.sqlite"
                raw_s = await _raw_embedded(raw_path, messages, relay.batch_size)
        with ctx.steps.step(f"{NAME}: relay publishes {count} events"):
            published = 0
            deadline = time.monotonic() + ctx.settings.settle_timeout_s
            started = time.perf_counter()
            while published < count and time.monotonic() < deadline:
                batch = await relay.publish_batch()
                if batch == 0:
                    break
                published += batch
            relay_s = time.perf_counter() - started
    finally:
        await runtime.database.dispose()
        await bus.stop()
    note = "" if published == count else f"relay published {published} of {count} events"
    return [
        Figure(
            NAME,
            "throughput",
            "events/s",
            published / relay_s,
            count / raw_s,
            TARGET,
            details={
                "events": count,
                "relay_s": round(relay_s, 3),
                "raw_s": round(raw_s, 3),
                "relay_batch_size": relay.batch_size,
            },
            note=note,
        )
    ]


SCENARIO = Scenario(
    name=NAME,
    title="relay throughput",
    measures=(
        "N events staged in the contacts outbox, then `relay.publish_batch()` until empty, vs the raw "
        "producer sending the same messages (Kafka: an idempotent `acks=all` AIOKafkaProducer; embedded: "
        "`EmbeddedBus.publish` in batches of the relay's size); target ratio ≥ 0.3."
    ),
    run=run,
)
