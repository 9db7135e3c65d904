"""Kafka-specific behaviour beyond the shared contract."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.bus.kafka import KafkaBus
from shared.events.topics import TopicDefinition
from shared.testing.infra import REPOSITORY, KafkaBroker

# DescribeConfigs `config_source` of a setting made on the topic itself (DYNAMIC_TOPIC_CONFIG).
_TOPIC_CONFIG_SOURCE = 1


@pytest.mark.kafka
async def test_a_topic_the_broker_cannot_create_is_reported_not_ignored(
    kafka_bootstrap: str, topic: str
) -> None:
    bus = KafkaBus(kafka_bootstrap, replication_factor=3)  # one broker cannot hold three replicas
    with pytest.raises(RuntimeError, match=topic):
        await bus.ensure_topics([topic])


@pytest.mark.kafka
async def test_ping_fails_cleanly_when_no_broker_listens() -> None:
    bus = KafkaBus("127.0.0.1:1", request_timeout_ms=2000)
    started = time.monotonic()
    assert await bus.ping() is False
    assert time.monotonic() - started < 5


async def _topic_overrides(bootstrap: str, name: str) -> dict[str, str]:
    """The settings made on the topic itself (not inherited from the broker's defaults)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    finally:
        await admin.close()
    [resource] = response.to_object()["resources"]
    assert resource["error_code"] == 0, resource
    return {
        entry["config_names"]: entry["config_value"]
        for entry in resource["config_entries"]
        if entry["config_source"] == _TOPIC_CONFIG_SOURCE
    }


@pytest.mark.kafka
async def test_topics_created_from_their_definition_carry_the_durability_settings(
    kafka_bootstrap: str, topic: str
) -> None:
    """A domain topic and its dead-letter topic keep records for ever, by deletion policy, with min ISR."""
    definition = TopicDefinition(name=topic, description="a test topic", key="id", event_types=())
    bus = KafkaBus(kafka_bootstrap, min_insync_replicas=1)
    try:
        await bus.ensure_topics(definition.bus_topics())
    finally:
        await bus.stop()
    durable = {"retention.ms": "-1", "cleanup.policy": "delete", "min.insync.replicas": "1"}
    for name in (topic, definition.dead_letter):
        settings = await _topic_overrides(kafka_bootstrap, name)
        assert {key: settings.get(key) for key in durable} == durable, name
    # Append times, which do not go back along a partition: consumers' watermarks rely on that.
    main = await _topic_overrides(kafka_bootstrap, topic)
    assert main.get("message.timestamp.type") == "LogAppendTime"


@pytest.mark.kafka
async def test_a_compacted_definition_creates_a_compacted_topic(kafka_bootstrap: str, topic: str) -> None:
    """Derived data keeps only the latest record per key; its dead-letter topic still keeps everything."""
    definition = TopicDefinition(name=topic, description="derived", key="id", event_types=(), compacted=True)
    bus = KafkaBus(kafka_bootstrap, min_insync_replicas=1)
    try:
        await bus.ensure_topics(definition.bus_topics())
    finally:
        await bus.stop()
    assert (await _topic_overrides(kafka_bootstrap, topic)).get("cleanup.policy") == "compact"
    dead_letter = await _topic_overrides(kafka_bootstrap, definition.dead_letter)
    assert (dead_letter.get("cleanup.policy"), dead_letter.get("retention.ms")) == ("delete", "-1")


@pytest.mark.kafka
async def test_ping_keeps_answering_over_the_kept_admin_connection(kafka_bootstrap: str) -> None:
    """Repeated probes all answer True, and reuse one admin client rather than connecting each time."""
    bus = KafkaBus(kafka_bootstrap)
    try:
        assert await bus.ping() is True
        kept = bus._admin_client
        assert kept is not None
        for _ in range(5):
            assert await bus.ping() is True
            assert bus._admin_client is kept
    finally:
        await bus.stop()


@pytest.mark.kafka
async def test_ping_answers_false_within_seconds_for_a_broker_that_accepts_but_never_answers() -> None:
    """A hung broker (the connection opens, no reply comes) is reported down within the probe's bound."""
    accepted: list[asyncio.StreamWriter] = []

    async def hold_open(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(hold_open, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    bus = KafkaBus(f"127.0.0.1:{port}")  # the default request timeout (15 s) is far above the bound
    try:
        started = time.monotonic()
        assert await bus.ping(timeout_s=2.0) is False
        assert time.monotonic() - started < 5
    finally:
        await bus.stop()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.fixture
async def stoppable_broker() -> AsyncIterator[KafkaBroker]:
    """A broker of this test's own, on ports no other suite uses, so it may be stopped."""
    broker = KafkaBroker(port=39092, data_dir=REPOSITORY / ".infra" / "readiness-kafka")
    await asyncio.to_thread(broker.reset)
    await asyncio.to_thread(broker.start)
    yield broker
    await asyncio.to_thread(broker.stop)


@pytest.mark.kafka
async def test_ping_over_a_kept_connection_follows_a_broker_that_stops_and_returns(
    stoppable_broker: KafkaBroker,
) -> None:
    """Up on the kept connection, False within seconds once the broker stops, True again when it is back."""
    bus = KafkaBus(stoppable_broker.bootstrap)
    try:
        assert await bus.ping() is True
        await asyncio.to_thread(stoppable_broker.stop)
        started = time.monotonic()
        assert await bus.ping() is False
        assert time.monotonic() - started < 5
        await asyncio.to_thread(stoppable_broker.start)
        assert await bus.ping() is True
    finally:
        await bus.stop()
