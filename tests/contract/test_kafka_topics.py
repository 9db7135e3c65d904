"""Kafka-specific behaviour beyond the shared contract."""

from __future__ import annotations

import pytest

from shared.bus.kafka import KafkaBus


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
    assert await bus.ping() is False
